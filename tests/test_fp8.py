"""fp8 KV caches (float8_e4m3fn, float8_e5m2) under the properties, on cases that are all
fp8: the decode families and paged_prefill, q in fp16 (and bf16 on a GPU), scales per
tensor, per KV head or none, fitted to the values, saturating or pushing them into the
subnormals (strategies/cases.py, ``kv_formats``).

The main test files draw fp8 caches too (tests/sizes.py, KV_DTYPES), so every property
sees them; here each case is fp8, and the relation that only fp8 has runs:
``fp8_equals_dequantized`` (the fp8 call == the call on a 16-bit cache holding the
dequantised values, within the accuracy rule). The interpreter converts fp8 through
kernels/_jit.py's bit decoding (its own conversion is wrong for e4m3fn NaN and e5m2
subnormals); on a GPU the hardware converts.
"""

from dataclasses import replace

import pytest
from hypothesis import given

from attention_kernel_triton.strategies.cases import (
    FP8_DTYPES,
    DecodeCase,
    Fp8Cache,
    IndexSet,
    PagedPrefillCase,
    PageTable,
    decode_cases,
    paged_prefill_cases,
)
from tests import sizes
from tests.properties import check, properties, with_examples

# fp8 caches need fp16 / bf16 q (bf16 only on a GPU: the interpreter's tl.dot)
Q_DTYPES = ("float16", "bfloat16") if sizes.ON_GPU else ("float16",)

# Edges the ci profile's ten fixed draws may miss: per-head scales that saturate, e5m2
# pushed into its subnormals, no scale argument at all (scale 1), a split call.
DECODE_EDGES = [
    DecodeCase(batch=2, num_kv_heads=2, group_size=3, head_dim=16, n_ctx=20,
               dtype="float16", seq_lens=(20, 7), scale=10.0, seed=21,
               fp8=Fp8Cache("float8_e4m3fn", kv_scale="head", scale_fit="saturate")),
    DecodeCase(batch=1, num_kv_heads=1, group_size=2, head_dim=32, n_ctx=33,
               dtype="float16", seq_lens=None, scale=1.0, seed=22, num_splits=3,
               fp8=Fp8Cache("float8_e5m2", kv_scale="tensor", scale_fit="subnormal")),
    DecodeCase(batch=2, num_kv_heads=1, group_size=1, head_dim=24, n_ctx=9,
               dtype="float16", seq_lens=(0, 9), scale=3.0, seed=23,
               fp8=Fp8Cache("float8_e4m3fn", kv_scale="none", scale_fit="amax")),
]
PAGED_EDGES = [replace(c, pages=PageTable(4, tail="garbage"),
                       seq_lens=c.seq_lens or (c.n_ctx,) * c.batch) for c in DECODE_EDGES]
SPARSE_EDGES = [replace(c, indices=IndexSet(kind, 12), seq_lens=c.seq_lens)
                for c, kind in zip(DECODE_EDGES, ("duplicates", "shuffled", "neg_middle"),
                                   strict=True)]
SPARSE_PAGED_EDGES = [replace(c, pages=PageTable(3, tail="garbage")) for c in SPARSE_EDGES]
PAGED_PREFILL_EDGES = [
    PagedPrefillCase(batch=3, num_kv_heads=2, group_size=2, head_dim=32, n_ctx=30,
                     dtype="float16", seq_lens=(30, 7, 0), q_lens=(5, 7, 0),
                     pages=PageTable(3), causal=True, scale=10.0, seed=24,
                     fp8=Fp8Cache("float8_e4m3fn", kv_scale="head", scale_fit="saturate"),
                     slack_rows=2),
    PagedPrefillCase(batch=2, num_kv_heads=1, group_size=3, head_dim=16, n_ctx=20,
                     dtype="float16", seq_lens=(20, 9), q_lens=(1, 9), pages=PageTable(8),
                     causal=False, scale=1.0, seed=25, num_splits=2,
                     fp8=Fp8Cache("float8_e5m2", kv_scale="tensor", scale_fit="subnormal")),
]


def _decode(**kw):
    return decode_cases(**sizes.decode(dtypes=Q_DTYPES, kv_dtypes=FP8_DTYPES, **kw))


@pytest.mark.parametrize("prop", properties("decode", "fp8"))
@given(case=_decode())
@with_examples(DECODE_EDGES)
def test_decode_fp8(prop, case, device):
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("paged_decode", "fp8"))
@given(case=_decode(paged=True))
@with_examples(PAGED_EDGES)
def test_paged_decode_fp8(prop, case, device):
    check("paged_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("sparse_decode", "fp8"))
@given(case=_decode(sparse=True))
@with_examples(SPARSE_EDGES)
def test_sparse_decode_fp8(prop, case, device):
    check("sparse_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("sparse_paged_decode", "fp8"))
@given(case=_decode(sparse=True, paged=True))
@with_examples(SPARSE_PAGED_EDGES)
def test_sparse_paged_decode_fp8(prop, case, device):
    check("sparse_paged_decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("paged_prefill", "fp8"))
@given(case=paged_prefill_cases(**sizes.paged_prefill(dtypes=Q_DTYPES,
                                                      kv_dtypes=FP8_DTYPES)))
@with_examples(PAGED_PREFILL_EDGES)
def test_paged_prefill_fp8(prop, case, device):
    check("paged_prefill", prop, case, device)


def test_fp8_relation_refuses_a_16_bit_case(device):
    """The fp8 relation on a case without fp8 caches is an error, not a silent pass."""
    with pytest.raises(ValueError, match="needs an fp8 case"):
        check("decode", "fp8_equals_dequantized", replace(DECODE_EDGES[0], fp8=None),
              device)
