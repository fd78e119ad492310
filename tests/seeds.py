"""The seed kernels' shapes (ANCHORS.md) as cases: explicit GPU examples for every
kernel, replayed by tests/test_gpu.py (and written to the corpus by
`python -m tests.seeds`)."""

from attention_kernel_triton.strategies.cases import (
    DecodeCase,
    IndexSet,
    PageTable,
    PrefillCase,
)

SEED_LENGTHS = (1024, 468, 631, 258, 353, 599, 732, 94)


def _prefill(dtype, q_lens=None):
    return PrefillCase(batch=8, num_kv_heads=16, group_size=4, head_dim=64, n_q=1024,
                       n_k=1024, dtype=dtype, causal=True, q_lens=q_lens, kv_lens=None,
                       scale=1.0, slack_rows=0, seed=1)


def _varlen(dtype):
    return PrefillCase(batch=8, num_kv_heads=16, group_size=4, head_dim=64, n_q=1024,
                       n_k=1024, dtype=dtype, causal=True, q_lens=SEED_LENGTHS, kv_lens=None,
                       scale=1.0, slack_rows=0, seed=2)


def _decode(dtype):  # q [8, 64, 1, 64], K/V [8, 16, 1024, 64]
    return DecodeCase(batch=8, num_kv_heads=16, group_size=4, head_dim=64, n_ctx=1024,
                      dtype=dtype, seq_lens=None, scale=1.0, seed=3, q_rank4=True)


def _paged(dtype):  # out [3, 4, 64]
    return DecodeCase(batch=3, num_kv_heads=2, group_size=2, head_dim=64, n_ctx=1024,
                      dtype=dtype, seq_lens=(1024, 517, 33), scale=1.0, seed=4,
                      pages=PageTable(16, extra_pages=7, shared_pages=0, tail="garbage"))


def _sparse(dtype):  # q [4, 32, 1, 256], K/V [4, 8, 32000, 256], 2% kept per KV head
    return DecodeCase(batch=4, num_kv_heads=8, group_size=4, head_dim=256, n_ctx=32000,
                      dtype=dtype, seq_lens=None, scale=1.0, seed=5, q_rank4=True,
                      indices=IndexSet("shuffled", 640))


def _sparse_paged(dtype):  # out [3, 32, 256], 2% kept
    return DecodeCase(batch=3, num_kv_heads=8, group_size=4, head_dim=256, n_ctx=8192,
                      dtype=dtype, seq_lens=(8192, 5000, 1234), scale=1.0, seed=6,
                      pages=PageTable(16, extra_pages=3), indices=IndexSet("sorted", 164))


SEED_CASES = [
    (kernel, make(dtype))
    for dtype in ("float16", "bfloat16")
    for kernel, make in (
        ("prefill", _prefill),
        ("prefill", lambda d: _prefill(d, SEED_LENGTHS)),
        ("prefill_varlen", _varlen),
        ("decode", _decode),
        ("paged_decode", _paged),
        ("sparse_decode", _sparse),
        ("sparse_paged_decode", _sparse_paged),
    )
]


if __name__ == "__main__":  # write the seed shapes into the corpus (fp16, accuracy)
    from tests import corpus_io

    for kernel, case in SEED_CASES:
        if case.dtype == "float16":
            e = corpus_io.entry(kernel, "accuracy", case, "cuda", "seed shape (shipped)")
            print(corpus_io.write(e))
