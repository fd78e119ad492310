"""Property 8 of DESIGN.md: every class of bad input raises the documented error and
writes nothing.

Convention (kernels/_validate.py): ``TypeError`` when an argument is not a tensor or not
the right Python type, ``ValueError`` for everything else (rank, shape, dtype, device,
values). Every message starts with the argument it is about. For each bad-input class the
tests check the exception type, that the message names the argument, that an ``out=``
pre-filled with a sentinel still holds it, and that every input is bit-identical after
the failed call. Each case starts from a valid call (checked by ``test_valid_call``), so
a case fails as soon as the check it targets is removed.

Shapes are tiny: this runs under the Triton interpreter on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch

import attention_kernel_triton as kernels

SENTINEL = 7.0
B, HQ, HKV, D = 2, 4, 2, 16
NQ, NK = 4, 6  # prefill
N = 8  # decode / sparse_decode cache length
NUM_PAGES, PAGE = 6, 3  # paged caches
TABLE = [[4, 1, 0], [2, 5, 3]]  # row 0 uses 2 pages (length 5); row 1 uses all 3
PAGED_LENS = [5, 9]
DENSE_LENS = [5, 8]
IDX_ROW = [0, 4, 2, -1]  # valid for every sequence (all lengths >= 5)
# Packed queries (prefill_varlen, paged_prefill): 3 + 4 rows, every row in a sequence.
TQ, CU_Q, MAX_Q = 7, [0, 3, 7], 4  # paged_prefill: 3 new tokens of 5, 4 of 9 (PAGED_LENS)

FUNCS = ("prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
         "sparse_paged_decode", "paged_prefill")
DECODE_FAMILY = ("decode", "paged_decode", "sparse_decode", "sparse_paged_decode")
WITH_SPLITS = (*DECODE_FAMILY, "paged_prefill")  # take num_splits
WITH_SEQ_LENS = ("prefill", "decode", "paged_decode", "sparse_decode", "sparse_paged_decode",
                 "paged_prefill")
PAGED = ("paged_decode", "sparse_paged_decode", "paged_prefill")
CAUSAL_FUNCS = ("prefill", "prefill_varlen", "paged_prefill")  # take causal=
PACKED = ("prefill_varlen", "paged_prefill")  # q [T, H, D] with cu_seqlens_q, max_seqlen_q
SPARSE = ("sparse_decode", "sparse_paged_decode")
BATCHED_KV = ("prefill", "decode", "sparse_decode")  # k/v carry a batch axis

# Capacity of seq_lens: Nq for prefill, N for dense decode, max_pages * page size if paged.
CAPACITY = {"prefill": NQ, "decode": N, "sparse_decode": N,
            **{fn: len(TABLE[0]) * PAGE for fn in PAGED}}


@dataclass
class Call:
    """One call of a public function, every argument by name (positional ones too)."""

    fn_name: str
    positional: tuple[str, ...]
    args: dict = field(default_factory=dict)

    def __call__(self):
        kw = dict(self.args)
        pos = [kw.pop(name) for name in self.positional if name in kw]  # trailing ones optional
        return getattr(kernels, self.fn_name)(*pos, **kw)

    @property
    def k(self) -> str:
        return "k_cache" if self.fn_name in PAGED else "k"

    @property
    def v(self) -> str:
        return "v_cache" if self.fn_name in PAGED else "v"

    @property
    def head_axis(self) -> int:  # axis of Hkv in k/v
        return 2 if self.fn_name in PAGED else 1

    def tensors(self) -> dict:
        return {n: t for n, t in self.args.items() if isinstance(t, torch.Tensor)}


def _i32(values, device) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int32, device=device)


def build(fn_name: str, device, *, hq: int = HQ, hkv: int = HKV, d: int = D,
          dtype=torch.float32) -> Call:
    """A valid call of `fn_name` with `out=` pre-filled with SENTINEL."""
    gen = torch.Generator().manual_seed(1234)

    def rnd(*shape):
        return torch.randn(shape, generator=gen).to(dtype).to(device)

    if fn_name == "prefill":
        call = Call(fn_name, ("q", "k", "v"), dict(
            q=rnd(B, hq, NQ, d), k=rnd(B, hkv, NK, d), v=rnd(B, hkv, NK, d),
            seq_lens=_i32([3, 4], device), kv_seq_lens=_i32([5, 6], device)))
    elif fn_name == "prefill_varlen":
        call = Call(fn_name, ("q", "k", "v", "cu_seqlens_q", "cu_seqlens_k"), dict(
            q=rnd(TQ, hq, d), k=rnd(9, hkv, d), v=rnd(9, hkv, d),
            cu_seqlens_q=_i32(CU_Q, device), cu_seqlens_k=_i32([0, 4, 9], device),
            max_seqlen_q=MAX_Q, max_seqlen_k=5))
    elif fn_name in ("decode", "sparse_decode"):
        call = Call(fn_name, ("q", "k", "v"), dict(
            q=rnd(B, hq, d), k=rnd(B, hkv, N, d), v=rnd(B, hkv, N, d),
            seq_lens=_i32(DENSE_LENS, device)))
    else:  # a paged cache
        call = Call(fn_name, ("q", "k_cache", "v_cache", "block_table", "seq_lens"), dict(
            q=rnd(B, hq, d), k_cache=rnd(NUM_PAGES, PAGE, hkv, d),
            v_cache=rnd(NUM_PAGES, PAGE, hkv, d), block_table=_i32(TABLE, device),
            seq_lens=_i32(PAGED_LENS, device)))
        if fn_name == "paged_prefill":  # packed new tokens, the last ones of each context
            call.positional = ("q", "k_cache", "v_cache", "block_table", "cu_seqlens_q",
                               "seq_lens")
            call.args.update(q=rnd(TQ, hq, d), cu_seqlens_q=_i32(CU_Q, device),
                             max_seqlen_q=MAX_Q)
    if fn_name in SPARSE:
        call.positional += ("indices",)
        call.args["indices"] = _i32([[IDX_ROW] * hkv] * B, device)
    call.args["out"] = torch.full(call.args["q"].shape, SENTINEL, dtype=dtype, device=device)
    return call


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def _snapshot(call: Call) -> dict:
    return {n: (t.clone(), t.shape, t.stride(), t.dtype) for n, t in call.tensors().items()}


def _assert_unchanged(call: Call, snap: dict) -> None:
    for name, (before, shape, stride, dtype) in snap.items():
        after = call.args[name]
        assert (after.shape, after.stride(), after.dtype) == (shape, stride, dtype), name
        assert torch.equal(_bits(after), _bits(before)), f"{name} was modified"


def assert_rejects(call: Call, exc: type[Exception], match: str) -> None:
    snap = _snapshot(call)
    with pytest.raises(exc, match=match):
        call()
    _assert_unchanged(call, snap)
    out = call.args.get("out")
    if isinstance(out, torch.Tensor) and out.is_floating_point():
        assert bool((out == SENTINEL).all()), "out= was written by a call that failed"


def assert_accepts(call: Call) -> torch.Tensor:
    snap = {n: v for n, v in _snapshot(call).items() if n != "out"}
    result = call()
    _assert_unchanged(call, snap)
    return result


# --------------------------------------------------------------------------- mutations
# A mutation takes the valid Call (and the device) and returns the bad Call.

def _strided_last(t: torch.Tensor) -> torch.Tensor:
    """Same values, stride 2 in the last dim."""
    return torch.stack([t, t], dim=-1).flatten(-2)[..., ::2]


def _set(name: str, fn: Callable) -> Callable:
    def mutate(call: Call, device) -> Call:
        call.args[name] = fn(call.args[name])
        return call
    return mutate


def _set_k(fn: Callable) -> Callable:
    return lambda call, device: _set(call.k, fn)(call, device)


def _set_v(fn: Callable) -> Callable:
    return lambda call, device: _set(call.v, fn)(call, device)


def _rebuild(**shape) -> Callable:
    return lambda call, device: build(call.fn_name, device, **shape)


def _all_float(dtype) -> Callable:
    def mutate(call: Call, device) -> Call:
        for name in ("q", call.k, call.v, "out"):
            call.args[name] = call.args[name].to(dtype)
        return call
    return mutate


def _kv_head_dim(d: int) -> Callable:
    def mutate(call: Call, device) -> Call:
        for name in (call.k, call.v):
            t = call.args[name]
            call.args[name] = torch.cat([t] * math.ceil(d / D), dim=-1)[..., :d].contiguous()
        return call
    return mutate


def _v_one_head(call: Call, device) -> Call:
    call.args[call.v] = call.args[call.v].narrow(call.head_axis, 0, 1).contiguous()
    return call


def _kv_extra_batch(call: Call, device) -> Call:
    for name in (call.k, call.v):
        t = call.args[name]
        call.args[name] = torch.cat([t, t[:1]])
    return call


def _arg(name: str, value) -> Callable:
    def mutate(call: Call, device) -> Call:
        call.args[name] = value
        return call
    return mutate


def _lens(name: str, values) -> Callable:
    return lambda call, device: _arg(name, _i32(values, device))(call, device)


def _item(name: str, index: tuple, value) -> Callable:
    def mutate(call: Call, device) -> Call:
        t = call.args[name].clone()
        t[index] = value
        call.args[name] = t
        return call
    return mutate


def _del(name: str) -> Callable:
    def mutate(call: Call, device) -> Call:
        call.args.pop(name)
        return call
    return mutate


def _both(*mutations: Callable) -> Callable:
    def mutate(call: Call, device) -> Call:
        for m in mutations:
            call = m(call, device)
        return call
    return mutate


def _out_like(fn: Callable) -> Callable:
    return _set("out", fn)


# (id, mutation, exception, regex on the message; "{k}"/"{v}" are the k/v argument names)
COMMON_CASES = [
    ("q-not-tensor", _set("q", lambda t: t.tolist()), TypeError, r"^q must be a torch\.Tensor"),
    ("k-not-tensor", _set_k(lambda t: t.tolist()), TypeError, r"^{k} must be a torch\.Tensor"),
    ("v-not-tensor", _set_v(lambda t: t.tolist()), TypeError, r"^{v} must be a torch\.Tensor"),
    ("q-rank", _set("q", lambda t: t.flatten(0, 1)), ValueError, r"^q must have rank"),
    ("k-rank", _set_k(lambda t: t.flatten(0, 1)), ValueError, r"^{k} must have rank"),
    ("v-rank", _set_v(lambda t: t[None]), ValueError, r"^{v} must have rank"),
    ("q-float64", _all_float(torch.float64), ValueError,
     r"^q must be float16, bfloat16 or float32, got torch\.float64"),
    ("q-int32", _set("q", lambda t: (t * 10).to(torch.int32)), ValueError,
     r"^q must be float16, bfloat16 or float32, got torch\.int32"),
    ("q-int64-all", _all_float(torch.int64), ValueError, r"^q must be float16, bfloat16"),
    ("k-dtype-mismatch", _set_k(lambda t: t.half()), ValueError,
     r"^{k} must have dtype torch\.float32 like q, got torch\.float16"),
    ("v-dtype-mismatch", _set_v(lambda t: t.bfloat16()), ValueError,
     r"^{v} must have dtype torch\.float32 like q"),
    ("fp16-q-bf16-kv", _both(_all_float(torch.float16), _set_k(lambda t: t.bfloat16()),
                             _set_v(lambda t: t.bfloat16())), ValueError,
     r"^{k} must have dtype torch\.float16 like q, got torch\.bfloat16"),
    ("bf16-q-fp16-v", _both(_all_float(torch.bfloat16), _set_v(lambda t: t.half())), ValueError,
     r"^{v} must have dtype torch\.bfloat16 like q, got torch\.float16"),
    ("q-last-dim-strided", _set("q", _strided_last), ValueError,
     r"^q must be contiguous in its last"),
    ("k-last-dim-strided", _set_k(_strided_last), ValueError,
     r"^{k} must be contiguous in its last"),
    ("v-last-dim-strided", _set_v(_strided_last), ValueError,
     r"^{v} must be contiguous in its last"),
    ("head-dim-15", _rebuild(d=15), ValueError, r"head dim D must be in \[16, 256\], got 15"),
    ("head-dim-257", _rebuild(d=257), ValueError, r"head dim D must be in \[16, 256\], got 257"),
    ("hq-3-hkv-2", _rebuild(hq=3, hkv=2), ValueError,
     r"^Hq % Hkv must be 0 \(query heads 3, KV heads 2\)"),
    ("hq-4-hkv-3", _rebuild(hq=4, hkv=3), ValueError, r"^Hq % Hkv must be 0"),
    ("kv-head-dim-mismatch", _kv_head_dim(32), ValueError,
     r"^{k} must have head dim 16 like q, got 32"),
    ("k-v-hkv-mismatch", _v_one_head, ValueError, r"^{k} and {v} must have the same shape"),
    ("sm-scale-nan", _arg("sm_scale", float("nan")), ValueError, r"^sm_scale must be finite"),
    ("sm-scale-inf", _arg("sm_scale", float("inf")), ValueError, r"^sm_scale must be finite"),
    ("sm-scale-neg-inf", _arg("sm_scale", -math.inf), ValueError, r"^sm_scale must be finite"),
    ("sm-scale-zero", _arg("sm_scale", 0.0), ValueError, r"^sm_scale must be finite and > 0"),
    ("sm-scale-negative", _arg("sm_scale", -0.25), ValueError,
     r"^sm_scale must be finite and > 0"),
    ("sm-scale-bool", _arg("sm_scale", True), TypeError, r"^sm_scale must be a float"),
    ("sm-scale-str", _arg("sm_scale", "0.25"), TypeError, r"^sm_scale must be a float"),
    ("sm-scale-tensor", _arg("sm_scale", torch.tensor(0.25)), TypeError,
     r"^sm_scale must be a float"),
    # finite in float64, not as the kernels' fp32 factors (1e39: an all-NaN output before)
    ("sm-scale-fp32-overflow", _arg("sm_scale", 1e39), ValueError,
     r"^sm_scale x log2\(e\) = 1.44e\+39 is outside fp32's normal range .*: sm_scale too"),
    ("sm-scale-fp32-underflow", _arg("sm_scale", 1e-300), ValueError,
     r"^sm_scale x log2\(e\) = .* is outside fp32's normal range"),
    ("sm-scale-huge-int", _arg("sm_scale", 10**400), ValueError,
     r"^sm_scale must be finite and > 0, got an int of 1329 bits"),
    ("out-not-tensor", _set("out", lambda t: t.tolist()), TypeError,
     r"^out must be a torch\.Tensor"),
    ("out-wrong-shape", _out_like(lambda t: torch.full((t.shape[0] + 1, *t.shape[1:]),
                                                       SENTINEL, dtype=t.dtype)), ValueError,
     r"^out must have shape"),
    ("out-missing-dim", _out_like(lambda t: t[..., 0].clone()), ValueError,
     r"^out must have shape"),
    ("out-float16", _out_like(lambda t: t.half()), ValueError,
     r"^out must have dtype torch\.float32 like q, got torch\.float16"),
    ("out-last-dim-strided", _out_like(_strided_last), ValueError,
     r"^out must be contiguous in its last"),
]


def _materialize(call: Call, device) -> Call:
    """Move list/untyped sentinels created by lambdas (out= built on CPU) to the device."""
    out = call.args.get("out")
    if isinstance(out, torch.Tensor):
        call.args["out"] = out.to(device)
    return call


def _check(fn_name: str, device, mutation: Callable, exc, match: str) -> None:
    call = _materialize(mutation(build(fn_name, device), device), device)
    assert_rejects(call, exc, match.format(k=call.k, v=call.v))


@pytest.mark.parametrize("fn_name", FUNCS)
def test_valid_call(fn_name, device):
    """The base call every error case starts from is accepted and writes all of out=."""
    call = build(fn_name, device)
    out = assert_accepts(call)
    assert out is call.args["out"]
    assert torch.isfinite(out).all()
    assert not bool((out == SENTINEL).any())
    # ... and so is the same call without validation.
    call = build(fn_name, device)
    call.args["validate"] = False
    assert_accepts(call)


@pytest.mark.parametrize("case", COMMON_CASES, ids=[c[0] for c in COMMON_CASES])
@pytest.mark.parametrize("fn_name", FUNCS)
def test_bad_tensor_arguments(fn_name, case, device):
    """Rank, dtype, strides, head dim, GQA, k/v agreement, sm_scale, out=."""
    _, mutation, exc, match = case
    _check(fn_name, device, mutation, exc, match)


@pytest.mark.parametrize("fn_name", BATCHED_KV)
def test_batch_mismatch(fn_name, device):
    _check(fn_name, device, _kv_extra_batch, ValueError, r"^k must have batch 2 like q")


@pytest.mark.parametrize("fn_name", ("prefill", "prefill_varlen"))
def test_prefill_k_v_length_mismatch(fn_name, device):
    """k and v must agree on the key axis as well."""
    axis = 2 if fn_name == "prefill" else 0
    _check(fn_name, device, _set_v(lambda t: t.narrow(axis, 0, t.shape[axis] - 1)),
           ValueError, r"^k and v must have the same shape")


# ------------------------------------------------------------------------ lengths
def _lens_cases(fn_name: str) -> list:
    cap = CAPACITY[fn_name]
    return [
        ("int64", _set("seq_lens", lambda t: t.long()), ValueError,
         r"^seq_lens must be int32, got torch\.int64"),
        ("float", _set("seq_lens", lambda t: t.float()), ValueError,
         r"^seq_lens must be int32"),
        ("not-tensor", _set("seq_lens", lambda t: t.tolist()), TypeError,
         r"^seq_lens must be a torch\.Tensor"),
        ("too-long", _set("seq_lens", lambda t: torch.cat([t, t[:1]])), ValueError,
         r"^seq_lens must have shape \(2,\)"),
        ("too-short", _set("seq_lens", lambda t: t[:1]), ValueError,
         r"^seq_lens must have shape \(2,\)"),
        ("2d", _set("seq_lens", lambda t: t[:, None]), ValueError,
         r"^seq_lens must have shape \(2,\)"),
        ("strided", _set("seq_lens", _strided_last), ValueError,
         r"^seq_lens must be contiguous, got stride 2"),
        ("negative", _item("seq_lens", (0,), -1), ValueError,
         r"^seq_lens must be >= 0, got a length of -1"),
        ("beyond-capacity", _item("seq_lens", (1,), cap + 1), ValueError,
         rf"^seq_lens must be <= {cap}"),
    ]


LENS_PARAMS = [pytest.param(fn, *case[1:], id=f"{fn}-seq_lens-{case[0]}")
               for fn in WITH_SEQ_LENS for case in _lens_cases(fn)]


@pytest.mark.parametrize(("fn_name", "mutation", "exc", "match"), LENS_PARAMS)
def test_bad_seq_lens(fn_name, mutation, exc, match, device):
    _check(fn_name, device, mutation, exc, match)


KV_LENS_CASES = [
    ("int64", _set("kv_seq_lens", lambda t: t.long()), ValueError,
     r"^kv_seq_lens must be int32"),
    ("not-tensor", _set("kv_seq_lens", lambda t: t.tolist()), TypeError,
     r"^kv_seq_lens must be a torch\.Tensor"),
    ("wrong-shape", _set("kv_seq_lens", lambda t: torch.cat([t, t])), ValueError,
     r"^kv_seq_lens must have shape \(2,\)"),
    ("negative", _item("kv_seq_lens", (1,), -2), ValueError, r"^kv_seq_lens must be >= 0"),
    ("beyond-nk", _item("kv_seq_lens", (0,), NK + 1), ValueError,
     rf"^kv_seq_lens must be <= {NK}"),
    ("without-seq_lens", _del("seq_lens"), ValueError, r"^kv_seq_lens needs seq_lens"),
]


@pytest.mark.parametrize("case", KV_LENS_CASES, ids=[c[0] for c in KV_LENS_CASES])
def test_prefill_bad_kv_seq_lens(case, device):
    _, mutation, exc, match = case
    _check("prefill", device, mutation, exc, match)


def test_prefill_seq_lens_default_kv_beyond_nk(device):
    """Without kv_seq_lens the key lengths are seq_lens, bounded by Nk too."""
    def mutate(call, dev):
        call.args.pop("kv_seq_lens")
        call.args["q"] = torch.cat([call.args["q"]] * 2, dim=2)  # Nq = 8 > Nk = 6
        call.args["out"] = torch.full_like(call.args["q"], SENTINEL)
        call.args["seq_lens"] = _i32([7, 2], dev)
        return call
    _check("prefill", device, mutate, ValueError,
           r"seq_lens \(also the key lengths, kv_seq_lens not given\) must be <= 6")


# ------------------------------------------------------------------------ varlen
CU_Q_CASES = [  # packed q [T, H, D]: prefill_varlen and paged_prefill alike
    ("cu_q-int64", _set("cu_seqlens_q", lambda t: t.long()), ValueError,
     r"^cu_seqlens_q must be int32, got torch\.int64"),
    ("cu_q-not-tensor", _set("cu_seqlens_q", lambda t: t.tolist()), TypeError,
     r"^cu_seqlens_q must be a torch\.Tensor"),
    ("cu_q-2d", _set("cu_seqlens_q", lambda t: t[None]), ValueError,
     r"^cu_seqlens_q must have shape \(B \+ 1,\)"),
    ("cu_q-empty", _set("cu_seqlens_q", lambda t: t[:0]), ValueError,
     r"^cu_seqlens_q must have shape \(B \+ 1,\)"),
    ("cu_q-strided", _set("cu_seqlens_q", _strided_last), ValueError,
     r"^cu_seqlens_q must be contiguous, got stride 2"),
    ("cu_q-not-from-0", _lens("cu_seqlens_q", [1, 3, 7]), ValueError,
     r"^cu_seqlens_q must start at 0, got 1"),
    ("cu_q-decreasing", _lens("cu_seqlens_q", [0, 4, 3]), ValueError,
     r"^cu_seqlens_q must be non-decreasing"),
    ("cu_q-past-end", _lens("cu_seqlens_q", [0, 3, 8]), ValueError,
     r"^cu_seqlens_q ends at 8, past the 7 packed rows"),
    ("max_seqlen_q-too-small", _arg("max_seqlen_q", 3), ValueError,
     r"^max_seqlen_q=3 is smaller than the longest query sequence \(4\)"),
    ("max_seqlen_q-zero", _arg("max_seqlen_q", 0), ValueError,
     r"^max_seqlen_q=0 is smaller than the longest query sequence \(4\)"),
    ("max_seqlen_q-negative", _arg("max_seqlen_q", -1), ValueError,
     r"^max_seqlen_q must be >= 0, got -1"),
]

VARLEN_CASES = [  # prefill_varlen's keys
    ("cu_k-int64", _set("cu_seqlens_k", lambda t: t.long()), ValueError,
     r"^cu_seqlens_k must be int32"),
    ("cu_k-not-from-0", _lens("cu_seqlens_k", [2, 4, 9]), ValueError,
     r"^cu_seqlens_k must start at 0"),
    ("cu_k-decreasing", _lens("cu_seqlens_k", [0, 5, 4]), ValueError,
     r"^cu_seqlens_k must be non-decreasing"),
    ("cu_k-past-end", _lens("cu_seqlens_k", [0, 4, 10]), ValueError,
     r"^cu_seqlens_k ends at 10, past the 9 packed rows"),
    ("cu_k-entry-count", _lens("cu_seqlens_k", [0, 9]), ValueError,
     r"^cu_seqlens_k must have 3 entries like cu_seqlens_q, got 2"),
    ("cu_q-default-k-past-end", _both(_del("cu_seqlens_k"), _arg("max_seqlen_k", None),
                                      _set("k", lambda t: t[:5]), _set("v", lambda t: t[:5])),
     ValueError, r"ends at 7, past the 5 packed rows"),
    ("max_seqlen_k-too-small", _arg("max_seqlen_k", 4), ValueError,
     r"^max_seqlen_k=4 is smaller than the longest key sequence \(5\)"),
]

QLEN_OVER_CONTEXT = r"seq_lens counts the new tokens too, so it must be >= the query length"
PAGED_PREFILL_CASES = [  # B = len(cu_seqlens_q) - 1 sequences, new tokens within the context
    ("q-rank-4", _set("q", lambda t: t[None]), ValueError,
     r"^q must have rank 3 \[Tq, Hq, D\], got shape \(1, 7, 4, 16\)"),
    ("q_len-over-seq_len-b0", _lens("seq_lens", [2, 9]), ValueError,
     r"^sequence 0 has 3 new tokens \(cu_seqlens_q\) but a context of seq_lens\[0\] = 2: "
     + QLEN_OVER_CONTEXT),
    ("q_len-over-seq_len-b1", _lens("seq_lens", [5, 3]), ValueError,
     r"^sequence 1 has 4 new tokens \(cu_seqlens_q\) but a context of seq_lens\[1\] = 3: "
     + QLEN_OVER_CONTEXT),
    ("q_len-over-empty-context", _lens("seq_lens", [0, 9]), ValueError,
     r"^sequence 0 has 3 new tokens .* seq_lens\[0\] = 0: " + QLEN_OVER_CONTEXT),
    ("table-batch-fewer-than-cu", _both(_lens("cu_seqlens_q", [0, 7]), _arg("max_seqlen_q", 7)),
     ValueError, r"^block_table must have shape \(1, max_pages\), got \(2, 3\)"),
    ("table-batch-more-than-cu", _lens("cu_seqlens_q", [0, 3, 5, 7]), ValueError,
     r"^block_table must have shape \(3, max_pages\), got \(2, 3\)"),
    ("table-batch-no-sequences", _lens("cu_seqlens_q", [0]), ValueError,
     r"^block_table must have shape \(0, max_pages\), got \(2, 3\)"),
    ("seq_lens-batch-vs-cu", _both(_lens("cu_seqlens_q", [0, 3, 5, 7]),
                                   _set("block_table", lambda t: torch.cat([t, t[:1]]))),
     ValueError, r"^seq_lens must have shape \(3,\), got \(2,\)"),
]

PACKED_PARAMS = [pytest.param(fn, *case[1:], id=f"{fn}-{case[0]}")
                 for fn in PACKED for case in CU_Q_CASES] + [
    pytest.param("prefill_varlen", *case[1:], id=f"prefill_varlen-{case[0]}")
    for case in VARLEN_CASES] + [
    pytest.param("paged_prefill", *case[1:], id=f"paged_prefill-{case[0]}")
    for case in PAGED_PREFILL_CASES]


@pytest.mark.parametrize(("fn_name", "mutation", "exc", "match"), PACKED_PARAMS)
def test_packed_bad_lengths(fn_name, mutation, exc, match, device):
    """cu_seqlens_q / max_seqlen_q of both packed calls; prefill_varlen's keys;
    paged_prefill's batch agreement (table and seq_lens vs cu_seqlens_q) and new tokens
    within the context."""
    _check(fn_name, device, mutation, exc, match)


@pytest.mark.parametrize("max_seqlen_q", [MAX_Q, TQ + 100], ids=["exact", "past-tq"])
@pytest.mark.parametrize("seq_lens", [PAGED_LENS, [3, 4]], ids=["context", "no-context"])
def test_paged_prefill_bounds_accepted(seq_lens, max_seqlen_q, device):
    """The bounds are inclusive: q_len == seq_len (no cached context, a plain prefill)
    and max_seqlen_q == the longest (or past the packed rows) are accepted."""
    call = build("paged_prefill", device)
    call.args.update(seq_lens=_i32(seq_lens, device), max_seqlen_q=max_seqlen_q)
    out = assert_accepts(call)
    assert torch.isfinite(out).all() and not bool((out == SENTINEL).any())


def test_prefill_varlen_grid_limit(device):
    """65536 one-token sequences x 64 heads with max_seqlen_q = 65536: over 2**31 programs
    (query tiles x pairs) at any BLOCK_M <= 64. A ValueError that says so, not an
    overflow in the launcher."""
    import attention_kernel_triton as kernels

    t, hq = 65536, 64
    q = torch.zeros(t, hq, 16, dtype=torch.float16, device=device)
    kv = torch.zeros(t, 1, 16, dtype=torch.float16, device=device)
    cu = torch.arange(t + 1, dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match=r"programs, more than one CUDA grid holds"):
        kernels.prefill_varlen(q, kv, kv, cu, max_seqlen_q=t, validate=False)


@pytest.mark.parametrize("value", [2.5, "4", True], ids=["float", "str", "bool"])
@pytest.mark.parametrize(("fn_name", "name"), [
    ("prefill_varlen", "max_seqlen_q"), ("prefill_varlen", "max_seqlen_k"),
    ("paged_prefill", "max_seqlen_q")])
def test_max_seqlen_wrong_type(fn_name, name, value, device):
    """A max_seqlen_* that is not an int is a wrong Python type: TypeError naming it, by
    the convention of kernels/_validate.py."""
    _check(fn_name, device, _arg(name, value), TypeError, rf"^{name} must be an int, got")


# ------------------------------------------------------------------------ decode family
SPLIT_CASES = [
    ("zero", 0, ValueError, r"^num_splits must be in \[1, 65535\] .*, got 0"),
    ("negative", -2, ValueError, r"^num_splits must be in \[1, 65535\]"),
    ("past the grid", 65536, ValueError, r"^num_splits must be in \[1, 65535\] .*got 65536"),
    ("float", 1.5, TypeError, r"^num_splits must be an int, got float"),
    ("integral-float", 2.0, TypeError, r"^num_splits must be an int"),
    ("bool", True, TypeError, r"^num_splits must be an int, got bool"),
    ("str", "2", TypeError, r"^num_splits must be an int"),
]


@pytest.mark.parametrize("case", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
@pytest.mark.parametrize("fn_name", WITH_SPLITS)
def test_bad_num_splits(fn_name, case, device):
    _, value, exc, match = case
    _check(fn_name, device, _arg("num_splits", value), exc, match)


@pytest.mark.parametrize("fn_name", DECODE_FAMILY)
@pytest.mark.parametrize("n_q", [0, 2])
def test_decode_query_4d_needs_one_token(fn_name, n_q, device):
    def mutate(call, dev):
        q = call.args["q"]
        call.args["q"] = q[:, :, None].expand(-1, -1, n_q, -1).contiguous()
        call.args["out"] = torch.full_like(call.args["q"], SENTINEL)
        return call
    _check(fn_name, device, mutate, ValueError, r"^q must be \[B, Hq, D\] or \[B, Hq, 1, D\]")


@pytest.mark.parametrize("fn_name", DECODE_FAMILY)
def test_decode_out_must_mirror_q(fn_name, device):
    """q [B, Hq, 1, D] needs out [B, Hq, 1, D]; the 3-D shape is rejected."""
    _check(fn_name, device, _set("q", lambda t: t[:, :, None]), ValueError,
           r"^out must have shape \(2, 4, 1, 16\)")


@pytest.mark.parametrize("fn_name", DECODE_FAMILY)
def test_decode_query_4d_accepted(fn_name, device):
    call = build(fn_name, device)
    call.args["q"] = call.args["q"][:, :, None]
    call.args["out"] = call.args["out"][:, :, None]
    out = assert_accepts(call)
    assert out.shape == (B, HQ, 1, D) and not bool((out == SENTINEL).any())


# ------------------------------------------------------------------------ paged
_PAGE_SIZE_0 = _both(_set("k_cache", lambda t: t[:, :0]), _set("v_cache", lambda t: t[:, :0]))
PAGED_CASES = [
    ("table-int64", _set("block_table", lambda t: t.long()), ValueError,
     r"^block_table must be int32, got torch\.int64"),
    ("table-not-tensor", _set("block_table", lambda t: t.tolist()), TypeError,
     r"^block_table must be a torch\.Tensor"),
    ("table-1d", _set("block_table", lambda t: t.reshape(-1)), ValueError,
     r"^block_table must have shape \(2, max_pages\)"),
    ("table-3d", _set("block_table", lambda t: t[None]), ValueError,
     r"^block_table must have shape \(2, max_pages\)"),
    ("table-batch", _set("block_table", lambda t: torch.cat([t, t[:1]])), ValueError,
     r"^block_table must have shape \(2, max_pages\)"),
    ("seq_len-needs-more-pages", _item("seq_lens", (0,), 3 * PAGE + 1), ValueError,
     rf"^seq_lens must be <= {3 * PAGE}"),
    ("short-table-row", _set("block_table", lambda t: t[:, :2].contiguous()), ValueError,
     rf"^seq_lens must be <= {2 * PAGE}"),
    ("used-entry-negative", _item("block_table", (1, 1), -1), ValueError,
     r"^block_table\[1, 1\] = -1 is used by sequence 1 but is not a page id in \[0, 6\)"),
    ("used-entry-num-pages", _item("block_table", (0, 1), NUM_PAGES), ValueError,
     r"^block_table\[0, 1\] = 6 is used by sequence 0"),
    ("used-entry-huge", _item("block_table", (1, 2), 2**31 - 1), ValueError,
     r"^block_table\[1, 2\] = 2147483647 is used"),
    ("first-entry-negative", _item("block_table", (0, 0), -5), ValueError,
     r"^block_table\[0, 0\] = -5"),
    ("page-size-0", _PAGE_SIZE_0, ValueError, r"^page_size \(k_cache\.shape\[1\]\) must be >= 1"),
    ("k_cache-page-size-mismatch", _set("v_cache", lambda t: t[:, :2]), ValueError,
     r"^k_cache and v_cache must have the same shape"),
    ("k_cache-num-pages-mismatch", _set("v_cache", lambda t: t[:-1]), ValueError,
     r"^k_cache and v_cache must have the same shape, got \(6, 3, 2, 16\) and \(5, 3, 2, 16\)"),
    ("table-strided", _set("block_table", lambda t: t.t().contiguous().t()), ValueError,
     r"^block_table must be contiguous along its pages, got strides \(1, 2\)"),
]


@pytest.mark.parametrize("case", PAGED_CASES, ids=[c[0] for c in PAGED_CASES])
@pytest.mark.parametrize("fn_name", PAGED)
def test_paged_bad_table(fn_name, case, device):
    _, mutation, exc, match = case
    _check(fn_name, device, mutation, exc, match)


@pytest.mark.parametrize(("row", "garbage", "seq_len"), [
    (0, -1, 5), (0, 2**31 - 1, 5), (0, NUM_PAGES, 6), (0, -(2**31), 4),
    (0, -1, 0),  # an empty sequence uses no table entry at all
])
@pytest.mark.parametrize("fn_name", PAGED)
def test_paged_garbage_past_last_page_accepted(fn_name, row, garbage, seq_len, device):
    """Entries past a sequence's last page are never read: garbage there must not raise,
    and the result equals the one with a clean table."""
    def shorter(call: Call) -> Call:  # sequence 0 of seq_len tokens
        call.args["seq_lens"] = _i32([seq_len, PAGED_LENS[1]], device)
        if fn_name == "sparse_paged_decode":  # keep the indices inside the shorter sequence
            call.args["indices"] = _i32([[[i if i < seq_len else -1 for i in IDX_ROW]] * HKV]
                                        * B, device)
        if fn_name == "paged_prefill":  # at most seq_len new tokens (later rows: no sequence)
            q_len = min(seq_len, CU_Q[1])
            call.args["cu_seqlens_q"] = _i32([0, q_len, q_len + CU_Q[2] - CU_Q[1]], device)
        return call

    expected = assert_accepts(shorter(build(fn_name, device))).clone()
    dirty = shorter(build(fn_name, device))
    first_unused = -(-seq_len // PAGE)
    table = dirty.args["block_table"].clone()
    table[row, first_unused:] = garbage
    dirty.args["block_table"] = table
    out = assert_accepts(dirty)
    assert torch.equal(out, expected)


# ------------------------------------------------------------------------ sparse
def _sparse_cases(fn_name: str) -> list:
    lens = PAGED_LENS if fn_name == "sparse_paged_decode" else DENSE_LENS
    return [
        ("int64", _set("indices", lambda t: t.long()), ValueError,
         r"^indices must be int32, got torch\.int64"),
        ("not-tensor", _set("indices", lambda t: t.tolist()), TypeError,
         r"^indices must be a torch\.Tensor"),
        ("2d", _set("indices", lambda t: t[:, 0]), ValueError,
         r"^indices must have shape \(2, H_idx, K\)"),
        ("4d", _set("indices", lambda t: t[..., None]), ValueError,
         r"^indices must have shape \(2, H_idx, K\)"),
        ("batch", _set("indices", lambda t: torch.cat([t, t[:1]])), ValueError,
         r"^indices must have shape \(2, H_idx, K\)"),
        ("h_idx-3", _set("indices", lambda t: torch.cat([t, t[:, :1]], dim=1)), ValueError,
         r"^indices\.shape\[1\] \(H_idx\) must be Hkv=2 or Hq=4, got 3"),
        ("h_idx-1", _set("indices", lambda t: t[:, :1]), ValueError,
         r"^indices\.shape\[1\] \(H_idx\) must be Hkv=2 or Hq=4, got 1"),
        ("minus-2", _item("indices", (0, 1, 2), -2), ValueError,
         r"^indices\[0, 1, 2\] = -2 is outside \[-1, "),
        ("equal-seq-len-b0", _item("indices", (0, 0, 1), lens[0]), ValueError,
         rf"^indices\[0, 0, 1\] = {lens[0]} is outside \[-1, {lens[0]}\)"),
        ("equal-seq-len-b1", _item("indices", (1, 1, 3), lens[1]), ValueError,
         rf"^indices\[1, 1, 3\] = {lens[1]} is outside"),
        ("huge", _item("indices", (1, 0, 0), 2**31 - 1), ValueError,
         r"^indices\[1, 0, 0\] = 2147483647 is outside"),
    ]


SPARSE_PARAMS = [pytest.param(fn, *case[1:], id=f"{fn}-{case[0]}")
                 for fn in SPARSE for case in _sparse_cases(fn)]


@pytest.mark.parametrize(("fn_name", "mutation", "exc", "match"), SPARSE_PARAMS)
def test_sparse_bad_indices(fn_name, mutation, exc, match, device):
    _check(fn_name, device, mutation, exc, match)


def test_sparse_decode_index_bounded_by_n_without_seq_lens(device):
    """Without seq_lens, an index is bounded by the cache length N."""
    _check("sparse_decode", device, _both(_del("seq_lens"), _item("indices", (1, 0, 2), N)),
           ValueError, rf"^indices\[1, 0, 2\] = {N} is outside \[-1, {N}\)")


@pytest.mark.parametrize("fn_name", SPARSE)
@pytest.mark.parametrize("form", ["minus-1-everywhere", "minus-1-row", "last-position",
                                  "per-query-head", "duplicates"])
def test_sparse_valid_indices_accepted(fn_name, form, device):
    call = build(fn_name, device)
    lens = PAGED_LENS if fn_name == "sparse_paged_decode" else DENSE_LENS
    idx = call.args["indices"].clone()
    if form == "minus-1-everywhere":
        idx[:] = -1
    elif form == "minus-1-row":
        idx[1, 0] = -1
    elif form == "last-position":
        idx[0, :, 0], idx[1, :, 3] = lens[0] - 1, lens[1] - 1
    elif form == "per-query-head":
        idx = idx.repeat_interleave(HQ // HKV, dim=1).contiguous()
    else:
        idx[:, :, 1] = idx[:, :, 0]
    call.args["indices"] = idx
    out = assert_accepts(call)
    assert not bool((out == SENTINEL).any())


# ------------------------------------------------------------------------ validate=False
VALUE_ONLY = [  # bad values that only validate=True detects
    pytest.param("prefill", _item("seq_lens", (0,), -1), id="prefill-negative-seq_len"),
    pytest.param("prefill", _item("kv_seq_lens", (1,), -3), id="prefill-negative-kv_seq_len"),
    pytest.param("prefill_varlen", _lens("cu_seqlens_q", [0, 4, 3]),
                 id="prefill_varlen-negative-length"),
    pytest.param("prefill_varlen", _arg("max_seqlen_q", 3), id="prefill_varlen-max_seqlen_q"),
    pytest.param("decode", _item("seq_lens", (0,), -1), id="decode-negative-seq_len"),
    pytest.param("paged_decode", _item("seq_lens", (0,), -4), id="paged_decode-negative"),
    pytest.param("sparse_decode", _item("seq_lens", (1,), -1), id="sparse_decode-negative"),
    pytest.param("sparse_decode", _item("indices", (0, 0, 0), DENSE_LENS[0]),
                 id="sparse_decode-index-past-seq_len"),
    pytest.param("sparse_paged_decode", _item("seq_lens", (0,), -1),
                 id="sparse_paged_decode-negative"),
    pytest.param("sparse_paged_decode", _item("indices", (1, 1, 1), PAGED_LENS[1]),
                 id="sparse_paged_decode-index-past-seq_len"),
    pytest.param("paged_prefill", _item("seq_lens", (0,), -1), id="paged_prefill-negative"),
    pytest.param("paged_prefill", _lens("seq_lens", [2, 9]), id="paged_prefill-q_len-over-seq_len"),
    pytest.param("paged_prefill", _arg("max_seqlen_q", 3), id="paged_prefill-max_seqlen_q"),
    pytest.param("paged_prefill", _lens("cu_seqlens_q", [0, 4, 3]),
                 id="paged_prefill-cu-decreasing"),
    pytest.param("paged_prefill", _lens("cu_seqlens_q", [1, 3, 7]),
                 id="paged_prefill-cu-not-from-0"),
]


@pytest.mark.parametrize(("fn_name", "mutation"), VALUE_ONLY)
def test_value_checks_follow_validate(fn_name, mutation, device):
    """validate=True rejects the value; validate=False skips the check (no sync) and the
    call goes through (its output is not specified)."""
    with pytest.raises(ValueError):
        mutation(build(fn_name, device), device)()
    call = mutation(build(fn_name, device), device)
    call.args["validate"] = False
    assert_accepts(call)


STRUCTURAL = [  # shape/dtype/type checks run with validate=False too
    pytest.param("prefill", _set("q", lambda t: t[0]), ValueError, r"^q must have rank",
                 id="prefill-q-rank"),
    pytest.param("prefill", _set("seq_lens", lambda t: t.long()), ValueError,
                 r"^seq_lens must be int32", id="prefill-seq_lens-int64"),
    pytest.param("prefill", _del("seq_lens"), ValueError, r"^kv_seq_lens needs seq_lens",
                 id="prefill-kv-without-q-lens"),
    pytest.param("prefill", _rebuild(d=257), ValueError, r"head dim", id="prefill-d257"),
    pytest.param("prefill_varlen", _set("cu_seqlens_q", lambda t: t.long()), ValueError,
                 r"^cu_seqlens_q must be int32", id="prefill_varlen-cu-int64"),
    pytest.param("prefill_varlen", _set("cu_seqlens_k", lambda t: t[:2]), ValueError,
                 r"^cu_seqlens_k must have 3 entries", id="prefill_varlen-cu-count"),
    pytest.param("decode", _rebuild(hq=3), ValueError, r"^Hq % Hkv", id="decode-gqa"),
    pytest.param("decode", _set("seq_lens", lambda t: t[:1]), ValueError,
                 r"^seq_lens must have shape", id="decode-seq_lens-shape"),
    pytest.param("decode", _arg("num_splits", 0), ValueError, r"^num_splits",
                 id="decode-num-splits"),
    pytest.param("paged_decode", _set("block_table", lambda t: t.long()), ValueError,
                 r"^block_table must be int32", id="paged_decode-table-int64"),
    pytest.param("paged_decode", _set("k_cache", lambda t: t.half()), ValueError,
                 r"^k_cache must have dtype", id="paged_decode-dtype"),
    pytest.param("sparse_decode", _set("indices", lambda t: t.long()), ValueError,
                 r"^indices must be int32", id="sparse_decode-indices-int64"),
    pytest.param("sparse_paged_decode", _set("indices", lambda t: t[:, :1]), ValueError,
                 r"^indices\.shape\[1\]", id="sparse_paged_decode-h_idx"),
    pytest.param("sparse_paged_decode", _out_like(lambda t: t.half()), ValueError,
                 r"^out must have dtype", id="sparse_paged_decode-out-dtype"),
    pytest.param("sparse_paged_decode", _set("q", lambda t: t.tolist()), TypeError,
                 r"^q must be a torch\.Tensor", id="sparse_paged_decode-q-list"),
    pytest.param("paged_prefill", _set("q", lambda t: t[None]), ValueError,
                 r"^q must have rank 3", id="paged_prefill-q-rank"),
    pytest.param("paged_prefill", _rebuild(d=8), ValueError, r"head dim", id="paged_prefill-d8"),
    pytest.param("paged_prefill", _rebuild(hq=4, hkv=3), ValueError, r"^Hq % Hkv",
                 id="paged_prefill-gqa"),
    pytest.param("paged_prefill", _set("k_cache", lambda t: t.bfloat16()), ValueError,
                 r"^k_cache must have dtype", id="paged_prefill-dtype"),
    pytest.param("paged_prefill", _set("v_cache", lambda t: t[:, :2]), ValueError,
                 r"^k_cache and v_cache must have the same shape", id="paged_prefill-kv-shape"),
    pytest.param("paged_prefill", _PAGE_SIZE_0, ValueError, r"^page_size",
                 id="paged_prefill-page-size-0"),
    pytest.param("paged_prefill", _set("cu_seqlens_q", lambda t: t.long()), ValueError,
                 r"^cu_seqlens_q must be int32", id="paged_prefill-cu-int64"),
    pytest.param("paged_prefill", _lens("cu_seqlens_q", [0, 3, 5, 7]), ValueError,
                 r"^block_table must have shape \(3, max_pages\)",
                 id="paged_prefill-table-batch-vs-cu"),
    pytest.param("paged_prefill", _set("block_table", lambda t: t.long()), ValueError,
                 r"^block_table must be int32", id="paged_prefill-table-int64"),
    pytest.param("paged_prefill", _set("seq_lens", lambda t: t[:1]), ValueError,
                 r"^seq_lens must have shape \(2,\)", id="paged_prefill-seq_lens-shape"),
    pytest.param("paged_prefill", _arg("max_seqlen_q", -1), ValueError,
                 r"^max_seqlen_q must be >= 0", id="paged_prefill-max_seqlen_q-negative"),
    pytest.param("paged_prefill", _arg("max_seqlen_q", 4.0), TypeError,
                 r"^max_seqlen_q must be an int", id="paged_prefill-max_seqlen_q-float"),
    pytest.param("paged_prefill", _arg("num_splits", 0), ValueError, r"^num_splits",
                 id="paged_prefill-num-splits"),
    pytest.param("paged_prefill", _arg("sm_scale", float("nan")), ValueError,
                 r"^sm_scale must be finite", id="paged_prefill-sm-scale-nan"),
    pytest.param("paged_prefill", _out_like(lambda t: t[:-1].clone()), ValueError,
                 r"^out must have shape \(7, 4, 16\)", id="paged_prefill-out-shape"),
    pytest.param("paged_prefill", _out_like(lambda t: t.half()), ValueError,
                 r"^out must have dtype", id="paged_prefill-out-dtype"),
]


@pytest.mark.parametrize(("fn_name", "mutation", "exc", "match"), STRUCTURAL)
def test_structural_checks_ignore_validate(fn_name, mutation, exc, match, device):
    call = _materialize(mutation(build(fn_name, device), device), device)
    call.args["validate"] = False
    assert_rejects(call, exc, match)


# ------------------------------------------------------------------------ device
def _to_cpu(name_of: Callable) -> Callable:
    def mutate(call: Call, device) -> Call:
        name = name_of(call)
        call.args[name] = call.args[name].cpu()
        return call
    return mutate


DEVICE_CASES = [
    pytest.param(fn, _to_cpu(lambda c: c.k), r"^{k} must be on cuda", id=f"{fn}-k")
    for fn in FUNCS
] + [
    pytest.param(fn, _to_cpu(lambda c: c.v), r"^{v} must be on cuda", id=f"{fn}-v")
    for fn in FUNCS
] + [
    pytest.param(fn, _to_cpu(lambda c: "out"), r"^out must be on cuda", id=f"{fn}-out")
    for fn in FUNCS
] + [
    pytest.param(fn, _to_cpu(lambda c: "seq_lens"), r"^seq_lens must be on cuda",
                 id=f"{fn}-seq_lens")
    for fn in WITH_SEQ_LENS
] + [
    pytest.param("prefill", _to_cpu(lambda c: "kv_seq_lens"), r"^kv_seq_lens must be on cuda",
                 id="prefill-kv_seq_lens"),
    pytest.param("prefill_varlen", _to_cpu(lambda c: "cu_seqlens_k"),
                 r"^cu_seqlens_k must be on cuda", id="prefill_varlen-cu_k"),
] + [
    pytest.param(fn, _to_cpu(lambda c: "cu_seqlens_q"), r"^cu_seqlens_q must be on cuda",
                 id=f"{fn}-cu_q")
    for fn in PACKED
] + [
    pytest.param(fn, _to_cpu(lambda c: "block_table"), r"^block_table must be on cuda",
                 id=f"{fn}-block_table")
    for fn in PAGED
] + [
    pytest.param(fn, _to_cpu(lambda c: "indices"), r"^indices must be on cuda",
                 id=f"{fn}-indices")
    for fn in SPARSE
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device mismatch needs a CUDA device")
@pytest.mark.parametrize(("fn_name", "mutation", "match"), DEVICE_CASES)
def test_device_mismatch(fn_name, mutation, match):
    """q on the GPU, one other tensor on the CPU."""
    _check_device_mismatch(build(fn_name, torch.device("cuda")), mutation, match)


def _check_device_mismatch(call, mutation, match: str) -> None:
    """`call` built on the GPU, then `mutation` moves one of its tensors to the CPU."""
    call = mutation(call, None)
    assert call.args["q"].is_cuda
    assert_rejects(call, ValueError, match.format(k=call.k, v=call.v))


# ------------------------------------------------- integer tensors the kernels index as arrays
def test_integer_tensors_must_be_contiguous(device):
    """The kernels read lengths, cu_seqlens and table rows as plain arrays: a strided view
    (which validation would read correctly) must be refused, not silently misread."""
    q = torch.randn(2, 2, 8, 16, device=device, dtype=torch.float16)
    k = torch.randn(2, 1, 8, 16, device=device, dtype=torch.float16)
    strided = torch.tensor([[3, 99], [5, 99]], dtype=torch.int32, device=device)[:, 0]
    with pytest.raises(ValueError, match=r"^seq_lens must be contiguous"):
        kernels.prefill(q, k, k, seq_lens=strided)
    with pytest.raises(ValueError, match=r"^seq_lens must be contiguous"):
        kernels.decode(q[:, :, 0], k, k, seq_lens=strided)
    cu = torch.tensor([[0, 9], [4, 9], [8, 9]], dtype=torch.int32, device=device)[:, 0]
    with pytest.raises(ValueError, match=r"^cu_seqlens_q must be contiguous"):
        kernels.prefill_varlen(q[0].transpose(0, 1), k[0].transpose(0, 1),
                               k[0].transpose(0, 1), cu, max_seqlen_q=4)
    cache = torch.randn(6, 4, 1, 16, device=device, dtype=torch.float16)
    table = torch.arange(6, dtype=torch.int32, device=device).view(3, 2).t()  # strides (1, 2)
    with pytest.raises(ValueError, match=r"^block_table must be contiguous"):
        kernels.paged_decode(q[:, :, 0], cache, cache, table, _i32([5, 6], device))


def test_zero_query_heads(device):
    q = torch.randn(1, 0, 16, device=device, dtype=torch.float16)
    k = torch.randn(1, 1, 8, 16, device=device, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"at least one head"):
        kernels.decode(q, k, k)


# ------------------------------------------------------------------------ fp8 KV caches
# The decode functions and paged_prefill take float8_e4m3fn / float8_e5m2 caches with
# fp16 / bf16 q, and k_scale / v_scale (both or neither, only with fp8 caches; float32
# tensors of shape (), (1,) or (Hkv,) on q's device; with validate, finite and > 0).
FP8_FUNCS = (*DECODE_FAMILY, "paged_prefill")
E4M3, E5M2 = torch.float8_e4m3fn, torch.float8_e5m2
SCALE_SHAPE_MSG = r"must have shape \(\), \(1,\) \(one scale\) or \(2,\) \(one per KV head\)"


def _scale(shape, device, lo: float, hi: float) -> torch.Tensor:
    """float32 scales of `shape`: lo for one scale, lo..hi across the KV heads."""
    if shape in ((), (1,)):
        return torch.full(shape, lo, dtype=torch.float32, device=device)
    return torch.linspace(lo, hi, math.prod(shape), dtype=torch.float32,
                          device=device).reshape(shape)


def build_fp8(fn_name: str, device, *, kv_dtype=E4M3, dtype=torch.float16,
              scale_shape: tuple | None = ()) -> Call:
    """A valid call of `fn_name` with fp8 caches, q and out= in `dtype`, and k_scale /
    v_scale of `scale_shape` (None: no scales, i.e. scale 1)."""
    call = build(fn_name, device, dtype=dtype)
    for name in (call.k, call.v):
        call.args[name] = call.args[name].to(kv_dtype)
    if scale_shape is not None:
        call.args["k_scale"] = _scale(scale_shape, device, 0.5, 1.25)
        call.args["v_scale"] = _scale(scale_shape, device, 1.5, 0.75)
    return call


def _check_fp8(fn_name: str, device, mutation: Callable, exc, match: str, **kw) -> None:
    call = _materialize(mutation(build_fp8(fn_name, device, **kw), device), device)
    assert_rejects(call, exc, match.format(k=call.k, v=call.v))


def _q_out_as(dtype) -> Callable:
    """q and out= in `dtype` (the caches as they are)."""
    return _both(_set("q", lambda t: t.to(dtype)), _set("out", lambda t: t.to(dtype)))


def _kv_as(dtype) -> Callable:
    return _both(_set_k(lambda t: t.float().to(dtype)), _set_v(lambda t: t.float().to(dtype)))


def _scale_value(name: str, value, shape=()) -> Callable:
    """`name` set to a float32 tensor of `shape` whose last entry is `value` (the others
    valid)."""
    def mutate(call: Call, device) -> Call:
        t = torch.full(shape, 0.5, dtype=torch.float32, device=device)
        t.view(-1)[-1] = value
        call.args[name] = t
        return call
    return mutate


def _scale_shape(name: str, shape) -> Callable:
    return lambda call, device: _arg(name, _scale(shape, device, 0.5, 1.0))(call, device)


# (id, mutation, exception, regex on the message); the base call: e4m3fn caches, fp16 q,
# per-tensor scales of shape ().
FP8_CASES = [
    # q's dtype with fp8 caches
    ("q-float32-e4m3", _q_out_as(torch.float32), ValueError,
     r"^{k} is torch\.float8_e4m3fn: fp8 caches need q in float16 or bfloat16 .*"
     r"got q torch\.float32"),
    ("q-float32-e5m2", _both(_kv_as(E5M2), _q_out_as(torch.float32)), ValueError,
     r"^{k} is torch\.float8_e5m2: fp8 caches need q in float16 or bfloat16 .*"
     r"got q torch\.float32"),
    # fp8 formats other than the two taken: the message names the two (review)
    ("kv-e4m3fnuz", _kv_as(torch.float8_e4m3fnuz), ValueError,
     r"^{k} must be float16, bfloat16 or float32, or an fp8 cache in float8_e4m3fn or "
     r"float8_e5m2, got torch\.float8_e4m3fnuz"),
    ("q-e4m3", _set("q", lambda t: t.to(E4M3)), ValueError,
     r"^q must be float16, bfloat16 or float32, got torch\.float8_e4m3fn"),
    ("q-e5m2", _set("q", lambda t: t.to(E5M2)), ValueError,
     r"^q must be float16, bfloat16 or float32, got torch\.float8_e5m2"),
    ("q-and-out-e4m3", _q_out_as(E4M3), ValueError,
     r"^q must be float16, bfloat16 or float32, got torch\.float8_e4m3fn"),
    ("out-e4m3", _out_like(lambda t: t.to(E4M3)), ValueError,
     r"^out must have dtype torch\.float16 like q, got torch\.float8_e4m3fn"),
    # K and V share one dtype
    ("k-e4m3-v-fp16", _set_v(lambda t: t.half()), ValueError,
     r"^{v} must have dtype torch\.float8_e4m3fn like {k}, got torch\.float16"),
    ("k-fp16-v-e4m3", _set_k(lambda t: t.half()), ValueError,
     r"^{v} is torch\.float8_e4m3fn but {k} is torch\.float16: K and V caches must share "
     r"one dtype"),
    ("k-fp16-v-e5m2", _both(_set_k(lambda t: t.half()), _set_v(lambda t: t.float().to(E5M2))),
     ValueError, r"^{v} is torch\.float8_e5m2 but {k} is torch\.float16"),
    ("k-e4m3-v-e5m2", _set_v(lambda t: t.float().to(E5M2)), ValueError,
     r"^{v} must have dtype torch\.float8_e4m3fn like {k}, got torch\.float8_e5m2"),
    ("k-e5m2-v-e4m3", _set_k(lambda t: t.float().to(E5M2)), ValueError,
     r"^{v} must have dtype torch\.float8_e5m2 like {k}, got torch\.float8_e4m3fn"),
    ("bf16-q-k-e4m3-v-bf16", _both(_q_out_as(torch.bfloat16), _set_v(lambda t: t.bfloat16())),
     ValueError, r"^{v} must have dtype torch\.float8_e4m3fn like {k}, got torch\.bfloat16"),
    # fp8 caches: layout
    ("k-e4m3-last-dim-strided", _set_k(_strided_last), ValueError,
     r"^{k} must be contiguous in its last \(head\) dim"),
    ("v-e4m3-last-dim-strided", _set_v(_strided_last), ValueError,
     r"^{v} must be contiguous in its last \(head\) dim"),
    ("k-v-e4m3-hkv-mismatch", _v_one_head, ValueError, r"^{k} and {v} must have the same shape"),
    # both scales or neither, only with fp8 caches
    ("k_scale-alone", _del("v_scale"), ValueError,
     r"^k_scale given without v_scale: pass both scales or neither"),
    ("v_scale-alone", _del("k_scale"), ValueError,
     r"^v_scale given without k_scale: pass both scales or neither"),
    ("scales-with-fp16-cache", _kv_as(torch.float16), ValueError,
     r"^k_scale and v_scale dequantise fp8 caches .*the caches here are torch\.float16"),
    ("scales-with-bf16-cache", _both(_q_out_as(torch.bfloat16), _kv_as(torch.bfloat16)),
     ValueError,
     r"^k_scale and v_scale dequantise fp8 caches .*the caches here are torch\.bfloat16"),
    ("scales-with-fp32-cache", _both(_q_out_as(torch.float32), _kv_as(torch.float32)),
     ValueError,
     r"^k_scale and v_scale dequantise fp8 caches .*the caches here are torch\.float32"),
    # type, dtype
    ("k_scale-float", _arg("k_scale", 0.5), TypeError,
     r"^k_scale must be a torch\.Tensor, got float"),
    ("v_scale-list", _arg("v_scale", [1.5]), TypeError,
     r"^v_scale must be a torch\.Tensor, got list"),
    ("k_scale-float64", _set("k_scale", lambda t: t.double()), ValueError,
     r"^k_scale must be float32, got torch\.float64"),
    ("v_scale-float64", _set("v_scale", lambda t: t.double()), ValueError,
     r"^v_scale must be float32, got torch\.float64"),
    ("k_scale-float16", _set("k_scale", lambda t: t.half()), ValueError,
     r"^k_scale must be float32, got torch\.float16"),
    ("v_scale-int32", _set("v_scale", lambda t: t.to(torch.int32)), ValueError,
     r"^v_scale must be float32, got torch\.int32"),
    # shape: (), (1,) or (Hkv,)
    ("k_scale-hkv-plus-1", _scale_shape("k_scale", (HKV + 1,)), ValueError,
     rf"^k_scale {SCALE_SHAPE_MSG}, got \(3,\)"),
    ("v_scale-hkv-plus-1", _scale_shape("v_scale", (HKV + 1,)), ValueError,
     rf"^v_scale {SCALE_SHAPE_MSG}, got \(3,\)"),
    ("k_scale-2-by-hkv", _scale_shape("k_scale", (2, HKV)), ValueError,
     rf"^k_scale {SCALE_SHAPE_MSG}, got \(2, 2\)"),
    ("v_scale-2-by-hkv", _scale_shape("v_scale", (2, HKV)), ValueError,
     rf"^v_scale {SCALE_SHAPE_MSG}, got \(2, 2\)"),
    ("k_scale-hq", _scale_shape("k_scale", (HQ,)), ValueError,
     rf"^k_scale {SCALE_SHAPE_MSG}, got \(4,\)"),
    ("v_scale-hq", _scale_shape("v_scale", (HQ,)), ValueError,
     rf"^v_scale {SCALE_SHAPE_MSG}, got \(4,\)"),
    ("k_scale-1-by-1", _scale_shape("k_scale", (1, 1)), ValueError,
     rf"^k_scale {SCALE_SHAPE_MSG}, got \(1, 1\)"),
    ("v_scale-empty", _scale_shape("v_scale", (0,)), ValueError,
     rf"^v_scale {SCALE_SHAPE_MSG}, got \(0,\)"),
    # values (validate=True)
    ("k_scale-nan", _scale_value("k_scale", math.nan), ValueError,
     r"^k_scale must be finite and > 0, got nan"),
    ("v_scale-nan", _scale_value("v_scale", math.nan), ValueError,
     r"^v_scale must be finite and > 0, got nan"),
    ("k_scale-inf", _scale_value("k_scale", math.inf), ValueError,
     r"^k_scale must be finite and > 0, got inf"),
    ("v_scale-neg-inf", _scale_value("v_scale", -math.inf), ValueError,
     r"^v_scale must be finite and > 0, got -inf"),
    ("k_scale-zero", _scale_value("k_scale", 0.0), ValueError,
     r"^k_scale must be finite and > 0, got 0\.0"),
    ("v_scale-zero", _scale_value("v_scale", 0.0), ValueError,
     r"^v_scale must be finite and > 0, got 0\.0"),
    ("k_scale-negative-zero", _scale_value("k_scale", -0.0), ValueError,
     r"^k_scale must be finite and > 0, got -0\.0"),
    ("k_scale-negative", _scale_value("k_scale", -0.5), ValueError,
     r"^k_scale must be finite and > 0, got -0\.5"),
    ("v_scale-negative", _scale_value("v_scale", -2.0), ValueError,
     r"^v_scale must be finite and > 0, got -2\.0"),
    ("k_scale-per-head-one-nan", _scale_value("k_scale", math.nan, (HKV,)), ValueError,
     r"^k_scale must be finite and > 0, got nan"),
    ("v_scale-per-head-one-zero", _scale_value("v_scale", 0.0, (HKV,)), ValueError,
     r"^v_scale must be finite and > 0, got 0\.0"),
    ("k_scale-shape-1-negative", _scale_value("k_scale", -1.0, (1,)), ValueError,
     r"^k_scale must be finite and > 0, got -1\.0"),
]


@pytest.mark.parametrize("case", FP8_CASES, ids=[c[0] for c in FP8_CASES])
@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_bad_arguments(fn_name, case, device):
    """fp8 caches: q's dtype, the K/V dtype pair, and k_scale / v_scale (pairing, type,
    dtype, shape, values)."""
    _, mutation, exc, match = case
    _check_fp8(fn_name, device, mutation, exc, match)


FP8_VALID = [  # (kv dtype, q dtype, scale shape); bf16 q is not run (the interpreter's tl.dot)
    pytest.param(E4M3, torch.float16, (), id="e4m3-scalar-scale"),
    pytest.param(E5M2, torch.float16, (HKV,), id="e5m2-per-head-scale"),
    pytest.param(E4M3, torch.float16, (1,), id="e4m3-shape-1-scale"),
    pytest.param(E5M2, torch.float16, None, id="e5m2-no-scales"),
]


@pytest.mark.parametrize(("kv_dtype", "dtype", "scale_shape"), FP8_VALID)
@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_valid_call(fn_name, kv_dtype, dtype, scale_shape, device):
    """The base calls of the fp8 cases are accepted (every scale shape, both formats,
    without scales too) and write all of out=."""
    if dtype == torch.bfloat16 and device.type != "cuda":
        pytest.skip("the interpreter's tl.dot is wrong on bf16")
    call = build_fp8(fn_name, device, kv_dtype=kv_dtype, dtype=dtype, scale_shape=scale_shape)
    out = assert_accepts(call)
    assert out is call.args["out"] and out.dtype == dtype
    assert torch.isfinite(out).all()
    assert not bool((out == SENTINEL).any())


@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_valid_call_without_validation(fn_name, device):
    call = build_fp8(fn_name, device, scale_shape=(HKV,))
    call.args["validate"] = False
    out = assert_accepts(call)
    assert torch.isfinite(out).all() and not bool((out == SENTINEL).any())


FP8_VALUE_ONLY = [  # bad scale values only validate=True detects
    pytest.param(_scale_value("k_scale", 0.0), "k_scale", id="k_scale-zero"),
    pytest.param(_both(_scale_value("k_scale", 0.0), _scale_value("v_scale", 0.0)), "k_scale",
                 id="both-zero"),
    pytest.param(_scale_value("v_scale", -1.0, (HKV,)), "v_scale", id="v_scale-negative"),
    pytest.param(_scale_value("k_scale", math.nan), "k_scale", id="k_scale-nan"),
]


@pytest.mark.parametrize(("mutation", "name"), FP8_VALUE_ONLY)
@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_scale_values_follow_validate(fn_name, mutation, name, device):
    """validate=True rejects a scale that is 0 / negative / NaN; validate=False skips the
    check (no sync) and the call runs to the end (its output is not specified)."""
    _check_fp8(fn_name, device, mutation, ValueError, rf"^{name} must be finite and > 0")
    call = _materialize(mutation(build_fp8(fn_name, device), device), device)
    call.args["validate"] = False
    out = assert_accepts(call)
    assert out is call.args["out"] and not bool((out == SENTINEL).any())


@pytest.mark.parametrize("which", ["k_scale", "v_scale", "both"])
@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_zero_scale_without_validation_runs(fn_name, which, device):
    """A 0 scale with validate=False raises nothing and the call runs, writing out=. Its
    values are not specified, except that with a valid k_scale a 0 v_scale (real V all 0)
    gives exact zeros. (A 0 k_scale makes the kernel's score scale 0, and masked scores,
    -inf, times 0 are NaN: the kernels assume qk_scale > 0.)"""
    call = build_fp8(fn_name, device)
    for name in (("k_scale", "v_scale") if which == "both" else (which,)):
        call.args[name] = torch.zeros((), dtype=torch.float32, device=device)
    call.args["validate"] = False
    out = assert_accepts(call)
    assert out is call.args["out"] and not bool((out == SENTINEL).any())
    if which == "v_scale":
        assert CU_Q[-1] == TQ  # paged_prefill: every packed row belongs to a sequence
        assert torch.equal(out, torch.zeros_like(out))


FP8_STRUCTURAL = [  # fp8 dtype / scale structure checks run with validate=False too
    ("q-float32", _q_out_as(torch.float32), ValueError, r"^{k} is torch\.float8_e4m3fn"),
    ("k-e4m3-v-fp16", _set_v(lambda t: t.half()), ValueError,
     r"^{v} must have dtype torch\.float8_e4m3fn like {k}"),
    ("k-fp16-v-e4m3", _set_k(lambda t: t.half()), ValueError, r"^{v} is torch\.float8_e4m3fn"),
    ("k_scale-alone", _del("v_scale"), ValueError, r"^k_scale given without v_scale"),
    ("scales-with-fp16-cache", _kv_as(torch.float16), ValueError,
     r"^k_scale and v_scale dequantise fp8 caches"),
    ("v_scale-float", _arg("v_scale", 1.0), TypeError, r"^v_scale must be a torch\.Tensor"),
    ("k_scale-float64", _set("k_scale", lambda t: t.double()), ValueError,
     r"^k_scale must be float32"),
    ("v_scale-hq", _scale_shape("v_scale", (HQ,)), ValueError, rf"^v_scale {SCALE_SHAPE_MSG}"),
]


@pytest.mark.parametrize("case", FP8_STRUCTURAL, ids=[c[0] for c in FP8_STRUCTURAL])
@pytest.mark.parametrize("fn_name", FP8_FUNCS)
def test_fp8_structural_checks_ignore_validate(fn_name, case, device):
    _, mutation, exc, match = case
    call = _materialize(mutation(build_fp8(fn_name, device), device), device)
    call.args["validate"] = False
    assert_rejects(call, exc, match.format(k=call.k, v=call.v))


FP8_DEVICE_CASES = [  # one scale, or one fp8 cache, on the CPU
    pytest.param(fn, _to_cpu(which), match, id=f"{fn}-{tag}")
    for tag, which, match in (("k_scale", lambda c: "k_scale", r"^k_scale must be on cuda"),
                              ("v_scale", lambda c: "v_scale", r"^v_scale must be on cuda"),
                              ("fp8-k", lambda c: c.k, r"^{k} must be on cuda"),
                              ("fp8-v", lambda c: c.v, r"^{v} must be on cuda"))
    for fn in FP8_FUNCS
]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device mismatch needs a CUDA device")
@pytest.mark.parametrize(("fn_name", "mutation", "match"), FP8_DEVICE_CASES)
def test_fp8_device_mismatch(fn_name, mutation, match):
    """q and an fp8 cache on the GPU, one scale (or one fp8 cache) on the CPU."""
    _check_device_mismatch(build_fp8(fn_name, torch.device("cuda")), mutation, match)


@pytest.mark.parametrize("kv_dtype", [E4M3, E5M2], ids=["e4m3", "e5m2"])
@pytest.mark.parametrize("fn_name", ("prefill", "prefill_varlen"))
def test_prefill_rejects_fp8(fn_name, kv_dtype, device):
    """prefill and prefill_varlen take no fp8 caches: k (or v alone) fp8 with fp16 q is a
    ValueError naming it, and k_scale is no argument of theirs."""
    dtype_name = str(kv_dtype).replace(".", r"\.")
    base = _all_float(torch.float16)
    _check(fn_name, device, _both(base, _kv_as(kv_dtype)), ValueError,
           rf"^k must be float16, bfloat16 or float32, got {dtype_name}")
    _check(fn_name, device, _both(base, _set_v(lambda t: t.float().to(kv_dtype))), ValueError,
           rf"^v must be float16, bfloat16 or float32, got {dtype_name}")
    call = base(build(fn_name, device), device)
    call.args.update(k_scale=torch.ones(()), v_scale=torch.ones(()))
    with pytest.raises(TypeError, match="k_scale"):
        call()


# --- the variants (kernels/mods.py): window, softcap, sinks, alibi_slopes ----------------

def _head_vector(name: str, fn: Callable) -> Callable:
    """Set `name` to fn(a valid [Hq] float32 vector on the call's device)."""
    def mutate(call: Call, device) -> Call:
        call.args[name] = fn(torch.zeros(HQ, dtype=torch.float32, device=device))
        return call
    return mutate


def _head_vector_at(name: str, value: float) -> Callable:
    def set_one(t):
        t[1] = value
        return t
    return _head_vector(name, set_one)


VARIANT_CASES = [
    ("window-int", _arg("window", 4), TypeError, r"^window must be a \(left, right\) pair"),
    ("window-three", _arg("window", (1, 2, 3)), TypeError,
     r"^window must be a \(left, right\) pair"),
    ("window-float", _arg("window", (4.0, 0)), TypeError,
     r"^window must be a \(left, right\) pair of ints"),
    ("window-bool", _arg("window", (True, 0)), TypeError,
     r"^window must be a \(left, right\) pair of ints"),
    ("window-left-minus-2", _arg("window", (-2, 0)), ValueError,
     r"^window's left side must be >= 0, or -1 for unbounded, got -2"),
    ("window-right-minus-5", _arg("window", (3, -5)), ValueError,
     r"^window's right side must be >= 0, or -1 for unbounded, got -5"),
    ("softcap-zero", _arg("softcap", 0.0), ValueError, r"^softcap must be finite and > 0"),
    ("softcap-negative", _arg("softcap", -30.0), ValueError, r"^softcap must be finite and > 0"),
    ("softcap-nan", _arg("softcap", float("nan")), ValueError, r"^softcap must be finite"),
    ("softcap-inf", _arg("softcap", float("inf")), ValueError, r"^softcap must be finite"),
    ("softcap-str", _arg("softcap", "30"), TypeError, r"^softcap must be a float"),
    ("softcap-bool", _arg("softcap", True), TypeError, r"^softcap must be a float"),
    ("softcap-fp32-overflow", _arg("softcap", 1e39), ValueError,
     r"^sm_scale / softcap = .* is outside fp32's normal range .*: softcap too"),
    ("softcap-fp32-underflow", _arg("softcap", 1e-39), ValueError,
     r"^softcap / sm_scale = .* is outside fp32's normal range"),
    ("softcap-huge-int", _arg("softcap", 10**400), ValueError,
     r"^softcap must be finite and > 0 \(None: no soft-cap\), got an int of 1329 bits"),
    ("sinks-list", _arg("sinks", [0.0] * HQ), TypeError, r"^sinks must be a torch\.Tensor"),
    ("sinks-shape", _head_vector("sinks", lambda t: t[:2]), ValueError,
     rf"^sinks must have shape \({HQ},\) \(one value per query head\), got \(2,\)"),
    ("sinks-2d", _head_vector("sinks", lambda t: t.view(1, -1)), ValueError,
     r"^sinks must have shape"),
    ("sinks-float16", _head_vector("sinks", lambda t: t.half()), ValueError,
     r"^sinks must be float32, got torch\.float16"),
    ("sinks-nan", _head_vector_at("sinks", float("nan")), ValueError,
     r"^sinks must be finite or -inf, got sinks\[1\] = nan"),
    ("sinks-inf", _head_vector_at("sinks", float("inf")), ValueError,
     r"^sinks must be finite or -inf, got sinks\[1\] = inf"),
    ("alibi-shape", _head_vector("alibi_slopes", lambda t: torch.cat([t, t])), ValueError,
     r"^alibi_slopes must have shape"),
    ("alibi-int", _head_vector("alibi_slopes", lambda t: t.to(torch.int32)), ValueError,
     r"^alibi_slopes must be float32, got torch\.int32"),
    ("alibi-neg-inf", _head_vector_at("alibi_slopes", -math.inf), ValueError,
     r"^alibi_slopes must be finite, got alibi_slopes\[1\] = -inf"),
    ("alibi-nan", _head_vector_at("alibi_slopes", float("nan")), ValueError,
     r"^alibi_slopes must be finite"),
]


@pytest.mark.parametrize("case", VARIANT_CASES, ids=[c[0] for c in VARIANT_CASES])
@pytest.mark.parametrize("fn_name", FUNCS)
def test_bad_variant_arguments(fn_name, case, device):
    """window, softcap, sinks and alibi_slopes: type, range, shape, dtype, device, values;
    rejected before any launch, out= untouched."""
    _, mutation, exc, match = case
    _check(fn_name, device, mutation, exc, match)


@pytest.mark.parametrize("fn_name", FUNCS)
def test_flags_must_be_bools(fn_name, device):
    """causal, return_lse and validate take a bool (or 0 / 1): causal="False" used to run
    causal (bool("False") is True) and validate=None turned the checks off."""
    names = ["return_lse", "validate"] + (["causal"] if fn_name in CAUSAL_FUNCS else [])
    for name in names:
        for bad, got in (("False", "'False'"), (None, "None"), (torch.tensor(True), "Tensor"),
                         (2, "2")):
            call = build(fn_name, device)
            call.args[name] = bad
            assert_rejects(call, TypeError, rf"^{name} must be a bool, got {got}$")
        call = build(fn_name, device)
        call.args[name] = 1
        assert_accepts(call)


@pytest.mark.parametrize("fn_name", FUNCS)
def test_window_sides_past_int32_bound_nothing(fn_name, device):
    """A window side of 2**31 - 1 or more bounds nothing, as -1 does: the same bits, in
    every function. Unclamped (before session 23) the prefill kernels' int32 position +
    side overflowed (wrong outputs, silently), sides of 2**63 and up raised Triton errors
    or hung, and 2**64 and up an OverflowError that named no argument."""
    causal = {"causal": False} if fn_name in ("prefill", "prefill_varlen") else {}
    want = build(fn_name, device)
    want.args.update(window=(-1, -1), **causal)
    want = want()
    for side in (2**31 - 1, 2**31, 2**63, 2**70):
        call = build(fn_name, device)
        call.args.update(window=(side, side), **causal)
        assert torch.equal(call(), want), side


@pytest.mark.parametrize("fn_name", FUNCS)
def test_variant_values_unchecked_without_validate(fn_name, device):
    """Reading sinks / slopes needs a sync: validate=False skips those value checks (as
    it skips the lengths') and keeps every other check."""
    call = _head_vector_at("sinks", float("-inf"))(build(fn_name, device), device)
    call.args["validate"] = False
    assert_accepts(call)
    call = _head_vector("sinks", lambda t: t[:2])(build(fn_name, device), device)
    call.args["validate"] = False
    assert_rejects(call, ValueError, r"^sinks must have shape")


VARIANT_DEVICE_CASES = [  # _head_vector called with device None builds a CPU vector
    pytest.param(fn, _head_vector(name, lambda t: t), rf"^{name} must be on cuda",
                 id=f"{fn}-{name}")
    for fn in FUNCS for name in ("sinks", "alibi_slopes")]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="device mismatch needs a CUDA device")
@pytest.mark.parametrize(("fn_name", "mutation", "match"), VARIANT_DEVICE_CASES)
def test_variant_device_mismatch(fn_name, mutation, match):
    """q on the GPU, sinks or alibi_slopes on the CPU."""
    _check_device_mismatch(build(fn_name, torch.device("cuda")), mutation, match)
