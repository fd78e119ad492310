"""The harness's own layout machinery: rows stored with NaN gaps, and poisoned copies that
keep the layout of the tensors they replace (a layout change could switch the kernel's
load path between the two runs that unread_memory compares bit for bit)."""

import dataclasses

import pytest
import torch
from hypothesis import example, given

from attention_kernel_triton.strategies.cases import (
    DecodeCase,
    Layout,
    PagedPrefillCase,
    PageTable,
    paged_prefill_cases,
)
from attention_kernel_triton.strategies.tensors import _randn, decode_inputs, relayout_like
from tests.opinfo import OPS


def _storage_view(t: torch.Tensor) -> torch.Tensor:
    """Every element of t's storage, as a flat tensor of t's dtype."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage())


@pytest.mark.parametrize("perm", [None, (0, 2, 1, 3)])
@pytest.mark.parametrize("gap", [0, 3, 16])
def test_row_gap_holds_nan_and_keeps_values(perm, gap):
    shape, d = (2, 5, 3, 24), 24
    plain = _randn(torch.Generator().manual_seed(1), shape, dtype=torch.float16,
                   device="cpu", perm=perm)
    gapped = _randn(torch.Generator().manual_seed(1), shape, dtype=torch.float16,
                    device="cpu", perm=perm, gap=gap)
    assert torch.equal(gapped, plain)  # the same values, whatever the gap
    assert gapped.stride(-1) == 1
    storage = _storage_view(gapped)
    assert storage.numel() == gapped.numel() // d * (d + gap)
    assert int(torch.isnan(storage).sum()) == gapped.numel() // d * gap


@pytest.mark.parametrize("perm", [None, (0, 2, 1, 3)])
@pytest.mark.parametrize("gap", [0, 3, 16])
def test_relayout_like_copies_strides_and_gap(perm, gap):
    like = _randn(torch.Generator().manual_seed(2), (4, 3, 2, 24), dtype=torch.float16,
                  device="cpu", perm=perm, gap=gap)
    values = torch.randn(like.shape).to(torch.float16)  # contiguous
    got = relayout_like(values, like)
    assert torch.equal(got, values)
    assert got.stride() == like.stride()
    assert int(torch.isnan(_storage_view(got)).sum()) == like.numel() // 24 * gap
    # a single row (every leading size 1): the strides, and so the gap, are kept too
    one = _randn(torch.Generator().manual_seed(3), (1, 1, 1, 16), dtype=torch.float16,
                 device="cpu", gap=gap)
    got = relayout_like(torch.zeros(one.shape, dtype=torch.float16), one)
    assert got.stride() == one.stride() and torch.equal(got, torch.zeros_like(one))
    # one more page in front (the poisoned paged cache appends an all-NaN page)
    more = torch.randn((5, *like.shape[1:])).to(torch.float16)
    got = relayout_like(more, like)
    assert torch.equal(got, more) and got.stride()[1:] == like.stride()[1:]


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("gap", [0, 3])
def test_poisoned_paged_cache_keeps_the_layout(transposed, gap):
    case = DecodeCase(batch=2, num_kv_heads=2, group_size=2, head_dim=20, n_ctx=12,
                      dtype="float16", seq_lens=(5, 12), scale=1.0, seed=7,
                      pages=PageTable(4, extra_pages=1),
                      layout=Layout(transposed=transposed, row_gap=gap))
    args = decode_inputs(case, "cpu")
    poisoned = OPS["paged_decode"].poison(args)
    for name in ("k_cache", "v_cache"):
        assert poisoned[name].shape[0] == args[name].shape[0] + 1  # the all-NaN page
        assert poisoned[name].stride() == args[name].stride(), name
    # sequence 0's unused token rows are NaN, its used ones unchanged
    table = args["block_table"]
    first = int(table[0, 0])
    assert torch.equal(poisoned["k_cache"][first, :4], args["k_cache"][first, :4])
    assert bool(torch.isnan(poisoned["k_cache"][int(table[0, 1]), 1:]).all())


def test_cases_default_to_no_gap():
    fields = {f.name: f.default for f in dataclasses.fields(Layout)}
    assert fields["row_gap"] == 0  # corpus files written before the field replay unchanged
    assert DecodeCase(batch=1, num_kv_heads=1, group_size=1, head_dim=16, n_ctx=1,
                      dtype="float16", seq_lens=None, scale=1.0, seed=0).layout == Layout()


# Every kind of memory the paged prefill poison fills: slack q rows, partial and unused
# pages, shared prefix pages, valid-looking table tails and a table gap.
POISON_PAGED_PREFILL = PagedPrefillCase(
    batch=3, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=12, dtype="float16",
    seq_lens=(7, 12, 0), q_lens=(2, 12, 0), causal=True, scale=1.0, seed=9, slack_rows=3,
    pages=PageTable(3, extra_pages=5, shared_pages=2, tail="valid", page_id_offset=7,
                    table_gap=3),
    layout=Layout(q_transposed=True, transposed=True, row_gap=3))


# The poison builder and the oracle run on the CPU here, on any machine: CPU-sized cases
# (at the GPU's sizes the float64 oracle on the CPU took 221 s of the GPU suite).
@given(case=paged_prefill_cases(max_batch=3, max_kv_heads=2, max_group=4, max_head_dim=64,
                                max_ctx=48, max_q=40, max_page_size=16,
                                dtypes=("float16", "bfloat16", "float32")))
@example(case=POISON_PAGED_PREFILL)
def test_paged_prefill_poison_keeps_oracle(case):
    """The poisoned copy gives the oracle's result bit for bit, and holds NaN in exactly
    what no sequence reads: q rows past cu_seqlens_q[-1] and cache rows no context token
    maps to; table entries past a sequence's last page point at the appended NaN page."""
    op = OPS["paged_prefill"]
    args = op.inputs(case, "cpu")
    poisoned = op.poison(args)
    out, lse = op.oracle(args)
    out_p, lse_p = op.oracle(poisoned)
    assert torch.equal(out_p, out) and torch.equal(lse_p, lse)
    assert not torch.isnan(out).any() and not torch.isnan(lse).any()

    end = int(args["cu_seqlens_q"][-1])
    assert torch.equal(poisoned["q"][:end], args["q"][:end])
    assert bool(torch.isnan(poisoned["q"][end:]).all())
    assert poisoned["q"].stride() == args["q"].stride()

    p, table = case.page_size, args["block_table"]
    num_pages = args["k_cache"].shape[0]
    read = torch.zeros((num_pages, p), dtype=torch.bool)
    for b, n in enumerate(case.seq_lens):
        for t in range(n):
            read[int(table[b, t // p]), t % p] = True
    for name in ("k_cache", "v_cache"):
        cache = poisoned[name]
        assert cache.shape[0] == num_pages + 1 and bool(torch.isnan(cache[num_pages]).all())
        assert torch.equal(cache[:num_pages][read], args[name][read])
        assert bool(torch.isnan(cache[:num_pages][~read]).all())
    for b, n in enumerate(case.seq_lens):
        pages = -(-n // p)
        assert torch.equal(poisoned["block_table"][b, :pages], table[b, :pages])
        assert bool((poisoned["block_table"][b, pages:] == num_pages).all())


def test_interpreter_patch_is_bit_identical(device):
    """tests/interpreter_patch.py (conftest installs it on the CPU): a kernel whose jit
    helpers run per key tile (paged decode with a soft-cap, two splits) gives the same
    bits with and without it, run after run; triton.language is restored after each
    launch, and a jit helper called outside any kernel leaves no launch state behind."""
    import os

    from attention_kernel_triton.kernels._config import interpreting

    if not interpreting():
        pytest.skip("the patch is for the Triton interpreter (CPU runs)")
    import triton.language as tl

    from attention_kernel_triton import paged_decode
    from attention_kernel_triton.kernels import _jit
    from tests import interpreter_patch

    enabled = os.environ.get("INTERPRETER_PATCH", "1") != "0"
    if enabled:
        assert interpreter_patch.installed(), \
            "this Triton's interpreter lacks the names tests/interpreter_patch.py wraps"
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 32, generator=gen, dtype=torch.float16)
    k, v = (torch.randn(6, 8, 2, 32, generator=gen, dtype=torch.float16) for _ in "kv")
    table = torch.tensor([[4, 0, 2], [1, 5, 3]], dtype=torch.int32)
    lens = torch.tensor([21, 9], dtype=torch.int32)

    def run(check_restored=True):
        out = paged_decode(q, k, v, table, lens, softcap=5.0, num_splits=2, return_lse=True)
        if check_restored:
            assert tl.core.is_builtin(tl.load) and tl.core.is_builtin(tl.tensor.__add__), \
                "triton.language was left patched after a launch"
        return out

    assert interpreter_patch.install()
    first = run()
    interpreter_patch.uninstall()
    assert not interpreter_patch.installed()
    try:
        plain = run()
    finally:
        if enabled:
            interpreter_patch.install()
    # a jit helper called outside any kernel: the interpreter's own _patch_lang, whose
    # patches stay (the stock interpreter's leak), and no launch state of ours
    assert _jit.aligned(40, True) == 32
    again = run(check_restored=False)
    for a, b, c in zip(first, again, plain, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
