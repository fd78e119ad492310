"""The harness's own layout machinery: rows stored with NaN gaps, and poisoned copies that
keep the layout of the tensors they replace (a layout change could switch the kernel's
load path between the two runs that unread_memory compares bit for bit)."""

import dataclasses

import pytest
import torch

from attention_kernel_triton.strategies.cases import DecodeCase

from attention_kernel_triton.strategies.tensors import decode_inputs, relayout_like
from attention_kernel_triton.strategies.tensors import _randn
from tests.runners import RUNNERS


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
                      dtype="float16", seq_lens=(5, 12), scale=1.0, seed=7, page_size=4,
                      extra_pages=1, transposed=transposed, row_gap=gap)
    args = decode_inputs(case, "cpu")
    poisoned = RUNNERS["paged_decode"].poison(args)
    for name in ("k_cache", "v_cache"):
        assert poisoned[name].shape[0] == args[name].shape[0] + 1  # the all-NaN page
        assert poisoned[name].stride() == args[name].stride(), name
    # sequence 0's unused token rows are NaN, its used ones unchanged
    table = args["block_table"]
    first = int(table[0, 0])
    assert torch.equal(poisoned["k_cache"][first, :4], args["k_cache"][first, :4])
    assert bool(torch.isnan(poisoned["k_cache"][int(table[0, 1]), 1:]).all())


def test_cases_default_to_no_gap():
    fields = {f.name: f.default for f in dataclasses.fields(DecodeCase)}
    assert fields["row_gap"] == 0  # corpus files written before the field replay unchanged
