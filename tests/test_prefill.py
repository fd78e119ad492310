"""Properties of prefill and prefill_varlen, each over cases drawn by Hypothesis."""

from dataclasses import replace

import pytest
from hypothesis import example, given

from attention_kernel_triton.strategies.cases import PrefillCase, prefill_cases
from tests import sizes
from tests.properties import check, properties

# Five (batch, head) pairs and three query tiles (on the CPU's 16-row tiles): chunks of
# 2, 3 and 4 pairs all end short (program_order_agrees, program_order_from_end_agrees).
ODD_PAIRS = PrefillCase(batch=1, num_kv_heads=5, group_size=1, head_dim=16, n_q=40, n_k=40,
                        dtype="float16", causal=True, q_lens=None, kv_lens=None, scale=1.0,
                        slack_rows=0, seed=6)


# Packed sequences that take the TMA path (fp16, power-of-two D, aligned strides) with
# sequences past the first, partial tiles and slack rows: always run, on the CPU too.
TMA_VARLEN = PrefillCase(batch=3, num_kv_heads=1, group_size=2, head_dim=32, n_q=40, n_k=40,
                         dtype="float16", causal=True, q_lens=(17, 40, 33), kv_lens=None,
                         scale=1.0, slack_rows=3, seed=1)
# Padded var-len on the same layout with key lengths that end inside a tile: the tile
# crossing each length is loaded moved back to end at it, and no key past the length may
# be read (unread_memory runs the TMA path too). On the GPU (BLOCK_N 64) these lengths are
# below one tile, so the moved tile starts before the tensor and TMA fills those rows.
TMA_PADDED = replace(TMA_VARLEN, kv_lens=(23, 40, 35), slack_rows=0, seed=4)
# The same with keys shorter than queries (negative causal shift: the first rows of
# sequences 0 and 2 see no key at all).
TMA_PADDED_SHORT_KEYS = replace(TMA_PADDED, kv_lens=(5, 40, 12), seed=5)
# Empty packed tensors on a TMA-eligible layout (a tensor map cannot have a 0 dimension):
# no keys at all, and no queries at all.
NO_KEYS = replace(TMA_VARLEN, batch=2, n_q=5, n_k=0, causal=False, q_lens=(5, 3),
                  kv_lens=(0, 0), slack_rows=0, seed=2)
NO_QUERIES = replace(TMA_VARLEN, batch=2, n_q=0, n_k=0, q_lens=(0, 0), slack_rows=0, seed=3)
# Empty dense tensors (no lengths): no queries, no keys (causal), no batch.
EMPTY_DENSE = [replace(ODD_PAIRS, num_kv_heads=1, group_size=2, n_q=0, n_k=7, seed=7),
               replace(ODD_PAIRS, num_kv_heads=1, group_size=2, n_q=5, n_k=0, seed=8),
               replace(ODD_PAIRS, batch=0, seed=9)]


@pytest.mark.parametrize("prop", properties("prefill"))
@given(case=prefill_cases(**sizes.prefill()))
@example(case=ODD_PAIRS)
@example(case=TMA_PADDED)  # several padded sequences, a query tile that is all padding
@example(case=EMPTY_DENSE[0])
@example(case=EMPTY_DENSE[1])
@example(case=EMPTY_DENSE[2])
def test_prefill(prop, case, device):
    check("prefill", prop, case, device)


@pytest.mark.parametrize("prop", properties("prefill", "padded"))
@given(case=prefill_cases(**sizes.prefill(), padded=True))
@example(case=TMA_PADDED)
@example(case=TMA_PADDED_SHORT_KEYS)
def test_prefill_padded(prop, case, device):
    """Padded var-len drawn every time (the general test draws it half the time)."""
    check("prefill", prop, case, device)


@pytest.mark.parametrize("prop", properties("prefill_varlen"))
@given(case=prefill_cases(**sizes.prefill(), varlen=True))
@example(case=TMA_VARLEN)
@example(case=NO_KEYS)
@example(case=NO_QUERIES)
def test_prefill_varlen(prop, case, device):
    check("prefill_varlen", prop, case, device)


def test_program_order_choice():
    """The host's program order (kernels._config.PREFILL_CHUNK_BYTES): one chunk of all
    pairs only when the call carries lengths and its K/V fits the budget; a forced chunk
    size wins, clamped to [1, pairs]. Query tiles count from each sequence's end only
    with lengths and one pair per chunk."""
    from attention_kernel_triton.kernels import _config

    budget = _config.PREFILL_CHUNK_BYTES
    assert _config.prefill_chunk_pairs(budget, 512, lengths_vary=True) == 512
    assert _config.prefill_chunk_pairs(budget + 1, 512, lengths_vary=True) == 1
    assert _config.prefill_chunk_pairs(1.0, 512, lengths_vary=False) == 1
    assert _config.prefill_chunk_pairs(budget + 1, 512, lengths_vary=False, forced=3) == 3
    assert _config.prefill_chunk_pairs(1.0, 7, lengths_vary=True, forced=1 << 30) == 7
    # query tiles from each sequence's end only with lengths and one pair per chunk;
    # a forced order wins
    assert _config.prefill_tiles_from_end(lengths_vary=True, pairs_per_chunk=1)
    assert not _config.prefill_tiles_from_end(lengths_vary=True, pairs_per_chunk=512)
    assert not _config.prefill_tiles_from_end(lengths_vary=False, pairs_per_chunk=1)
    assert not _config.prefill_tiles_from_end(lengths_vary=True, pairs_per_chunk=1,
                                              forced=False)
    assert _config.prefill_tiles_from_end(lengths_vary=False, pairs_per_chunk=512, forced=True)


def test_gluon_needs_an_nvidia_hopper_gpu(monkeypatch):
    """The Gluon prefill's hardware check (kernels/_config.py nvidia_hopper, which the
    dispatcher and the GPU tests share): CUDA, compute capability 9, and not a ROCm build,
    whose MI200 also reports 9."""
    import torch

    from attention_kernel_triton.kernels import _config

    cuda = torch.device("cuda")
    assert not _config.nvidia_hopper(torch.device("cpu"))
    monkeypatch.setattr(_config, "cc_major", lambda device: 9)
    monkeypatch.setattr(torch.version, "hip", None)
    assert _config.nvidia_hopper(cuda)
    monkeypatch.setattr(torch.version, "hip", "6.2")
    assert not _config.nvidia_hopper(cuda)
    monkeypatch.setattr(torch.version, "hip", None)
    for major in (8, 10):
        monkeypatch.setattr(_config, "cc_major", lambda device, major=major: major)
        assert not _config.nvidia_hopper(cuda)


def test_prefill_grid_shapes():
    """The launch grid (kernels.prefill._grid): one chunk of all pairs as (Hq, B, levels),
    one pair per chunk as (levels, Hq, B), launched x fastest in the kernel's program
    order; other chunkings, sizes past CUDA's y/z limit of 65535, or tuning.prefill_3d_grid
    off take one axis of levels x pairs."""
    from attention_kernel_triton.kernels.prefill import _grid

    assert _grid(16, 8, 64, 512) == ((64, 8, 16), 1)
    assert _grid(16, 8, 64, 1) == ((16, 64, 8), 2)
    assert _grid(16, 8, 64, 3) == ((16 * 512,), 0)
    assert _grid(70000, 2, 4, 8) == ((70000 * 8,), 0)  # levels past gridDim.z
    assert _grid(70000, 2, 4, 1) == ((70000, 4, 2), 2)  # levels on x: no limit there
    assert _grid(3, 70000, 1, 1) == ((3 * 70000,), 0)  # batch past gridDim.z
    assert _grid(16, 8, 64, 512, three_d=False) == ((16 * 512,), 0)


def test_varlen_loose_max_seqlen_q(device, monkeypatch):
    """max_seqlen_q only sizes the grid. A loose bound (3x the longest length + 17, more
    16-row tiles than the packed rows) gives the bits of the exact one: with validate=True, where
    the grid is cut to the longest length (the host reads the lengths anyway), and with
    validate=False, where the extra programs find no rows and write nothing. Rows past
    cu_seqlens_q[-1] keep out='s values in every call."""
    import torch

    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import prefill as prefill_module
    lengths, hq, hkv, d = (5, 33, 0, 20), 4, 2, 32
    g = torch.Generator().manual_seed(0)
    total = sum(lengths) + 3  # 3 rows belong to no sequence
    q = torch.randn(total, hq, d, generator=g).to(torch.float16).to(device)
    k, v = (torch.randn(total, hkv, d, generator=g).to(torch.float16).to(device)
            for _ in range(2))
    cu = torch.tensor([0, 5, 38, 38, 58], dtype=torch.int32, device=device)
    longest = max(lengths)
    grid_q = []
    attend = prefill_module.attend  # a spy on the grid's query length (the plan's input)
    monkeypatch.setattr(prefill_module, "attend",
                        lambda *a, **kw: (grid_q.append(kw["max_q"]), attend(*a, **kw))[1])

    def run(max_seqlen_q, validate):
        out = torch.full_like(q, 7.0)
        return kernels.prefill_varlen(q, k, v, cu, max_seqlen_q=max_seqlen_q,
                                      validate=validate, out=out)

    ref = run(longest, True)
    loose = 3 * longest + 17
    for validate in (True, False):
        got = run(loose, validate)
        assert torch.equal(got, ref), f"validate={validate}: loose max_seqlen_q changed bits"
    assert grid_q == [longest, longest, min(loose, total)], grid_q  # (clamped to the rows)
    assert bool((ref[sum(lengths):] == 7.0).all()), "rows past cu_seqlens_q[-1] were written"
