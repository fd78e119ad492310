"""quantize_kv (kernels/quant.py): an fp16 / bf16 / fp32 KV cache -> (fp8 cache, float32
scale) with cache ~= fp8.float() x scale (vLLM's convention, the k_scale / v_scale of the
decode functions and paged_prefill).

Checked here: the round trip within the format's precision, the default scale (amax / fp8
max, per tensor or per head), saturation, NaN, all-zero slices, an explicit scale, bad
arguments; and decode on quantize_kv's output against the float64 oracle on the
dequantised values. Pure PyTorch except the end-to-end tests (tiny shapes: the kernels
run under the Triton interpreter on CPU).
"""

from __future__ import annotations

import math

import pytest
import torch

import attention_kernel_triton as akt
from attention_kernel_triton.oracles.reference import decode_ref, paged_decode_ref

E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
FP8 = [pytest.param(E4M3, id="e4m3fn"), pytest.param(E5M2, id="e5m2")]
FMAX = {E4M3: 448.0, E5M2: 57344.0}
# Round to nearest: at most half a unit in the last place, 2^-4 of the value for e4m3
# (3 mantissa bits), 2^-3 for e5m2 (2 bits); below the smallest normal an absolute floor
# of scale x the smallest subnormal (2^-9, 2^-16) covers the subnormals and flush to 0.
REL = {E4M3: 2.0**-4, E5M2: 2.0**-3}
FLOOR = {E4M3: 2.0**-9, E5M2: 2.0**-16}
SRC_DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16"),
              pytest.param(torch.bfloat16, id="bf16")]
DENSE, PAGED = (2, 3, 5, 16), (4, 3, 3, 16)  # [B, Hkv, N, D] (head axis 1), [P, S, Hkv, D] (2)
LAYOUTS = [pytest.param(DENSE, 1, id="dense"), pytest.param(PAGED, 2, id="paged")]


def _cache(shape, dtype, device, *, seed=0, head_axis=None, spread=True) -> torch.Tensor:
    """Random values over many magnitudes (normal and subnormal fp8 values after scaling);
    with head_axis, head h is 4^h times larger (so per-head scales differ)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    if spread:
        x = x * 10.0 ** (torch.rand(shape, generator=gen, dtype=torch.float64) * 6 - 4)
    if head_axis is not None:
        view = [1] * len(shape)
        view[head_axis] = -1
        x = x * (4.0 ** torch.arange(shape[head_axis], dtype=torch.float64)).view(view)
    return x.to(dtype).to(device)


def _per_head(scale: torch.Tensor, dim: int, head_axis: int | None) -> torch.Tensor:
    """The scale (float64) shaped to broadcast against a rank-`dim` cache."""
    s = scale.double()
    if head_axis is None:
        return s
    view = [1] * dim
    view[head_axis] = -1
    return s.view(view)


def _dequant(stored: torch.Tensor, scale: torch.Tensor, head_axis: int | None) -> torch.Tensor:
    return stored.double() * _per_head(scale, stored.dim(), head_axis)


def _amax(x: torch.Tensor, head_axis: int | None) -> torch.Tensor:
    """Largest finite magnitude (float32), of the whole tensor or per index of head_axis."""
    a = torch.nan_to_num(x.float(), nan=0.0, posinf=0.0, neginf=0.0).abs()
    if head_axis is None:
        return a.amax()
    return a.movedim(head_axis, 0).flatten(1).amax(1)


def assert_round_trip(x, stored, scale, dtype, head_axis) -> None:
    x64 = x.double()
    err = (_dequant(stored, scale, head_axis) - x64).abs()
    bound = REL[dtype] * (1 + 2.0**-20) * x64.abs() \
        + FLOOR[dtype] * _per_head(scale, x.dim(), head_axis)
    bad = ~(err <= bound)
    assert not bool(bad.any()), (
        f"{int(bad.sum())} values off: x={x64[bad][:4].tolist()}, "
        f"back={_dequant(stored, scale, head_axis)[bad][:4].tolist()}")


def assert_result(stored, scale, cache, dtype, head_axis) -> None:
    assert stored.dtype == dtype and stored.shape == cache.shape
    assert stored.device == cache.device and scale.device == cache.device
    assert scale.dtype == torch.float32 and scale.is_contiguous()
    want = () if head_axis is None else (cache.shape[head_axis],)
    assert tuple(scale.shape) == want


# ------------------------------------------------------------------ round trip, scales
@pytest.mark.parametrize("src", SRC_DTYPES)
@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
@pytest.mark.parametrize("per_head", [False, True], ids=["per-tensor", "per-head"])
def test_round_trip(shape, axis, per_head, dtype, src, device):
    head_axis = axis if per_head else None
    cache = _cache(shape, src, device, head_axis=axis)
    before = cache.clone()
    stored, scale = akt.quantize_kv(cache, dtype=dtype, head_axis=head_axis)
    assert torch.equal(cache, before), "quantize_kv modified its input"
    assert_result(stored, scale, cache, dtype, head_axis)
    assert_round_trip(cache, stored, scale, dtype, head_axis)


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
def test_default_scale_per_tensor(shape, axis, dtype, device):
    """scale = amax / 448 (e4m3fn) or amax / 57344 (e5m2), shape (); the largest magnitude
    is stored as the format's largest finite value."""
    cache = _cache(shape, torch.float32, device, head_axis=axis)
    stored, scale = akt.quantize_kv(cache, dtype=dtype)
    assert scale.shape == ()
    torch.testing.assert_close(scale, _amax(cache, None) / FMAX[dtype], rtol=1e-6, atol=0)
    assert stored.float().abs().amax().item() == FMAX[dtype]
    assert_round_trip(cache, stored, scale, dtype, None)


def test_default_dtype_is_e4m3fn(device):
    cache = _cache(DENSE, torch.float16, device)
    stored, scale = akt.quantize_kv(cache)
    assert stored.dtype == E4M3
    torch.testing.assert_close(scale, _amax(cache, None) / 448.0, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
@pytest.mark.parametrize("negative_axis", [False, True], ids=["axis", "negative-axis"])
def test_default_scale_per_head(shape, axis, negative_axis, dtype, device):
    """head_axis=1 (dense) / 2 (paged), or the same axis counted from the end: shape [H],
    each head's own amax / fp8 max, and each head's largest magnitude stored as the max."""
    cache = _cache(shape, torch.float32, device, head_axis=axis)
    stored, scale = akt.quantize_kv(cache, dtype=dtype,
                                    head_axis=axis - len(shape) if negative_axis else axis)
    assert_result(stored, scale, cache, dtype, axis)
    want = _amax(cache, axis) / FMAX[dtype]
    assert len(set(want.tolist())) == shape[axis]  # the heads' scales differ
    torch.testing.assert_close(scale, want, rtol=1e-6, atol=0)
    for h in range(shape[axis]):
        torch.testing.assert_close(scale[h], _amax(cache.select(axis, h), None) / FMAX[dtype],
                                   rtol=1e-6, atol=0)
        assert stored.select(axis, h).float().abs().amax().item() == FMAX[dtype]
    # one scale for the whole tensor is the largest of the heads'
    _, whole = akt.quantize_kv(cache, dtype=dtype)
    assert whole.item() == scale.max().item()
    assert_round_trip(cache, stored, scale, dtype, axis)


# ------------------------------------------------------------------ saturation, NaN, zeros
@pytest.mark.parametrize("dtype", FP8)
def test_saturation_with_explicit_small_scale(dtype, device):
    """Values beyond scale x max become +-max (a plain .to(fp8) would give NaN for e4m3fn,
    inf for e5m2), +-inf too; values inside the range are rounded as usual."""
    fmax = FMAX[dtype]
    s = 0.5 if dtype == E4M3 else 1e-3
    values = [-10 * fmax * s, -2 * fmax * s, -math.inf, -fmax * s, -20 * s, 0.0, 10 * s,
              fmax * s, 1.5 * fmax * s, math.inf, 1e30]
    cache = torch.tensor(values, dtype=torch.float32, device=device).view(1, 1, 1, -1)
    stored, scale = akt.quantize_kv(cache, dtype=dtype, scale=torch.tensor(s, device=device))
    assert scale.item() == pytest.approx(s, rel=1e-7)
    got = stored.float().view(-1).tolist()
    assert not any(math.isnan(g) or math.isinf(g) for g in got), got
    assert got == [-fmax, -fmax, -fmax, -fmax, -20.0, 0.0, 10.0, fmax, fmax, fmax, fmax]


@pytest.mark.parametrize("dtype", FP8)
def test_saturation_per_head_explicit_scale(dtype, device):
    """Saturation follows each head's own scale (96 = 1.5 x 2^6 is exact in both
    formats)."""
    fmax = FMAX[dtype]
    cache = torch.full((1, 2, 3, 16), 96.0, device=device)
    cache[:, :, 1] = -96.0
    scale = torch.tensor([1.0, 96.0 / fmax / 4], device=device)  # head 1: 4x past the max
    stored, out_scale = akt.quantize_kv(cache, dtype=dtype, head_axis=1, scale=scale)
    assert torch.equal(out_scale, scale)
    h0, h1 = stored[:, 0].float(), stored[:, 1].float()
    assert bool((h0[:, 0] == 96.0).all()) and bool((h0[:, 1] == -96.0).all())
    assert bool((h1[:, 0] == fmax).all()) and bool((h1[:, 1] == -fmax).all())
    assert not bool(stored.float().isnan().any())


@pytest.mark.parametrize("dtype", FP8)
def test_default_scale_ignores_inf_and_saturates_it(dtype, device):
    cache = _cache(DENSE, torch.float32, device)
    cache[0, 1, 2, 3], cache[1, 0, 4, 0] = math.inf, -math.inf
    stored, scale = akt.quantize_kv(cache, dtype=dtype)
    finite = cache.clone()
    finite[~torch.isfinite(finite)] = 0
    torch.testing.assert_close(scale, finite.abs().amax() / FMAX[dtype], rtol=1e-6, atol=0)
    assert stored[0, 1, 2, 3].float().item() == FMAX[dtype]
    assert stored[1, 0, 4, 0].float().item() == -FMAX[dtype]


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize("per_head", [False, True], ids=["per-tensor", "per-head"])
def test_nan_stays_nan(per_head, dtype, device):
    """NaN is stored as NaN; the scale comes from the finite values (never NaN)."""
    head_axis = 1 if per_head else None
    cache = _cache(DENSE, torch.float16, device, head_axis=1)
    nan_at = torch.zeros(DENSE, dtype=torch.bool, device=device)
    nan_at[0, 0, 1, 2] = nan_at[1, 2, 4, 15] = nan_at[1, 1, 0, 0] = True
    cache[nan_at] = math.nan
    stored, scale = akt.quantize_kv(cache, dtype=dtype, head_axis=head_axis)
    assert torch.equal(stored.float().isnan(), nan_at)
    assert bool(torch.isfinite(scale).all()) and bool((scale > 0).all())
    torch.testing.assert_close(scale, _amax(cache, head_axis) / FMAX[dtype], rtol=1e-6, atol=0)
    keep = ~nan_at
    assert_round_trip(cache[keep].view(1, 1, 1, -1), stored[keep].view(1, 1, 1, -1),
                      scale if head_axis is None else scale[
                          torch.arange(3, device=device).view(1, 3, 1, 1)
                          .expand(DENSE)[keep]].view(1, 1, 1, -1),
                      dtype, None if head_axis is None else 3)


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize("fill", [0.0, -0.0], ids=["zero", "negative-zero"])
def test_all_zero_cache_gets_scale_1(fill, dtype, device):
    cache = torch.full(PAGED, fill, dtype=torch.float16, device=device)
    stored, scale = akt.quantize_kv(cache, dtype=dtype)
    assert scale.shape == () and scale.item() == 1.0
    assert bool((stored.float() == 0).all())
    stored, scale = akt.quantize_kv(cache, dtype=dtype, head_axis=2)
    assert torch.equal(scale, torch.ones(PAGED[2], device=device))
    assert bool((stored.float() == 0).all())


@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
def test_all_zero_head_gets_scale_1(shape, axis, dtype, device):
    """Per head, a head whose values are all 0 (or NaN) gets scale 1; the others their own."""
    cache = _cache(shape, torch.float32, device, head_axis=axis)
    cache.select(axis, 1).zero_()
    cache.select(axis, 2).fill_(math.nan)
    stored, scale = akt.quantize_kv(cache, dtype=dtype, head_axis=axis)
    assert scale[1].item() == 1.0 and scale[2].item() == 1.0
    torch.testing.assert_close(scale[0], _amax(cache.select(axis, 0), None) / FMAX[dtype],
                               rtol=1e-6, atol=0)
    assert bool((stored.select(axis, 1).float() == 0).all())
    assert bool(stored.select(axis, 2).float().isnan().all())


@pytest.mark.parametrize("head_axis", [None, 2], ids=["per-tensor", "per-head"])
def test_empty_cache(head_axis, device):
    """No values at all: scale 1 (one per head with head_axis)."""
    cache = torch.empty((0, 3, 2, 16), device=device)
    stored, scale = akt.quantize_kv(cache, head_axis=head_axis)
    assert stored.shape == cache.shape and stored.dtype == E4M3
    assert torch.equal(scale, torch.ones(() if head_axis is None else (2,), device=device))


# ------------------------------------------------------------------ explicit scale
@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize(("shape", "axis"), LAYOUTS)
@pytest.mark.parametrize("per_head", [False, True], ids=["per-tensor", "per-head"])
def test_explicit_scale_used_as_given(shape, axis, per_head, dtype, device):
    """An explicit scale is returned as given (float32) and used as is, not recomputed
    from the values: stored = clamp(cache / scale, +-max) in the fp8 format."""
    head_axis = axis if per_head else None
    cache = _cache(shape, torch.float32, device, head_axis=axis, spread=False)
    given = (torch.tensor([0.25, 0.0625, 2.0][:shape[axis]], dtype=torch.float64, device=device)
             if per_head else torch.tensor(0.03125, dtype=torch.float64, device=device))
    stored, scale = akt.quantize_kv(cache, dtype=dtype, head_axis=head_axis, scale=given)
    assert_result(stored, scale, cache, dtype, head_axis)
    assert torch.equal(scale, given.float())
    assert not torch.equal(scale, _amax(cache, head_axis) / FMAX[dtype])
    want = (cache / _per_head(given.float(), cache.dim(), head_axis).float()) \
        .clamp(-FMAX[dtype], FMAX[dtype]).to(dtype)
    assert torch.equal(stored.view(torch.uint8), want.view(torch.uint8))


def test_explicit_scale_matches_default_when_equal(device):
    """Passing back the default scale gives the same fp8 values."""
    cache = _cache(PAGED, torch.bfloat16, device, head_axis=2)
    stored, scale = akt.quantize_kv(cache, dtype=E5M2, head_axis=2)
    again, scale2 = akt.quantize_kv(cache, dtype=E5M2, head_axis=2, scale=scale)
    assert torch.equal(scale2, scale)
    assert torch.equal(again.view(torch.uint8), stored.view(torch.uint8))


# ------------------------------------------------------------------ bad arguments
def _t(*values, device=None):
    return torch.tensor(values if len(values) != 1 else values[0], dtype=torch.float32,
                        device=device)


BAD = [  # (id, kwargs builder(cache) -> kwargs with the cache, exception, message regex)
    ("cache-int32", lambda c: dict(cache=c.to(torch.int32)), TypeError,
     r"^cache must be a float tensor, got torch\.int32"),
    ("cache-bool", lambda c: dict(cache=c > 0), TypeError,
     r"^cache must be a float tensor, got torch\.bool"),
    ("cache-list", lambda c: dict(cache=c.tolist()), TypeError,
     r"^cache must be a float tensor, got list"),
    ("dtype-float16", lambda c: dict(cache=c, dtype=torch.float16), ValueError,
     r"^dtype must be torch\.float8_e4m3fn or torch\.float8_e5m2, got torch\.float16"),
    ("dtype-bfloat16", lambda c: dict(cache=c, dtype=torch.bfloat16), ValueError,
     r"^dtype must be torch\.float8_e4m3fn or torch\.float8_e5m2"),
    ("dtype-e4m3fnuz", lambda c: dict(cache=c, dtype=torch.float8_e4m3fnuz), ValueError,
     r"^dtype must be torch\.float8_e4m3fn or torch\.float8_e5m2, got torch\.float8_e4m3fnuz"),
    ("dtype-int8", lambda c: dict(cache=c, dtype=torch.int8), ValueError,
     r"^dtype must be torch\.float8_e4m3fn or torch\.float8_e5m2"),
    ("head_axis-4", lambda c: dict(cache=c, head_axis=4), ValueError,
     r"^head_axis 4 is out of range for a rank-4 cache"),
    ("head_axis-minus-5", lambda c: dict(cache=c, head_axis=-5), ValueError,
     r"^head_axis -5 is out of range for a rank-4 cache"),
    ("scale-shape-1-per-tensor", lambda c: dict(cache=c, scale=_t(0.5).view(1)), ValueError,
     r"^scale must be a tensor of shape \(\), got"),
    ("scale-per-head-for-per-tensor", lambda c: dict(cache=c, scale=_t(0.5, 0.5, 0.5)),
     ValueError, r"^scale must be a tensor of shape \(\)"),
    ("scale-scalar-for-per-head", lambda c: dict(cache=c, head_axis=1, scale=_t(0.5)),
     ValueError, r"^scale must be a tensor of shape \(3,\)"),
    ("scale-h-plus-1", lambda c: dict(cache=c, head_axis=1, scale=_t(1, 1, 1, 1)), ValueError,
     r"^scale must be a tensor of shape \(3,\), got"),
    ("scale-h-by-1", lambda c: dict(cache=c, head_axis=1, scale=_t(1, 1, 1).view(3, 1)),
     ValueError, r"^scale must be a tensor of shape \(3,\)"),
    ("scale-zero", lambda c: dict(cache=c, scale=_t(0.0)), ValueError,
     r"^scale must be finite and > 0"),
    ("scale-negative", lambda c: dict(cache=c, scale=_t(-0.5)), ValueError,
     r"^scale must be finite and > 0"),
    ("scale-nan", lambda c: dict(cache=c, scale=_t(math.nan)), ValueError,
     r"^scale must be finite and > 0"),
    ("scale-inf", lambda c: dict(cache=c, scale=_t(math.inf)), ValueError,
     r"^scale must be finite and > 0"),
    ("scale-per-head-one-zero", lambda c: dict(cache=c, head_axis=1, scale=_t(1, 0, 1)),
     ValueError, r"^scale must be finite and > 0"),
    ("scale-per-head-one-negative", lambda c: dict(cache=c, head_axis=1, scale=_t(1, 1, -2)),
     ValueError, r"^scale must be finite and > 0"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_arguments(case, device):
    _, kwargs, exc, match = case
    cache = _cache(DENSE, torch.float16, device)
    kw = kwargs(cache)
    if isinstance(kw.get("scale"), torch.Tensor):
        kw["scale"] = kw["scale"].to(device)
    with pytest.raises(exc, match=match):
        akt.quantize_kv(kw.pop("cache"), **kw)


def test_scale_not_a_tensor(device):
    """A float scale is refused, naming scale. (By kernels/_validate.py's convention a
    non-tensor would be a TypeError; quantize_kv raises ValueError, so either is taken.)"""
    cache = _cache(DENSE, torch.float16, device)
    with pytest.raises((TypeError, ValueError), match=r"^scale must be a tensor"):
        akt.quantize_kv(cache, scale=0.5)


# ------------------------------------------------------------------ end to end: decode
BQ, HQ, HKV, N, D = 2, 4, 2, 40, 32


@pytest.mark.parametrize("num_splits", [1, 2])
@pytest.mark.parametrize("dtype", FP8)
@pytest.mark.parametrize("per_head", [False, True], ids=["per-tensor", "per-head"])
def test_decode_on_quantized_cache(per_head, dtype, num_splits, device):
    """decode on quantize_kv's output (fp16 q) equals the float64 oracle on the dequantised
    values (stored x scale, broadcast on the head axis)."""
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(BQ, HQ, D, generator=gen).half().to(device)
    k = (torch.randn(BQ, HKV, N, D, generator=gen)
         * torch.tensor([1.0, 3.0]).view(1, HKV, 1, 1)).to(device)  # heads of unequal size
    v = (torch.randn(BQ, HKV, N, D, generator=gen)
         * torch.tensor([2.0, 0.5]).view(1, HKV, 1, 1)).to(device)
    head_axis = 1 if per_head else None
    k8, k_scale = akt.quantize_kv(k, dtype=dtype, head_axis=head_axis)
    v8, v_scale = akt.quantize_kv(v, dtype=dtype, head_axis=head_axis)
    out, lse = akt.decode(q, k8, v8, k_scale=k_scale, v_scale=v_scale, num_splits=num_splits,
                          return_lse=True)
    ref_out, ref_lse = decode_ref(q.double(), _dequant(k8, k_scale, head_axis),
                                  _dequant(v8, v_scale, head_axis))
    assert out.dtype == torch.float16 and out.shape == q.shape
    torch.testing.assert_close(out.double(), ref_out, atol=2e-3, rtol=0)
    torch.testing.assert_close(lse.double(), ref_lse, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", FP8)
def test_paged_decode_on_quantized_cache(dtype, device):
    """The paged layout: per-head scales along head_axis=2."""
    gen = torch.Generator().manual_seed(11)
    num_pages, page = 8, 4
    q = torch.randn(BQ, HQ, D, generator=gen).half().to(device)
    k = torch.randn(num_pages, page, HKV, D, generator=gen).to(device)
    v = (torch.randn(num_pages, page, HKV, D, generator=gen)
         * torch.tensor([0.5, 4.0]).view(1, 1, HKV, 1)).to(device)
    table = torch.tensor([[5, 1, 7, 0], [2, 6, 3, 4]], dtype=torch.int32, device=device)
    lens = torch.tensor([13, 16], dtype=torch.int32, device=device)
    k8, k_scale = akt.quantize_kv(k, dtype=dtype, head_axis=2)
    v8, v_scale = akt.quantize_kv(v, dtype=dtype, head_axis=2)
    out, lse = akt.paged_decode(q, k8, v8, table, lens, k_scale=k_scale, v_scale=v_scale,
                                return_lse=True)
    ref_out, ref_lse = paged_decode_ref(q.double(), _dequant(k8, k_scale, 2),
                                        _dequant(v8, v_scale, 2), table, lens)
    torch.testing.assert_close(out.double(), ref_out, atol=2e-3, rtol=0)
    torch.testing.assert_close(lse.double(), ref_lse, atol=1e-4, rtol=0)
