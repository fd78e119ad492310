"""The attention variants (kernels/mods.py: sliding window, soft-cap, sinks, ALiBi) under
the properties, on cases that all have at least one of them, for every public function.

The main test files draw the variants too (tests/sizes.py, VARIANTS: half their cases),
so every property sees them; here each case has some, and the relations that only the
variants have run: a window past every position and sinks of -inf are bit-identical to
none, a huge soft-cap equals none within the accuracy rule, and decode with a window
equals decode over the window's slice of the cache.
"""

import pytest
import torch
from hypothesis import given

import attention_kernel_triton as akt
from attention_kernel_triton.strategies.cases import (
    DecodeCase,
    Fp8Cache,
    PagedPrefillCase,
    PageTable,
    PrefillCase,
    Variants,
    decode_cases,
    paged_prefill_cases,
    prefill_cases,
)
from tests import sizes
from tests.properties import check, properties, with_examples

# The main test files run every other property on variant cases (half their draws);
# here (the "variants" stream, tests/opinfo.py): accuracy on all-variant cases, and the
# relations that draw this stream.

# Edges the ci profile's fixed draws may miss: window 0 (each query sees its own
# position only), a window with a bounded right side on a non-causal call whose rows
# past kv_len see no key, sinks that outweigh every key, the ALiBi series with softcap.
PREFILL_EDGES = [
    PrefillCase(batch=2, num_kv_heads=1, group_size=2, head_dim=16, n_q=20, n_k=20,
                dtype="float16", causal=True, q_lens=None, kv_lens=None, scale=3.0,
                slack_rows=0, seed=31, variants=Variants(window=(0, 0), sinks="large")),
    PrefillCase(batch=2, num_kv_heads=2, group_size=1, head_dim=32, n_q=19, n_k=6,
                dtype="float32", causal=False, q_lens=(19, 4), kv_lens=(6, 0), scale=10.0,
                slack_rows=0, seed=32, variants=Variants(window=(1, 2), softcap=1.0,
                                                         alibi="geometric", sinks="mixed")),
]
DECODE_EDGES = [
    DecodeCase(batch=3, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=40,
               dtype="float16", seq_lens=(40, 0, 17), scale=10.0, seed=33, num_splits=3,
               variants=Variants(window=(16, -1), softcap=50.0, sinks="mixed",
                                 alibi="geometric")),
    # fp8 with per-head scales: the raw scores are q.(stored K) = real / k_scale, so the
    # soft-cap and ALiBi constants must carry k_scale too
    DecodeCase(batch=2, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=24,
               dtype="float16", seq_lens=(24, 9), scale=3.0, seed=35,
               fp8=Fp8Cache("float8_e4m3fn", kv_scale="head", scale_fit="saturate"),
               variants=Variants(softcap=2.0, alibi="random")),
]
PAGED_PREFILL_EDGES = [
    PagedPrefillCase(batch=2, num_kv_heads=1, group_size=3, head_dim=16, n_ctx=24,
                     dtype="float16", seq_lens=(24, 9), q_lens=(9, 9), pages=PageTable(4),
                     causal=True, scale=3.0, seed=34, num_splits=2,
                     variants=Variants(window=(4, 0), sinks="random", alibi="random")),
    PagedPrefillCase(batch=2, num_kv_heads=2, group_size=1, head_dim=16, n_ctx=12,
                     dtype="float16", seq_lens=(12, 5), q_lens=(4, 5), pages=PageTable(4),
                     causal=False, scale=3.0, seed=36,
                     fp8=Fp8Cache("float8_e4m3fn", kv_scale="head", scale_fit="saturate"),
                     variants=Variants(softcap=2.0, alibi="geometric", window=(3, 1))),
]


@pytest.mark.parametrize("prop", properties("prefill", "variants"))
@given(case=prefill_cases(**sizes.prefill(variants="always")))
@with_examples(PREFILL_EDGES)
def test_prefill_variants(prop, case, device):
    check("prefill", prop, case, device)


@pytest.mark.parametrize("prop", properties("prefill_varlen", "variants"))
@given(case=prefill_cases(**sizes.prefill(variants="always"), varlen=True))
def test_prefill_varlen_variants(prop, case, device):
    check("prefill_varlen", prop, case, device)


@pytest.mark.parametrize("prop", properties("decode", "variants"))
@given(case=decode_cases(**sizes.decode(variants="always")))
@with_examples(DECODE_EDGES)
def test_decode_variants(prop, case, device):
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("paged_decode", "variants"))
@given(case=decode_cases(**sizes.decode(variants="always"), paged=True))
def test_paged_decode_variants(prop, case, device):
    check("paged_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("sparse_decode", "variants"))
@given(case=decode_cases(**sizes.decode(variants="always"), sparse=True))
def test_sparse_decode_variants(prop, case, device):
    check("sparse_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("sparse_paged_decode", "variants"))
@given(case=decode_cases(**sizes.decode(variants="always"), sparse=True, paged=True))
def test_sparse_paged_decode_variants(prop, case, device):
    check("sparse_paged_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("paged_prefill", "variants"))
@given(case=paged_prefill_cases(**sizes.paged_prefill(variants="always")))
@with_examples(PAGED_PREFILL_EDGES)
def test_paged_prefill_variants(prop, case, device):
    check("paged_prefill", prop, case, device)


def test_empty_rows_give_the_sink(device):
    """A query that attends no key gives output 0 and LSE = its head's sink: decode with a
    length-0 sequence, prefill rows whose window holds no key."""
    g = torch.Generator().manual_seed(0)
    sinks = torch.tensor([0.5, -3.0, 20.0, float("-inf")], device=device)
    q = torch.randn(2, 4, 16, generator=g).half().to(device)
    k = torch.randn(2, 2, 8, 16, generator=g).half().to(device)
    out, lse = akt.decode(q, k, k, seq_lens=torch.tensor([0, 8], dtype=torch.int32,
                                                         device=device),
                          sinks=sinks, return_lse=True)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    torch.testing.assert_close(lse[0], sinks)  # (sink x log2 e) x ln 2 in fp32
    # non-causal, window (0, 0): query i sees key i + (Lk - Lq) only; Lq 6 > Lk 3: rows
    # 0..2 sit at positions -3..-1 and see nothing
    qp = torch.randn(1, 4, 6, 16, generator=g).half().to(device)
    kp = torch.randn(1, 2, 3, 16, generator=g).half().to(device)
    out, lse = akt.prefill(qp, kp, kp, causal=False, window=(0, 0), sinks=sinks,
                           return_lse=True)
    assert torch.equal(out[0, :, :3], torch.zeros_like(out[0, :, :3]))
    torch.testing.assert_close(lse[0, :, :3], sinks.view(4, 1).expand(4, 3))
    assert torch.isfinite(out).all()
