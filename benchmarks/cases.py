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
valid lengths. Bytes: K and V of the valid (or selected) tokens, read once.
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
            "sparse_paged_decode")
# the public function each family times (a family is skipped until it exists)
FUNCTION = {family: family for family in FAMILIES}
COMPUTE_BOUND = ("prefill", "prefill_varlen")  # TFLOP/s; the others report GB/s
GRAPH_FAMILIES = ("decode", "paged_decode", "sparse_decode", "sparse_paged_decode")

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
# max |out - float64 oracle| beyond which an implementation is reported wrong, not timed
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float32: 1e-3}

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
class Case:
    family: str
    name: str
    dtypes: tuple[torch.dtype, ...]
    build: Callable[[torch.dtype], Problem] = field(compare=False, repr=False)
    quick: bool = False  # part of --quick

    @property
    def graph(self) -> bool:
        return self.family in GRAPH_FAMILIES


# --------------------------------------------------------------------------- helpers

DEVICE = "cuda"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device=DEVICE).manual_seed(seed)


def _randn(gen, shape, dtype) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=DEVICE, dtype=dtype)


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

def _prefill_reference(q, k, v, lens) -> Reference:
    from attention_kernel_triton.oracles.reference import prefill_ref

    batch, num_q_heads, n, _ = q.shape
    kvh, heads = _last_group(num_q_heads, k.shape[1])
    kv = slice(kvh, kvh + 1)
    if lens is None and n > 2 * CHECK_ROWS:
        b, rows = slice(batch - 1, batch), slice(n - CHECK_ROWS, n)
        ref, _ = prefill_ref(q[b, heads, rows], k[b, kv], v[b, kv], causal=True,
                             seq_lens=_i32([CHECK_ROWS]), kv_seq_lens=_i32([n]))
        what = (f"fp64 oracle on batch {batch - 1}, heads {heads.start}-{heads.stop - 1}, "
                f"rows {n - CHECK_ROWS}-{n - 1}")
    else:
        b, rows = slice(None), slice(None)
        ref, _ = prefill_ref(q[:, heads], k[:, kv], v[:, kv], causal=True, seq_lens=lens)
        what = f"fp64 oracle on heads {heads.start}-{heads.stop - 1}"
    return Reference(ref, lambda out: out[b, heads, rows], what)


def prefill_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, lengths=None, seed=0):
    """Causal prefill over [B, H, N, D]; with `lengths`, padded var-len (seq_lens)."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, n, head_dim), dtype)
        k = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
        v = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
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

def _decode_reference(q, k, v, seq_lens=None) -> Reference:
    from attention_kernel_triton.oracles.reference import decode_ref

    kvh, heads = _last_group(q.shape[1], k.shape[1])
    kv = slice(kvh, kvh + 1)
    ref, _ = decode_ref(q[:, heads], k[:, kv], v[:, kv], seq_lens=seq_lens)
    return Reference(ref, lambda out: out[:, heads],
                     f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")


def decode_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, seed=0):
    """One query token per sequence, q [B, Hq, 1, D], against a full dense K/V."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, 1, head_dim), dtype)
        k = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
        v = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
        scale = head_dim ** -0.5
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


def paged_case(batch, num_q_heads, num_kv_heads, head_dim, page_size, *, lengths=None, n=None,
               seed=0):
    """Paged decode; every sequence at length n, or the given lengths."""
    lengths = list(lengths) if lengths is not None else [n] * batch

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, 1, head_dim), dtype)
        kv = make_paged(gen, lengths, num_kv_heads, head_dim, page_size, dtype)
        longest, scale = max(lengths), head_dim ** -0.5
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

        def reference() -> Reference:
            from attention_kernel_triton.oracles.reference import paged_decode_ref

            kvh, heads = _last_group(num_q_heads, num_kv_heads)
            kvs = slice(kvh, kvh + 1)
            ref, _ = paged_decode_ref(q[:, heads], kv.k_cache[:, :, kvs], kv.v_cache[:, :, kvs],
                                      kv.block_table, kv.seq_lens)
            return Reference(ref, lambda out: out[:, heads],
                             f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")

        return Problem(impls, reference=reference,
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


def sparse_case(batch, num_q_heads, num_kv_heads, n, head_dim, *, keep=0.02, seed=0):
    """Decode over round(keep * n) selected tokens per (sequence, KV head)."""

    def build(dtype) -> Problem:
        kernels = _kernels()
        gen = _gen(seed)
        q = _randn(gen, (batch, num_q_heads, 1, head_dim), dtype)
        k = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
        v = _randn(gen, (batch, num_kv_heads, n, head_dim), dtype)
        indices = make_indices(_gen(seed + 1), batch, num_kv_heads, [n] * batch, keep)
        group, scale = num_q_heads // num_kv_heads, head_dim ** -0.5

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

        def reference() -> Reference:
            from attention_kernel_triton.oracles.reference import sparse_decode_ref

            kvh, heads = _last_group(num_q_heads, num_kv_heads)
            kv = slice(kvh, kvh + 1)
            ref, _ = sparse_decode_ref(q[:, heads], k[:, kv], v[:, kv], indices[:, kv])
            return Reference(ref, lambda out: out[:, heads],
                             f"fp64 oracle on heads {heads.start}-{heads.stop - 1}")

        return Problem(impls, reference=reference,
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
    return cases


def select_cases(families, *, quick: bool, dtypes=None) -> list[tuple[Case, torch.dtype]]:
    """(case, dtype) pairs to run: the chosen families, quick subset, dtype override."""
    chosen = []
    for case in all_cases():
        if case.family not in families or (quick and not case.quick):
            continue
        for dtype in (dtypes or (case.dtypes[:1] if quick else case.dtypes)):
            chosen.append((case, dtype))
    return chosen
