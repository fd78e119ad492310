"""Benchmark cases: for each kernel family, the seeds' shapes and realistic LLM shapes.

A ``Case`` is cheap metadata; ``case.build(dtype)`` makes the inputs on the GPU and
returns a ``Problem``: the implementations to run (ours first), a float64 check, and the
work the case does (FLOPs for prefill, K/V bytes for decode). Nothing here runs at
import time, and ``kernels`` is imported only when a case is built.

The float64 check covers the query group of the last KV head (so head offsets are
exercised) and, for the long prefill shapes, the last batch's last 512 query rows
against all keys (bottom-right causal keeps them exact); fp64 over a whole
[B, Hq, 16384, 16384] score matrix would not fit.

FLOPs: causal prefill 4*Hq*L^2*D/2 per sequence (the seeds' convention), summed over the
valid lengths; paged prefill counts the keys each query row attends exactly
(``paged_prefill_flops``). Bytes: K and V of the valid (or selected) tokens, read once.

A case may carry ``targets``: ours' time over a named implementation's, or ours' own
time in ms (``Target.at_most_ms``), with the limit the kernel aims at; the report prints
them as a table after the family's summary.

fp8 KV cases (``Case.kv_dtype``, e.g. float8_e4m3fn; q stays in the case's dtype): the
16-bit K/V are made as usual, then quantised per tensor with ``quantize_kv`` (scales on
the device). "ours" is the fp8 call with k_scale / v_scale, checked against the fp64
oracle on the dequantised values (stored x scale); ``ours-fp16`` (``ours-<dtype>``) is
ours on the 16-bit K/V the cache came from, and the 16-bit peers are each checked
against the oracle on their own inputs. Bytes: 1 per fp8 element for the fp8 calls, the
16-bit size for the others (``Impl.bytes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

import torch
import torch.nn.functional as F

from . import peers

FAMILIES = ("prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
            "sparse_paged_decode", "paged_prefill")
# the public function each family times (a family is skipped until it exists)
FUNCTION = {family: family for family in FAMILIES}
# TFLOP/s; the others report GB/s (paged_prefill records both: its speculative and mixed
# cases are bound by the K/V read)
COMPUTE_BOUND = ("prefill", "prefill_varlen", "paged_prefill")
GRAPH_FAMILIES = ("decode", "paged_decode", "sparse_decode", "sparse_paged_decode")

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
# max |out - float64 oracle| beyond which an implementation is reported wrong, not timed
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-3}

# fp8 KV caches the decode families and paged_prefill take (q stays fp16 / bf16)
FP8_NAMES = {torch.float8_e4m3fn: "fp8 e4m3", torch.float8_e5m2: "fp8 e5m2"}
# --kv: every case, only the fp8-KV cases, or only those whose K/V are in q's dtype
KV_CHOICES = ("all", "fp8", "plain")
VARIANT_CHOICES = ("all", "only", "none")  # the attention variants' cases (issue 23)

SEED_LENGTHS = (1024, 468, 631, 258, 353, 599, 732, 94)
CHECK_ROWS = 512  # query rows checked in fp64 on long prefill shapes


@dataclass
class Reference:
    out: torch.Tensor  # float64, a subset of the output
    select: Callable[[torch.Tensor], torch.Tensor]  # full output -> the same subset
    what: str  # which subset, for the record


@dataclass
class Impl:
    name: str
    make: Callable[[], Callable[[], torch.Tensor]]  # untimed setup -> the timed call
    reference: Callable[[], Reference] | None = None  # own check (else the problem's)
    flops: float | None = None  # own work (else the problem's)
    bytes: float | None = None
    graph: bool = True  # try CUDA-graph capture when the case asks for it


@dataclass
class Problem:
    impls: list[Impl]
    reference: Callable[[], Reference]
    flops: float | None = None
    bytes: float | None = None


@dataclass(frozen=True)
class Target:
    """What the kernel aims at on a case: ours' ms / the ms of the fastest of `peers` that
    passed its check must be at most `limit` (0.5: ours at least 2x faster). With
    `absolute` (``Target.at_most_ms``): no peers, and ours' own ms must be at most
    `limit` (in ms)."""
    peers: tuple[str, ...]
    limit: float
    what: str
    absolute: bool = False

    @classmethod
    def at_most_ms(cls, limit_ms: float, what: str) -> Target:
        return cls((), float(limit_ms), what, absolute=True)


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    dtypes: tuple[torch.dtype, ...]
    build: Callable[[torch.dtype], Problem] = field(compare=False, repr=False)
    quick: bool = False  # part of --quick
    targets: tuple[Target, ...] = field(default=(), compare=False)
    kv_dtype: torch.dtype | None = None  # an fp8 KV cache (None: K/V in the case's dtype)
    variant: str | None = None  # an attention variant's case (variant_cases), what it adds

    @property
    def graph(self) -> bool:
        return self.family in GRAPH_FAMILIES


# --------------------------------------------------------------------------- helpers

DEVICE = "cuda"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _randn(gen, shape, dtype) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=DEVICE, dtype=dtype)


def _qkv(gen, batch, num_q_heads, num_kv_heads, n_q, n_k, head_dim, dtype):
    """Dense q [B, Hq, n_q, D] and k, v [B, Hkv, n_k, D], drawn in that order."""
    return (_randn(gen, (batch, num_q_heads, n_q, head_dim), dtype),
            _randn(gen, (batch, num_kv_heads, n_k, head_dim), dtype),
            _randn(gen, (batch, num_kv_heads, n_k, head_dim), dtype))


def _i32(values) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int32, device=DEVICE)


def _kernels():
    import attention_kernel_triton as kernels

    return kernels


def _last_group(num_q_heads: int, num_kv_heads: int):
    """(KV head, slice of its query heads): the group the fp64 check covers."""
    group = num_q_heads // num_kv_heads
    kvh = num_kv_heads - 1
    return kvh, slice(kvh * group, (kvh + 1) * group)


def causal_flops(lengths, num_q_heads: int, head_dim: int) -> float:
    return sum(4.0 * num_q_heads * n * n * head_dim / 2 for n in lengths)


def kv_bytes(tokens: int, num_kv_heads: int, head_dim: int, dtype) -> float:
    """K and V of `tokens` tokens (summed over the batch), every KV head, read once."""
    return 2.0 * tokens * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


def _fp8_problem(kernels, kv_dtype, caches: dict, call, reference, *, bytes16: float,
                 bytes8: float, peers16=(), flops: float | None = None) -> Problem:
    """The fp8 variant of a decode-family problem. caches: the kernel's two K/V arguments by
    name, in q's dtype; they are quantised per tensor with quantize_kv (scales stay on the
    device). call(caches, scales) -> the timed call; reference(caches, scales) -> the fp64
    check (the oracles dequantise fp8 caches with the scales). "ours" runs on the fp8
    caches; ``ours-<dtype>`` and peers16 ((name, make) pairs) run on the 16-bit caches they
    came from, each checked against the oracle on its own inputs."""
    dtype_name = DTYPE_NAMES[next(iter(caches.values())).dtype]
    fp8, scales = {}, {}
    for (name, cache), scale_name in zip(caches.items(), ("k_scale", "v_scale"), strict=True):
        fp8[name], scales[scale_name] = kernels.quantize_kv(cache, dtype=kv_dtype)
    ref16 = lambda: reference(caches, {})  # noqa: E731
    note = f"{FP8_NAMES[kv_dtype]} K/V, per-tensor k_scale/v_scale"
    impls = [
        Impl("ours", lambda: _noted(call(fp8, scales), note)),
        Impl(f"ours-{dtype_name}", lambda: _noted(call(caches, {}),
                                                  f"{dtype_name} K/V (the fp8 cache's source)"),
             reference=ref16, bytes=bytes16),
        *(Impl(name, make, reference=ref16, bytes=bytes16) for name, make in peers16),
    ]
    return Problem(impls, reference=lambda: reference(fp8, scales), bytes=bytes8, flops=flops)


def _noted(call, note: str):
    """The call with a ``bench_note`` (the record's note)."""
    call.bench_note = note
    return call


def _sdpa_impls(q, k, v, *, causal: bool) -> list[Impl]:
    return [Impl(f"sdpa-{b}", lambda b=b: peers.sdpa(b, q, k, v, causal=causal))
            for b in ("flash", "cudnn")]


def _gather_then_sdpa(gather: Callable[[], tuple], q, mask) -> Callable[[], torch.Tensor]:
    """Timed: gather K/V rows, then SDPA (any backend torch picks)."""

    def call():
        kg, vg = gather()
        return F.scaled_dot_product_attention(q, kg, vg, attn_mask=mask, enable_gqa=True)

    return peers.probe(call)


def _gather_then_naive(gather: Callable[[], tuple], q, allowed, scale):
    not_allowed = None if allowed is None else ~allowed

    def call():
        kg, vg = gather()
        return peers.naive_attention(q, kg, vg, scale=scale, not_allowed=not_allowed)

    return call


# --------------------------------------------------------------------------- prefill

def _prefill_reference(q, k, v, lens, **variants) -> Reference:
    """The fp64 oracle on the last query group (long calls: its last CHECK_ROWS rows);
    variants: window / softcap / sinks / alibi_slopes as the call got them."""
    from attention_kernel_triton.oracles.reference import prefill_ref

    batch, num_q_heads, n, _ = q.shape
    kvh, heads = _last_group(num_q_heads, k.shape[1])
    kv = slice(kvh, kvh + 1)
    if lens is None and n > 2 * CHECK_ROWS:
        b, rows = slice(batch - 1, batch), slice(n - CHECK_ROWS, n)
        ref, _ = prefill_ref(q[b, heads, rows], k[b, kv], v[b, kv], causal=True,
                             seq_lens=_i32([CHECK_ROWS]), kv_seq_lens=_i32([n]),
                             **_heads_of(variants, heads))
        what = (f"fp64 oracle on batch {batch - 1}, heads {heads.start}-{heads.stop - 1}, "
                f"rows {n - CHECK_ROWS}-{n - 1}")
    else:
        b, rows = slice(None), slice(None)
        ref, _ = prefill_ref(q[:, heads], k[:, kv], v[:, kv], causal=True, seq_lens=lens,
                             **_heads_of(variants, heads))
        what = f"fp64 oracle on heads {heads.start}-{heads.stop - 1}"
    return Reference(ref, lambda out: out[b, heads, rows], what)


def prefill_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, lengths=None, seed=0):
    """Causal prefill over [B, H, N, D]; with `lengths`, padded var-len (seq_lens)."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q, k, v = _qkv(gen, batch, num_q_heads, num_kv_heads, n, n, head_dim, dtype)
        scale = head_dim ** -0.5
        lens = None if lengths is None else _i32(lengths)
        impls = [Impl("ours", lambda: lambda: kernels.prefill(
            q, k, v, causal=True, seq_lens=lens, validate=False))]
        if lens is None:
            impls += _sdpa_impls(q, k, v, causal=True)
            impls.append(Impl("flex", lambda: peers.flex(
                q, k, v, mask=peers.flex_causal_mask(n, n, DEVICE))))
            impls.append(Impl("naive", lambda: peers.naive(
                q, k, v, scale=scale, allowed=_tril(n))))
        else:
            # ours on the same tensors at full length: the var-len saving, same run
            impls.append(Impl(
                "ours-full-length",
                lambda: lambda: kernels.prefill(q, k, v, causal=True, validate=False),
                reference=lambda: _prefill_reference(q, k, v, None),
                flops=causal_flops([n] * batch, num_q_heads, head_dim)))
            impls.append(Impl("flex", lambda: peers.flex(
                q, k, v, mask=peers.flex_padded_causal_mask(lens, n, DEVICE))))
            impls.append(Impl("naive", lambda: peers.naive(
                q, k, v, scale=scale, allowed=_padded_causal(lens, n), zero_empty_rows=True)))
        return Problem(impls, reference=lambda: _prefill_reference(q, k, v, lens),
                       flops=causal_flops(lengths or [n] * batch, num_q_heads, head_dim))

    return build


def _tril(n: int) -> torch.Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=DEVICE).tril()


def _padded_causal(lens: torch.Tensor, n: int) -> torch.Tensor:
    """[B, 1, N, N]: row i and key j both inside the length, j <= i."""
    pos = torch.arange(n, device=DEVICE)
    inside = pos.view(1, n) < lens.view(-1, 1)  # [B, N]
    return (inside[:, None, :, None] & inside[:, None, None, :]) & _tril(n)


# --------------------------------------------------------------------------- prefill_varlen

def varlen_case(lengths, num_q_heads, num_kv_heads, head_dim, *, seed=0):
    """Packed causal prefill, FlashAttention's varlen layout [T, H, D] + cu_seqlens."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        total, longest = sum(lengths), max(lengths)
        q = _randn(gen, (total, num_q_heads, head_dim), dtype)
        k = _randn(gen, (total, num_kv_heads, head_dim), dtype)
        v = _randn(gen, (total, num_kv_heads, head_dim), dtype)
        cu = _i32([0, *accumulate(lengths)])
        scale = head_dim ** -0.5

        def make_flex():
            as_batch = [t.transpose(0, 1).unsqueeze(0).contiguous() for t in (q, k, v)]
            doc_ids = torch.repeat_interleave(
                torch.arange(len(lengths), device=DEVICE), _i32(lengths).long())
            call = peers.flex(*as_batch, mask=peers.flex_document_causal_mask(doc_ids, DEVICE))
            return lambda: call()[0].transpose(0, 1)

        impls = [
            Impl("ours", lambda: lambda: kernels.prefill_varlen(
                q, k, v, cu, max_seqlen_q=longest, validate=False)),
            Impl("torch-varlen", lambda: peers.torch_varlen(
                q, k, v, cu, cu, longest, longest, causal=True, scale=scale, expand_gqa=True)),
            Impl("flex", make_flex),
        ]

        def reference() -> Reference:
            from attention_kernel_triton.oracles.reference import prefill_varlen_ref

            kvh, heads = _last_group(num_q_heads, num_kv_heads)
            kv = slice(kvh, kvh + 1)
            ref, _ = prefill_varlen_ref(q[:, heads], k[:, kv], v[:, kv], cu, causal=True)
            return Reference(ref, lambda out: out[:, heads],
                             f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")

        return Problem(impls, reference=reference,
                       flops=causal_flops(lengths, num_q_heads, head_dim))

    return build


# --------------------------------------------------------------------------- decode

def _heads_of(kw: dict, heads: slice) -> dict:
    """Per-query-head options (sinks, ALiBi slopes) restricted to the heads an oracle
    checks; the others (window, softcap, fp8 scales) as they are."""
    return {k: (v[heads] if k in ("sinks", "alibi_slopes") else v) for k, v in kw.items()}


def _decode_reference(q, k, v, seq_lens=None, **kw) -> Reference:
    """The fp64 oracle on the last query group (kw: an fp8 cache's scales, per tensor;
    variant options)."""
    from attention_kernel_triton.oracles.reference import decode_ref

    kvh, heads = _last_group(q.shape[1], k.shape[1])
    kv = slice(kvh, kvh + 1)
    ref, _ = decode_ref(q[:, heads], k[:, kv], v[:, kv], seq_lens=seq_lens,
                        **_heads_of(kw, heads))
    return Reference(ref, lambda out: out[:, heads],
                     f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")


def decode_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, kv_dtype=None, seed=0):
    """One query token per sequence, q [B, Hq, 1, D], against a full dense K/V; with
    kv_dtype (fp8), ours on the quantised K/V against ours and cuDNN on the 16-bit K/V."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q, k, v = _qkv(gen, batch, num_q_heads, num_kv_heads, 1, n, head_dim, dtype)
        scale = head_dim ** -0.5
        if kv_dtype is not None:
            return _fp8_problem(
                kernels, kv_dtype, {"k": k, "v": v},
                lambda c, s: lambda: kernels.decode(q, c["k"], c["v"], **s, validate=False),
                lambda c, s: _decode_reference(q, c["k"], c["v"], **s),
                bytes16=kv_bytes(batch * n, num_kv_heads, head_dim, dtype),
                bytes8=kv_bytes(batch * n, num_kv_heads, head_dim, kv_dtype),
                peers16=[("sdpa-cudnn", lambda: peers.sdpa("cudnn", q, k, v))])
        impls = [Impl("ours", lambda: lambda: kernels.decode(q, k, v, validate=False))]
        impls += _sdpa_impls(q, k, v, causal=False)
        impls.append(Impl("flex", lambda: peers.flex(q, k, v)))
        impls.append(Impl("naive", lambda: peers.naive(q, k, v, scale=scale)))
        return Problem(impls, reference=lambda: _decode_reference(q, k, v),
                       bytes=kv_bytes(batch * n, num_kv_heads, head_dim, dtype))

    return build


# --------------------------------------------------------------------------- paged

@dataclass
class PagedKV:
    k_cache: torch.Tensor  # [num_pages, P, Hkv, D]
    v_cache: torch.Tensor
    block_table: torch.Tensor  # int32 [B, max_pages]; slots past a sequence's end hold 0
    seq_lens: torch.Tensor  # int32 [B]
    page_size: int


def make_paged(gen, lengths, num_kv_heads, head_dim, page_size, dtype) -> PagedKV:
    """Pages of all sequences in one random physical order."""
    pages_per_seq = [math.ceil(n / page_size) for n in lengths]
    num_pages = sum(pages_per_seq)
    order = torch.randperm(num_pages, generator=gen, device=DEVICE).to(torch.int32)
    table = torch.zeros(len(lengths), max(pages_per_seq), dtype=torch.int32, device=DEVICE)
    start = 0
    for b, count in enumerate(pages_per_seq):
        table[b, :count] = order[start:start + count]
        start += count
    shape = (num_pages, page_size, num_kv_heads, head_dim)
    return PagedKV(_randn(gen, shape, dtype), _randn(gen, shape, dtype), table,
                   _i32(lengths), page_size)


def _length_mask(lengths, n: int):
    """[B, 1, 1, n] keys inside each length; None when every length is n."""
    if all(length == n for length in lengths):
        return None
    return (torch.arange(n, device=DEVICE).view(1, n) < _i32(lengths).view(-1, 1))[:, None, None]


def _paged_reference(q, k_cache, v_cache, block_table, seq_lens, **scales) -> Reference:
    from attention_kernel_triton.oracles.reference import paged_decode_ref

    kvh, heads = _last_group(q.shape[1], k_cache.shape[2])
    kvs = slice(kvh, kvh + 1)
    ref, _ = paged_decode_ref(q[:, heads], k_cache[:, :, kvs], v_cache[:, :, kvs],
                              block_table, seq_lens, **scales)
    return Reference(ref, lambda out: out[:, heads],
                     f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")


def paged_case(batch, num_q_heads, num_kv_heads, head_dim, page_size, *, lengths=None, n=None,
               kv_dtype=None, seed=0):
    """Paged decode; every sequence at length n, or the given lengths; with kv_dtype
    (fp8), ours on the quantised caches against ours on the 16-bit ones."""
    lengths = list(lengths) if lengths is not None else [n] * batch

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, 1, head_dim), dtype)
        kv = make_paged(gen, lengths, num_kv_heads, head_dim, page_size, dtype)
        longest, scale = max(lengths), head_dim ** -0.5
        if kv_dtype is not None:
            return _fp8_problem(
                kernels, kv_dtype, {"k_cache": kv.k_cache, "v_cache": kv.v_cache},
                lambda c, s: lambda: kernels.paged_decode(
                    q, c["k_cache"], c["v_cache"], kv.block_table, kv.seq_lens, **s,
                    validate=False),
                lambda c, s: _paged_reference(q, c["k_cache"], c["v_cache"], kv.block_table,
                                              kv.seq_lens, **s),
                bytes16=kv_bytes(sum(lengths), num_kv_heads, head_dim, dtype),
                bytes8=kv_bytes(sum(lengths), num_kv_heads, head_dim, kv_dtype))
        mask = _length_mask(lengths, longest)

        def gather():
            return (peers.gather_paged_dense(kv.k_cache, kv.block_table, longest),
                    peers.gather_paged_dense(kv.v_cache, kv.block_table, longest))

        def make_dense_ours():
            if not hasattr(kernels, "decode"):
                raise peers.Skipped("kernels.decode not available yet")
            kd, vd = (t.contiguous() for t in gather())
            lens = None if mask is None else kv.seq_lens
            return lambda: kernels.decode(q, kd, vd, seq_lens=lens, validate=False)

        def make_torch_varlen():
            cu_q = torch.arange(batch + 1, dtype=torch.int32, device=DEVICE)
            cu_k = _i32([0, *accumulate(lengths)])
            call = peers.torch_varlen(q[:, :, 0], kv.k_cache, kv.v_cache, cu_q, cu_k, 1,
                                      longest, causal=False, scale=scale,
                                      seqused_k=kv.seq_lens, block_table=kv.block_table)
            return lambda: call().unsqueeze(2)

        impls = [
            Impl("ours", lambda: lambda: kernels.paged_decode(
                q, kv.k_cache, kv.v_cache, kv.block_table, kv.seq_lens, validate=False)),
            Impl("ours-dense-decode", make_dense_ours),
            Impl("gather+sdpa", lambda: _gather_then_sdpa(gather, q, mask)),
            Impl("torch-varlen-paged", make_torch_varlen),
            Impl("naive", lambda: _gather_then_naive(gather, q, mask, scale)),
        ]

        return Problem(impls, reference=lambda: _paged_reference(
            q, kv.k_cache, kv.v_cache, kv.block_table, kv.seq_lens),
                       bytes=kv_bytes(sum(lengths), num_kv_heads, head_dim, dtype))

    return build


# --------------------------------------------------------------------------- sparse

def make_indices(gen, batch, num_kv_heads, lengths, keep: float) -> torch.Tensor:
    """int32 [B, Hkv, K]: round(keep * length) distinct random positions per (sequence,
    KV head), in random order, padded with -1 to the longest row."""
    counts = [max(1, round(keep * n)) for n in lengths]
    out = torch.full((batch, num_kv_heads, max(counts)), -1, dtype=torch.int32, device=DEVICE)
    for b, (n, count) in enumerate(zip(lengths, counts, strict=True)):
        scores = torch.rand((num_kv_heads, n), generator=gen, device=DEVICE)
        out[b, :, :count] = scores.argsort(dim=-1)[:, :count].to(torch.int32)
    return out


def _used_mask(indices, group: int):
    """[B, Hq, 1, K] slots in use; None when every slot is used."""
    used = indices >= 0
    if bool(used.all()):
        return None
    return used.repeat_interleave(group, dim=1).unsqueeze(2)


def _selected_bytes(indices, head_dim, dtype) -> float:
    """K and V rows of the selected tokens (one index row per KV head)."""
    return kv_bytes(int((indices >= 0).sum()), 1, head_dim, dtype)


def _sparse_reference(q, k, v, indices, **scales) -> Reference:
    from attention_kernel_triton.oracles.reference import sparse_decode_ref

    kvh, heads = _last_group(q.shape[1], k.shape[1])
    kv = slice(kvh, kvh + 1)
    ref, _ = sparse_decode_ref(q[:, heads], k[:, kv], v[:, kv], indices[:, kv], **scales)
    return Reference(ref, lambda out: out[:, heads],
                     f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")


def sparse_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, keep=0.02, kv_dtype=None,
                seed=0):
    """Decode over round(keep * n) selected tokens per (sequence, KV head); with kv_dtype
    (fp8), ours on the quantised K/V against ours on the 16-bit K/V."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q, k, v = _qkv(gen, batch, num_q_heads, num_kv_heads, 1, n, head_dim, dtype)
        indices = make_indices(_gen(seed + 1), batch, num_kv_heads, [n] * batch, keep)
        group, scale = num_q_heads // num_kv_heads, head_dim ** -0.5
        if kv_dtype is not None:
            return _fp8_problem(
                kernels, kv_dtype, {"k": k, "v": v},
                lambda c, s: lambda: kernels.sparse_decode(q, c["k"], c["v"], indices, **s,
                                                           validate=False),
                lambda c, s: _sparse_reference(q, c["k"], c["v"], indices, **s),
                bytes16=_selected_bytes(indices, head_dim, dtype),
                bytes8=_selected_bytes(indices, head_dim, kv_dtype))

        def gather():
            return peers.gather_sparse(k, indices), peers.gather_sparse(v, indices)

        def dense_mask():
            selected = torch.zeros(batch, num_kv_heads, n, dtype=torch.bool, device=DEVICE)
            selected.scatter_(2, indices.clamp(min=0).long(), True)
            return selected.repeat_interleave(group, dim=1).unsqueeze(2)  # [B, Hq, 1, N]

        impls = [
            Impl("ours", lambda: lambda: kernels.sparse_decode(q, k, v, indices, validate=False)),
            Impl("gather+sdpa", lambda: _gather_then_sdpa(gather, q, _used_mask(indices, group))),
            Impl("masked-sdpa", lambda: peers.sdpa(None, q, k, v, attn_mask=dense_mask())),
            Impl("naive", lambda: peers.naive(q, k, v, scale=scale, allowed=dense_mask())),
        ]

        return Problem(impls, reference=lambda: _sparse_reference(q, k, v, indices),
                       bytes=_selected_bytes(indices, head_dim, dtype))

    return build


def sparse_paged_case(batch, num_q_heads, num_kv_heads, head_dim, page_size, *, lengths=None,
                      n=None, keep=0.02, seed=0):
    """Sparse decode over a paged cache. With n (uniform lengths) and the same seed as a
    sparse_case, the selection is the same as that case's."""
    lengths = list(lengths) if lengths is not None else [n] * batch

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, 1, head_dim), dtype)
        kv = make_paged(gen, lengths, num_kv_heads, head_dim, page_size, dtype)
        indices = make_indices(_gen(seed + 1), batch, num_kv_heads, lengths, keep)
        group, scale = num_q_heads // num_kv_heads, head_dim ** -0.5
        mask = _used_mask(indices, group)

        def gather():
            return (peers.gather_sparse_paged(kv.k_cache, kv.block_table, indices),
                    peers.gather_sparse_paged(kv.v_cache, kv.block_table, indices))

        impls = [
            Impl("ours", lambda: lambda: kernels.sparse_paged_decode(
                q, kv.k_cache, kv.v_cache, kv.block_table, kv.seq_lens, indices,
                validate=False)),
            Impl("gather+sdpa", lambda: _gather_then_sdpa(gather, q, mask)),
            Impl("naive", lambda: _gather_then_naive(gather, q, mask, scale)),
        ]

        def reference() -> Reference:
            from attention_kernel_triton.oracles.reference import sparse_paged_decode_ref

            kvh, heads = _last_group(num_q_heads, num_kv_heads)
            kvs = slice(kvh, kvh + 1)
            ref, _ = sparse_paged_decode_ref(q[:, heads], kv.k_cache[:, :, kvs],
                                             kv.v_cache[:, :, kvs], kv.block_table,
                                             kv.seq_lens, indices[:, kvs])
            return Reference(ref, lambda out: out[:, heads],
                             f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")

        return Problem(impls, reference=reference,
                       bytes=_selected_bytes(indices, head_dim, dtype))

    return build


# --------------------------------------------------------------------------- paged prefill

@dataclass(frozen=True)
class SeqGroup:
    """`count` sequences, each with q_len new tokens at the end of a seq_len context (the
    new tokens included, as paged_prefill's seq_lens counts them)."""
    count: int
    q_len: int
    seq_len: int


def paged_prefill_flops(q_lens, seq_lens, num_q_heads: int, head_dim: int) -> float:
    """Causal work: query row i (0-based) of a sequence with m new tokens in an n-token
    context attends n - m + i + 1 keys, 4*Hq*D FLOPs per (row, key)."""
    return sum(4.0 * num_q_heads * head_dim * (m * (n - m) + m * (m + 1) / 2)
               for m, n in zip(q_lens, seq_lens, strict=True))


def _bottom_right_allowed(m: int, n: int) -> torch.Tensor:
    """[m, n] bool: query i (the last m of n positions) sees key j <= n - m + i."""
    i = torch.arange(m, device=DEVICE).view(m, 1)
    j = torch.arange(n, device=DEVICE).view(1, n)
    return j <= i + (n - m)


def _sdpa_mask(m: int, n: int, kind: str, dtype):
    """(attn_mask, is_causal) for SDPA, bottom-right causal over m queries and n keys.
    One query row sees every key (no mask); m == n is SDPA's own top-left causal. Else
    kind: 'bias' an additive 0/-inf mask in the inputs' dtype, made once (cuDNN takes a
    bias: a bool mask would be converted on every call, and a float32 one is misread by
    some torch builds); 'lower_right' torch's CausalBias (FlashAttention's bottom-right
    causal, no mask tensor); 'bool' a boolean mask (any backend)."""
    if m == 1:
        return None, False
    if m == n:
        return None, True
    if kind == "lower_right":
        from torch.nn.attention.bias import causal_lower_right

        return causal_lower_right(m, n), False
    allowed = _bottom_right_allowed(m, n).view(1, 1, m, n)
    if kind == "bool":
        return allowed, False
    bias = torch.zeros(1, 1, m, n, dtype=dtype, device=DEVICE)
    return bias.masked_fill_(~allowed, float("-inf")), False


def _grouped(groups, q, num_q_heads: int, head_dim: int):
    """Per group: (first sequence, sequences, its query rows as [count, Hq, q_len, D],
    a view of the packed q)."""
    out, seq, row = [], 0, 0
    for g in groups:
        rows = q[row:row + g.count * g.q_len]
        qg = rows.view(g.count, g.q_len, num_q_heads, head_dim).transpose(1, 2)
        out.append((g, slice(seq, seq + g.count), qg))
        seq, row = seq + g.count, row + g.count * g.q_len
    return out


def _packed_out(outs, num_q_heads: int, head_dim: int) -> torch.Tensor:
    """Per-group [count, Hq, q_len, D] outputs -> packed [Tq, Hq, D]."""
    flat = [o.transpose(1, 2).reshape(-1, num_q_heads, head_dim) for o in outs]
    return flat[0] if len(flat) == 1 else torch.cat(flat)


def _grouped_call(calls, num_q_heads: int, head_dim: int):
    """One group: its [count, Hq, q_len, D] output as it is (the check reshapes it; no
    copy in the timed call); several: concatenated into the packed layout (timed)."""
    if len(calls) == 1:
        return calls[0]
    return lambda: _packed_out([c() for c in calls], num_q_heads, head_dim)


def paged_sdpa(backend: str | None, q, kv: PagedKV, groups, num_q_heads: int,
               head_dim: int, *, mask_kind: str | None = None):
    """Timed: per group of equal (q_len, seq_len), gather its pages into dense
    [count, Hkv, seq_len, D] K and V, then one SDPA call (pinned to `backend`, or any)
    with a bottom-right causal mask (`_sdpa_mask`)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    kind = mask_kind or {"cudnn": "bias", "flash": "lower_right"}.get(backend, "bool")
    parts = []
    for g, seqs, qg in _grouped(groups, q, num_q_heads, head_dim):
        mask, causal = _sdpa_mask(g.q_len, g.seq_len, kind, q.dtype)
        parts.append((g, kv.block_table[seqs], qg, mask, causal))

    def group_call(g, table, qg, mask, causal):
        def call():
            kg = peers.gather_paged_dense(kv.k_cache, table, g.seq_len)
            vg = peers.gather_paged_dense(kv.v_cache, table, g.seq_len)
            return F.scaled_dot_product_attention(qg, kg, vg, attn_mask=mask,
                                                  is_causal=causal, enable_gqa=True)
        return call

    inner = _grouped_call([group_call(*p) for p in parts], num_q_heads, head_dim)
    if backend is None:
        return peers.probe(inner)
    chosen = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
              "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[backend]

    def pinned():
        with sdpa_kernel(chosen):
            return inner()

    return peers.probe(pinned)


def paged_flex(q, kv: PagedKV, groups, num_q_heads: int, head_dim: int):
    """FlexAttention per group on K/V gathered dense in setup (untimed), each a batched
    call with a bottom-right causal block mask (none for one query row)."""
    calls = []
    for g, seqs, qg in _grouped(groups, q, num_q_heads, head_dim):
        table = kv.block_table[seqs]
        kg = peers.gather_paged_dense(kv.k_cache, table, g.seq_len).contiguous()
        vg = peers.gather_paged_dense(kv.v_cache, table, g.seq_len).contiguous()
        mask = None if g.q_len == 1 else peers.flex_causal_mask(g.q_len, g.seq_len, DEVICE)
        calls.append(peers.flex(qg.contiguous(), kg, vg, mask=mask))
    call = _grouped_call(calls, num_q_heads, head_dim)
    call.bench_note = "K/V gathered dense in setup (untimed)"
    return call


def _paged_prefill_ref(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, **scales):
    """The fp64 oracle, causal (scales: an fp8 cache's)."""
    from attention_kernel_triton.oracles.reference import paged_prefill_ref

    return paged_prefill_ref(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens,
                             causal=True, **scales)


def paged_prefill_case(groups, num_q_heads, num_kv_heads, head_dim, page_size, *,
                       decode_step=False, parts=False, kv_dtype=None, seed=0):
    """New tokens of packed sequences against their paged context (all pages of the cache
    in one random physical order). groups: SeqGroup list, packed in that order.
    decode_step: add ours' paged_decode over the same cache with each sequence's last
    query row (one decode step). parts: add ours' specialised kernels on the same call,
    paged_decode on the leading one-token rows + prefill_varlen on the rest (dense).
    kv_dtype (fp8): ours on the quantised caches against ours on the 16-bit ones only."""
    groups = tuple(groups)
    q_lens = [g.q_len for g in groups for _ in range(g.count)]
    seq_lens = [g.seq_len for g in groups for _ in range(g.count)]
    if any(m > n or m < 1 for m, n in zip(q_lens, seq_lens, strict=True)):
        raise ValueError("every sequence needs 1 <= q_len <= seq_len")

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (sum(q_lens), num_q_heads, head_dim), dtype)
        kv = make_paged(gen, seq_lens, num_kv_heads, head_dim, page_size, dtype)
        cu_q = _i32([0, *accumulate(q_lens)])
        max_q, max_k = max(q_lens), max(seq_lens)
        kvh, heads = _last_group(num_q_heads, num_kv_heads)
        kvs = slice(kvh, kvh + 1)
        what = f"fp64 oracle on heads {heads.start}-{heads.stop - 1}"
        memo: dict[str, Reference] = {}

        def reference() -> Reference:
            if "ref" not in memo:
                ref, _ = _paged_prefill_ref(q[:, heads], kv.k_cache[:, :, kvs],
                                            kv.v_cache[:, :, kvs], kv.block_table, cu_q,
                                            kv.seq_lens)
                memo["ref"] = Reference(ref, lambda out: out[:, heads], what)
            return memo["ref"]

        flops = paged_prefill_flops(q_lens, seq_lens, num_q_heads, head_dim)
        if kv_dtype is not None:
            def fp8_reference(c, s) -> Reference:
                ref, _ = _paged_prefill_ref(q[:, heads], c["k_cache"][:, :, kvs],
                                            c["v_cache"][:, :, kvs], kv.block_table, cu_q,
                                            kv.seq_lens, **s)
                return Reference(ref, lambda out: out[:, heads], what)

            return _fp8_problem(
                kernels, kv_dtype, {"k_cache": kv.k_cache, "v_cache": kv.v_cache},
                lambda c, s: lambda: kernels.paged_prefill(
                    q, c["k_cache"], c["v_cache"], kv.block_table, cu_q, kv.seq_lens,
                    max_seqlen_q=max_q, causal=True, validate=False, **s),
                fp8_reference, bytes16=kv_bytes(sum(seq_lens), num_kv_heads, head_dim, dtype),
                bytes8=kv_bytes(sum(seq_lens), num_kv_heads, head_dim, kv_dtype), flops=flops)

        def batched_reference() -> Reference:
            # a one-group peer returns [count, Hq, q_len, D]; compare it packed
            base = reference()
            return Reference(base.out, lambda out: base.select(
                _packed_out([out], num_q_heads, head_dim)), base.what)

        grouped_ref = batched_reference if len(groups) == 1 else None

        def dense_packed(lo: int, hi: int):
            """Sequences lo..hi-1: their K and V packed dense [sum(seq_lens), Hkv, D]."""
            slots = peers.packed_slots(kv.block_table[lo:hi], seq_lens[lo:hi], page_size)
            return (peers.gather_paged_packed(kv.k_cache, slots),
                    peers.gather_paged_packed(kv.v_cache, slots),
                    _i32([0, *accumulate(seq_lens[lo:hi])]))

        def make_dense_varlen():
            kd, vd, cu_k = dense_packed(0, len(seq_lens))
            call = lambda: kernels.prefill_varlen(  # noqa: E731
                q, kd, vd, cu_q, cu_k, max_seqlen_q=max_q, max_seqlen_k=max_k, causal=True,
                validate=False)
            call.bench_note = "K/V gathered dense in setup (untimed)"
            return call

        impls = [
            Impl("ours", lambda: lambda: kernels.paged_prefill(
                q, kv.k_cache, kv.v_cache, kv.block_table, cu_q, kv.seq_lens,
                max_seqlen_q=max_q, causal=True, validate=False)),
            Impl("ours-dense-varlen", make_dense_varlen),
        ]
        if parts:
            impls.append(Impl("ours-decode+varlen", lambda: _parts_call(
                kernels, q, kv, cu_q, q_lens, seq_lens, dense_packed)))
        if decode_step:
            last_rows = cu_q[1:].long() - 1

            def make_decode_step():
                q1 = q[last_rows]  # [B, Hq, D]: each sequence's last new token
                return lambda: kernels.paged_decode(q1, kv.k_cache, kv.v_cache,
                                                    kv.block_table, kv.seq_lens,
                                                    validate=False)

            def decode_step_reference() -> Reference:
                from attention_kernel_triton.oracles.reference import paged_decode_ref

                ref, _ = paged_decode_ref(q[last_rows][:, heads], kv.k_cache[:, :, kvs],
                                          kv.v_cache[:, :, kvs], kv.block_table,
                                          kv.seq_lens)
                return Reference(ref, lambda out: out[:, heads],
                                 f"{what} (each sequence's last query row, paged decode)")

            impls.append(Impl("ours-paged-decode-1step", make_decode_step,
                              reference=decode_step_reference,
                              flops=paged_prefill_flops([1] * len(seq_lens), seq_lens,
                                                        num_q_heads, head_dim)))
        for backend in ("cudnn", "flash"):
            impls.append(Impl(f"gather+sdpa-{backend}", lambda b=backend: paged_sdpa(
                b, q, kv, groups, num_q_heads, head_dim), reference=grouped_ref))
        impls.append(Impl("flex", lambda: paged_flex(q, kv, groups, num_q_heads, head_dim),
                          reference=grouped_ref))
        impls.append(Impl("flashinfer", lambda: peers.flashinfer_paged_prefill(
            q, kv.k_cache, kv.v_cache, kv.block_table, cu_q, kv.seq_lens, causal=True,
            scale=head_dim ** -0.5)))
        return Problem(impls, reference=reference, flops=flops,
                       bytes=kv_bytes(sum(seq_lens), num_kv_heads, head_dim, dtype))

    return build


def _parts_call(kernels, q, kv: PagedKV, cu_q, q_lens, seq_lens, dense_packed):
    """Ours' specialised kernels on one mixed call, into one output: paged_decode on the
    leading one-token sequences (same paged cache), prefill_varlen on the others (their
    K/V gathered dense in setup, untimed)."""
    decode_rows = next((i for i, m in enumerate(q_lens) if m != 1), len(q_lens))
    if decode_rows == 0 or decode_rows == len(q_lens) or any(
            m == 1 for m in q_lens[decode_rows:]):
        raise peers.Skipped("needs one-token sequences first, then longer ones")
    out = torch.empty_like(q)
    q_dec, q_pre = q[:decode_rows], q[decode_rows:]
    out_dec, out_pre = out[:decode_rows], out[decode_rows:]
    table, lens = kv.block_table[:decode_rows], kv.seq_lens[:decode_rows]
    kd, vd, cu_k = dense_packed(decode_rows, len(q_lens))
    cu_pre = (cu_q[decode_rows:] - decode_rows).contiguous()
    max_q, max_k = max(q_lens[decode_rows:]), max(seq_lens[decode_rows:])

    def call():
        kernels.paged_decode(q_dec, kv.k_cache, kv.v_cache, table, lens, out=out_dec,
                             validate=False)
        kernels.prefill_varlen(q_pre, kd, vd, cu_pre, cu_k, max_seqlen_q=max_q,
                               max_seqlen_k=max_k, causal=True, out=out_pre, validate=False)
        return out

    call.bench_note = (f"paged_decode on {decode_rows} rows + prefill_varlen on "
                       f"{len(q_lens) - decode_rows} sequences (K/V dense, gathered untimed)")
    return call


# --------------------------------------------------------------------------- the list

FP16 = (torch.float16,)
BOTH = (torch.float16, torch.bfloat16)


def all_cases() -> list[Case]:
    """Every case, in run order (per family: seed shape first)."""
    cases = [
        Case("prefill", "causal B8 Hq64 Hkv16 N1024 D64 (seed)", FP16,
             prefill_case(8, 64, 16, 1024, 64), quick=True),
        Case("prefill", "causal B4 Hq32 Hkv8 N4096 D128", BOTH, prefill_case(4, 32, 8, 4096, 128)),
        Case("prefill", "causal B1 Hq32 Hkv8 N16384 D128", BOTH,
             prefill_case(1, 32, 8, 16384, 128)),
        Case("prefill", "padded var-len B8 Hq64 Hkv16 N1024 D64, seed lengths", FP16,
             prefill_case(8, 64, 16, 1024, 64, lengths=SEED_LENGTHS), quick=True),
        Case("prefill_varlen", "packed causal, seed lengths, Hq64 Hkv16 D64", FP16,
             varlen_case(SEED_LENGTHS, 64, 16, 64), quick=True),
        Case("prefill_varlen", "packed causal, 5 seqs T16384 Hq32 Hkv8 D128", FP16,
             varlen_case((6240, 4096, 3000, 2048, 1000), 32, 8, 128)),
    ]
    decode_shapes = [  # (batch, Hq, Hkv, N, D, label)
        (8, 64, 16, 1024, 64, "B8 Hq64 Hkv16 N1024 D64 (seed)"),
        (32, 32, 8, 4096, 128, "B32 Hq32 Hkv8 N4096 D128"),
        (1, 32, 8, 65536, 128, "B1 Hq32 Hkv8 N65536 D128"),
    ]
    for i, (b, hq, hkv, n, d, label) in enumerate(decode_shapes):
        cases.append(Case("decode", label, FP16, decode_case(b, hq, hkv, n, d), quick=i == 0))
    cases.append(Case("paged_decode", "B3 Hq4 Hkv1 D64 P16, lengths 1024/517/781 (seed)", FP16,
                      paged_case(3, 4, 1, 64, 16, lengths=(1024, 517, 781)), quick=True))
    for i, (b, hq, hkv, n, d, label) in enumerate(decode_shapes):
        for page in (1, 16, 64):
            cases.append(Case("paged_decode", f"{label.replace(' (seed)', '')} P{page}", FP16,
                              paged_case(b, hq, hkv, d, page, n=n),
                              quick=i == 0 and page == 16))
    cases += [
        Case("sparse_decode", "B4 Hq32 Hkv8 N32000 D256, 2% per KV head (seed)", FP16,
             sparse_case(4, 32, 8, 32000, 256), quick=True),
        Case("sparse_decode", "B4 Hq32 Hkv8 N65536 D256, 2% per KV head", FP16,
             sparse_case(4, 32, 8, 65536, 256)),
        Case("sparse_paged_decode",
             "B3 Hq32 Hkv8 D256 P16, lengths 32000/20000/12000, 2% (seed)", FP16,
             sparse_paged_case(3, 32, 8, 256, 16, lengths=(32000, 20000, 12000)), quick=True),
        Case("sparse_paged_decode", "B4 Hq32 Hkv8 N32000 D256 P16, 2% per KV head", FP16,
             sparse_paged_case(4, 32, 8, 256, 16, n=32000)),
        Case("sparse_paged_decode", "B4 Hq32 Hkv8 N65536 D256 P16, 2% per KV head", FP16,
             sparse_paged_case(4, 32, 8, 256, 16, n=65536)),
    ]
    cases += paged_prefill_cases()
    cases += fp8_cases()
    cases += variant_cases()
    return cases


def fp8_cases() -> list[Case]:
    """fp8 KV caches (issue 24), q fp16: each against ours on the fp16 K/V it was
    quantised from (the bytes halve: ~0.5x is the floor, 0.60x the target)."""
    e4m3, e5m2 = torch.float8_e4m3fn, torch.float8_e5m2
    half = (Target(("ours-fp16",), 0.60, "at most 0.60x of ours on the fp16 cache"),)

    def case(family, label, build, kv_dtype, targets=half):
        return Case(family, f"{label}, {FP8_NAMES[kv_dtype]} KV", FP16, build,
                    targets=targets, kv_dtype=kv_dtype)

    return [
        case("decode", "B32 Hq32 Hkv8 N4096 D128", decode_case(32, 32, 8, 4096, 128,
                                                               kv_dtype=e4m3), e4m3),
        case("decode", "B32 Hq32 Hkv8 N4096 D128", decode_case(32, 32, 8, 4096, 128,
                                                               kv_dtype=e5m2), e5m2),
        case("decode", "B1 Hq32 Hkv8 N65536 D128", decode_case(1, 32, 8, 65536, 128,
                                                               kv_dtype=e4m3), e4m3),
        case("paged_decode", "B32 Hq32 Hkv8 N4096 D128 P16",
             paged_case(32, 32, 8, 128, 16, n=4096, kv_dtype=e4m3), e4m3),
        case("paged_decode", "B1 Hq32 Hkv8 N65536 D128 P16",
             paged_case(1, 32, 8, 128, 16, n=65536, kv_dtype=e4m3), e4m3),
        case("sparse_decode", "B4 Hq32 Hkv8 N32000 D256, 2% per KV head (seed)",
             sparse_case(4, 32, 8, 32000, 256, kv_dtype=e4m3), e4m3,
             (Target.at_most_ms(0.011, "at most 11 us"), *half)),
        # compute-bound chunk and bandwidth-bound speculative verification: issue 24 sets
        # no target; the rows say what fp8 costs or saves there
        case("paged_prefill", "chunked: 8 seqs, 512 new on 4096 context, Hq32 Hkv8 D128 P16",
             paged_prefill_case([SeqGroup(8, 512, 4608)], 32, 8, 128, 16, kv_dtype=e4m3),
             e4m3, ()),
        case("paged_prefill", "spec-verify: 32 seqs, 4 new at 32768, Hq32 Hkv8 D128 P16",
             paged_prefill_case([SeqGroup(32, 4, 32768)], 32, 8, 128, 16, kv_dtype=e4m3),
             e4m3, ()),
    ]


def _gemma_sinks(num_q_heads: int) -> torch.Tensor:
    return torch.linspace(-1.0, 3.0, num_q_heads, device=DEVICE)


def _variant_prefill_case(batch, num_q_heads, num_kv_heads, n, head_dim, variants: dict,
                          *, flex_window: int | None = None, seed=0):
    """Causal prefill with variant options (a dict, or a callable giving one on the
    device) against ours without them on the same tensors, by the default path
    ("ours-plain": the Gluon kernel where it applies) and by the Triton kernel
    ("ours-plain-triton"); ours with the variants on the Triton kernel too
    ("ours-triton": ALiBi runs there anyway, the others take the Gluon kernel where it
    applies)."""
    from attention_kernel_triton.kernels import tuning

    def triton_only(call):
        def run():
            with tuning.override(prefill_gluon=False):
                return call()
        return run

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q, k, v = _qkv(gen, batch, num_q_heads, num_kv_heads, n, n, head_dim, dtype)
        var = variants() if callable(variants) else variants
        plain = lambda: kernels.prefill(q, k, v, causal=True, validate=False)  # noqa: E731
        impls = [
            Impl("ours", lambda: lambda: kernels.prefill(q, k, v, causal=True,
                                                         validate=False, **var)),
            Impl("ours-plain", lambda: plain, reference=lambda: _prefill_reference(
                q, k, v, None)),
            Impl("ours-plain-triton", lambda: triton_only(plain),
                 reference=lambda: _prefill_reference(q, k, v, None)),
        ]
        if "alibi_slopes" not in var:
            impls.append(Impl("ours-triton", lambda: triton_only(
                lambda: kernels.prefill(q, k, v, causal=True, validate=False, **var))))
        flops = causal_flops([n] * batch, num_q_heads, head_dim)
        if flex_window is not None:
            impls.append(Impl("flex", lambda: peers.flex(
                q, k, v, mask=peers.flex_sliding_window_mask(n, flex_window, DEVICE))))
            # the window's work: each row attends min(i + 1, left + 1) keys
            keys = sum(min(i + 1, flex_window + 1) for i in range(n))
            flops = 4.0 * batch * num_q_heads * head_dim * keys
        return Problem(impls, reference=lambda: _prefill_reference(q, k, v, None, **var),
                       flops=flops)

    return build


def _variant_decode_case(batch, num_q_heads, num_kv_heads, n, head_dim, variants: dict, *,
                         window_peer_n: int | None = None, seed=0):
    """Decode with variant options against ours without them on the same cache
    ("ours-plain"); with window_peer_n, also ours without a window over the last
    window_peer_n tokens of each sequence ("ours-N<n>", a cache that long)."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q, k, v = _qkv(gen, batch, num_q_heads, num_kv_heads, 1, n, head_dim, dtype)
        var = variants() if callable(variants) else variants
        impls = [
            Impl("ours", lambda: lambda: kernels.decode(q, k, v, validate=False, **var)),
            Impl("ours-plain", lambda: lambda: kernels.decode(q, k, v, validate=False),
                 reference=lambda: _decode_reference(q, k, v)),
        ]
        used = n
        if window_peer_n is not None:
            ks, vs = k[:, :, n - window_peer_n:].contiguous(), v[:, :, n - window_peer_n:] \
                .contiguous()
            impls.append(Impl(f"ours-N{window_peer_n}",
                              lambda: lambda: kernels.decode(q, ks, vs, validate=False),
                              reference=lambda: _decode_reference(q, ks, vs),
                              bytes=kv_bytes(batch * window_peer_n, num_kv_heads, head_dim,
                                             dtype)))
            used = min(n, var["window"][0] + 1)
        return Problem(impls, reference=lambda: _decode_reference(q, k, v, **var),
                       bytes=kv_bytes(batch * used, num_kv_heads, head_dim, dtype))

    return build


def variant_cases() -> list[Case]:
    """The attention variants (issue 23), fp16, each against ours without it on the same
    tensors in the same run: a sliding window's cost must follow the window (prefill at
    most 0.50x of full causal, whose work ratio is 0.44; decode over a 4096 window of a
    32768 cache within 1.15x of decode over a 4096 cache), soft-capping and sinks cost at
    most 5% on the D128 rows (prefill: against the default path without them, the Gluon
    kernel on Hopper, which runs both)."""

    def case(family, label, variant, build, targets):
        return Case(family, label, FP16, build, targets=targets, variant=variant)

    five = lambda peers_: Target(peers_, 1.05, "at most 5% over ours without it")  # noqa: E731
    return [
        case("prefill", "causal B1 Hq32 Hkv8 N16384 D128, window (4096, 0)", "window",
             _variant_prefill_case(1, 32, 8, 16384, 128, {"window": (4096, 0)},
                                   flex_window=4096),
             (Target(("ours-plain",), 0.50, "at most 0.50x of full causal (ours, default "
                     "path)"),)),
        case("decode", "B32 Hq32 Hkv8 N32768 D128, window 4096", "window",
             _variant_decode_case(32, 32, 8, 32768, 128, {"window": (4096, -1)},
                                  window_peer_n=4096),
             (Target(("ours-N4096",), 1.15, "within 1.15x of decode at N4096"),)),
        case("prefill", "causal B4 Hq32 Hkv8 N4096 D128, softcap 50", "softcap",
             _variant_prefill_case(4, 32, 8, 4096, 128, {"softcap": 50.0}),
             (five(("ours-plain",)),)),
        case("prefill", "causal B4 Hq32 Hkv8 N4096 D128, sinks", "sinks",
             _variant_prefill_case(4, 32, 8, 4096, 128, lambda: {"sinks": _gemma_sinks(32)}),
             (five(("ours-plain",)),)),
        case("decode", "B32 Hq32 Hkv8 N4096 D128, softcap 50", "softcap",
             _variant_decode_case(32, 32, 8, 4096, 128, {"softcap": 50.0}),
             (five(("ours-plain",)),)),
        case("decode", "B32 Hq32 Hkv8 N4096 D128, sinks", "sinks",
             _variant_decode_case(32, 32, 8, 4096, 128, lambda: {"sinks": _gemma_sinks(32)}),
             (five(("ours-plain",)),)),
        case("prefill", "causal B4 Hq32 Hkv8 N4096 D128, Gemma 2: softcap 50 + window "
             "(4096, 0)", "softcap+window",
             _variant_prefill_case(4, 32, 8, 4096, 128, {"softcap": 50.0,
                                                         "window": (4096, 0)}), ()),
        case("prefill", "causal B4 Hq32 Hkv8 N4096 D128, ALiBi", "alibi",
             _variant_prefill_case(4, 32, 8, 4096, 128, lambda: {
                 "alibi_slopes": torch.tensor(_alibi(32), device=DEVICE)}), ()),
    ]


def _alibi(num_heads: int) -> list[float]:
    from attention_kernel_triton.strategies.tensors import alibi_slopes

    return alibi_slopes(num_heads)


def paged_prefill_cases() -> list[Case]:
    """Hq32 Hkv8 D128, page 16, every page of the cache in one random order."""
    def case(label, groups, targets, *, quick=False, **kw):
        return Case("paged_prefill", f"{label}, Hq32 Hkv8 D128 P16", BOTH,
                    paged_prefill_case(groups, 32, 8, 128, 16, **kw), quick=quick,
                    targets=targets)

    dense = ("ours-dense-varlen",)
    sdpa = ("gather+sdpa-cudnn", "gather+sdpa-flash")
    return [
        case("chunked: 8 seqs, 512 new on 4096 context (seq_len 4608)",
             [SeqGroup(8, 512, 4608)],
             (Target(dense, 1.15, "within 1.15x of ours-dense-varlen"),
              Target(sdpa, 0.5, "at least 2x faster than gather+SDPA (faster backend)")),
             quick=True),
        case("fresh: 4 x 4096 through the paged cache", [SeqGroup(4, 4096, 4096)],
             (Target(dense, 1.10, "within 1.10x of ours-dense-varlen"),)),
        case("mixed: 32 decode rows at 4096 + 2 chunks of 1024 new at 8192",
             [SeqGroup(32, 1, 4096), SeqGroup(2, 1024, 8192)],
             (Target(("ours-decode+varlen",), 1.15,
                     "within 1.15x of the sum of parts (paged_decode + prefill_varlen)"),),
             parts=True),
        case("spec-verify: 32 seqs, 4 new at 4096 context", [SeqGroup(32, 4, 4096)],
             (Target(("ours-paged-decode-1step",), 1.5,
                     "at most 1.5x one paged_decode step"),), decode_step=True),
        case("spec-verify: 32 seqs, 4 new at 32768 context", [SeqGroup(32, 4, 32768)],
             (Target(("ours-paged-decode-1step",), 1.5,
                     "at most 1.5x one paged_decode step"),), decode_step=True),
    ]


def case_targets() -> dict[tuple[str, str], tuple[Target, ...]]:
    """(family, case name) -> the case's targets, for the report."""
    return {(c.family, c.name): c.targets for c in all_cases() if c.targets}


def select_cases(families, *, quick: bool, dtypes=None, kv: str = "all",
                 variants: str = "all") -> list[tuple[Case, torch.dtype]]:
    """(case, dtype) pairs to run: the chosen families, quick subset, dtype override, KV
    format (KV_CHOICES: all, only the fp8-KV cases, only the others) and the attention
    variants' cases (VARIANT_CHOICES: all, only them, none of them)."""
    if kv not in KV_CHOICES:
        raise ValueError(f"kv must be one of {KV_CHOICES}, got {kv!r}")
    if variants not in VARIANT_CHOICES:
        raise ValueError(f"variants must be one of {VARIANT_CHOICES}, got {variants!r}")
    chosen = []
    for case in all_cases():
        if case.family not in families or (quick and not case.quick):
            continue
        if (kv == "fp8" and case.kv_dtype is None) or (kv == "plain" and case.kv_dtype):
            continue
        if (variants == "only" and case.variant is None) or (variants == "none"
                                                             and case.variant):
            continue
        for dtype in (dtypes or (case.dtypes[:1] if quick else case.dtypes)):
            chosen.append((case, dtype))
    return chosen
