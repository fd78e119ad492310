"""Argument checks shared by every host wrapper.

Each check raises with the argument's name, what was expected and what came:
``TypeError`` when an argument is not a tensor (or not the right Python type),
``ValueError`` for everything else (rank, shape, dtype, device, values).
Checks on tensor *values* (lengths, table entries, indices) need a host-device sync and
run only when ``validate`` is true; shape, dtype and device checks always run.
All checks happen before any launch, so a failed call writes nothing.

One function per public call checks it whole (``decode_call`` for the four decode
functions, ``prefill_call``, ``prefill_varlen_call``); kernels/api.py calls it once, then
the custom op, whose implementation trusts what it gets.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import math

import torch

from ._config import GRID_YZ_LIMIT, interpreting
from .mods import ScoreMods, fp32_factor

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
# KV caches the decode functions and paged_prefill also take (with fp16 / bf16 q).
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256
MAX_NUM_SPLITS = GRID_YZ_LIMIT  # a split count is a grid axis (y or z)
INT32_MAX = 2**31 - 1  # token positions are int32: a window side past it bounds nothing


def positive_float(name: str, x, none_means: str = "") -> float:
    """x as a finite float > 0 (a bool, a non-number: TypeError; NaN, inf, <= 0, an int
    too large for a float: ValueError naming `name`)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(x).__name__}")
    if not 0 < x < math.inf:  # NaN fails too; traceable on a SymFloat (compile), unlike isfinite
        raise ValueError(f"{name} must be finite and > 0{none_means}, got {x}")
    try:
        return float(x)
    except OverflowError:  # an int past the float range
        raise ValueError(f"{name} must be finite and > 0{none_means}, got an int of "
                         f"{x.bit_length()} bits") from None


def flags(**named) -> None:
    """causal, return_lse, validate: a bool (or an int 0 / 1). A string or a tensor is a
    TypeError: bool("False") is True, so causal="False" ran causal, and validate=None
    turned the checks off (session 23 review)."""
    for name, x in named.items():
        if not (isinstance(x, bool) or (isinstance(x, int) and x in (0, 1))):
            got = repr(x) if isinstance(x, (str, int, float, type(None))) else type(x).__name__
            raise TypeError(f"{name} must be a bool, got {got}")


def tensor(name: str, t, rank: int | None = None, layout: str = "") -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if rank is not None and t.dim() != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {tuple(t.shape)}")
    return t


def float_input(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if t.numel() and t.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last (head) dim, got strides "
                         f"{t.stride()}")


def on_kernel_device(name: str, t: torch.Tensor) -> None:
    """Triton kernels need CUDA tensors, except under the interpreter (CPU tensors)."""
    if t.device.type != "cuda" and not interpreting():
        raise ValueError(f"{name} must be on a CUDA device (or run with TRITON_INTERPRET=1), "
                         f"got {t.device}")


def same_kind(ref_name: str, ref: torch.Tensor, name: str, t: torch.Tensor) -> None:
    if t.dtype != ref.dtype:
        raise ValueError(f"{name} must have dtype {ref.dtype} like {ref_name}, got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} must be on {ref.device} like {ref_name}, got {t.device}")


def head_dim(d: int) -> None:
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head dim D must be in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}], got {d}")


def gqa(num_q_heads: int, num_kv_heads: int) -> None:
    if num_q_heads < 1:
        raise ValueError(f"q must have at least one head, got Hq={num_q_heads}")
    if num_kv_heads < 1 or num_q_heads % num_kv_heads != 0:
        raise ValueError(f"Hq % Hkv must be 0 (query heads {num_q_heads}, KV heads "
                         f"{num_kv_heads})")


def check_qkv(q, k, v, *, rank: int, layout: str) -> None:
    """Dense q/k/v with heads on axis -2 and head dim on axis -1 (batch/seq elsewhere)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        tensor(name, t, rank, layout)
        float_input(name, t)
    on_kernel_device("q", q)
    same_kind("q", q, "k", k)
    same_kind("q", q, "v", v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have head dim {q.shape[-1]} like q, got {k.shape[-1]}")
    head_dim(q.shape[-1])
    gqa(q.shape[-3 if rank == 4 else -2], k.shape[-3 if rank == 4 else -2])


def int32_vector(name: str, t, length: int, device: torch.device) -> torch.Tensor:
    tensor(name, t)
    if t.dtype != torch.int32:
        raise ValueError(f"{name} must be int32, got {t.dtype}")
    if t.dim() != 1 or t.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} must be on {device} like q, got {t.device}")
    if length > 1 and t.stride(0) != 1:  # the kernels index it as a plain array
        raise ValueError(f"{name} must be contiguous, got stride {t.stride(0)}")
    return t


def check_lengths(name: str, lens, batch: int, capacity: int, device, validate: bool) -> None:
    int32_vector(name, lens, batch, device)
    if validate and batch:
        lo, hi = int(lens.min()), int(lens.max())
        if lo < 0:
            raise ValueError(f"{name} must be >= 0, got a length of {lo}")
        if hi > capacity:
            raise ValueError(f"{name} must be <= {capacity} (the tensor's capacity), got a "
                             f"length of {hi}")


def check_cu_seqlens(name: str, cu, total: int, device, validate: bool) -> int:
    """Returns the batch size B (cu has B + 1 entries)."""
    tensor(name, cu)
    if cu.dtype != torch.int32:
        raise ValueError(f"{name} must be int32, got {cu.dtype}")
    if cu.dim() != 1 or cu.shape[0] < 1:
        raise ValueError(f"{name} must have shape (B + 1,), got {tuple(cu.shape)}")
    if cu.device != device:
        raise ValueError(f"{name} must be on {device} like q, got {cu.device}")
    if cu.shape[0] > 1 and cu.stride(0) != 1:  # the kernel indexes it as a plain array
        raise ValueError(f"{name} must be contiguous, got stride {cu.stride(0)}")
    if validate:
        vals = cu.cpu()
        if int(vals[0]) != 0:
            raise ValueError(f"{name} must start at 0, got {int(vals[0])}")
        if bool((vals[1:] < vals[:-1]).any()):
            raise ValueError(f"{name} must be non-decreasing, got {vals.tolist()[:16]}")
        if int(vals[-1]) > total:
            raise ValueError(f"{name} ends at {int(vals[-1])}, past the {total} packed rows")
    return cu.shape[0] - 1


def check_sm_scale(sm_scale, d: int) -> float:
    if sm_scale is None:
        return 1.0 / math.sqrt(d)
    scale = positive_float("sm_scale", sm_scale)
    fp32_factor("sm_scale", scale * math.log2(math.e), "sm_scale x log2(e)")
    fp32_factor("sm_scale", 1.0 / scale, "1 / sm_scale")
    return scale


def check_out(out, like: torch.Tensor, shape: tuple) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    tensor("out", out)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    same_kind("q", like, "out", out)
    if out.numel() and out.stride(-1) != 1:
        raise ValueError(f"out must be contiguous in its last dim, got strides {out.stride()}")
    return out


def check_num_splits(num_splits) -> None:
    if num_splits is None:
        return
    if isinstance(num_splits, bool) or not isinstance(num_splits, int):
        raise TypeError(f"num_splits must be an int, got {type(num_splits).__name__}")
    if not 1 <= num_splits <= MAX_NUM_SPLITS:
        raise ValueError(f"num_splits must be in [1, {MAX_NUM_SPLITS}] (the splits are a "
                         f"CUDA grid axis), got {num_splits}")


COMPILE_VALIDATE = ("validate=True reads lengths, tables and indices on the host (a host-device "
                    "sync), which torch.compile cannot put in a graph: pass validate=False "
                    "inside a compiled region (and check the inputs outside it, e.g. with "
                    "one eager call)")


def compile_guard(validate: bool) -> None:
    """validate=True reads tensor values on the host (a device sync), which torch.compile
    cannot trace into its graph. Say so with an explicit graph break: without fullgraph
    the checks then run eagerly behind it (correct, with a break); with fullgraph=True it
    is Dynamo's Unsupported error carrying this message (not a data-dependent error deep
    inside Dynamo)."""
    if validate and torch.compiler.is_compiling():
        torch._dynamo.graph_break(msg=COMPILE_VALIDATE)


# ------------------------------------------------------------------ decode family, one path


def decode_query(q) -> tuple[torch.Tensor, tuple]:
    """q [B, Hq, D] or [B, Hq, 1, D] -> (a [B, Hq, D] view, the output shape)."""
    tensor("q", q)
    if q.dim() == 4:
        if q.shape[2] != 1:
            raise ValueError(f"q must be [B, Hq, D] or [B, Hq, 1, D] (one query token), "
                             f"got shape {tuple(q.shape)}")
        q3 = q[:, :, 0]
    elif q.dim() == 3:
        q3 = q
    else:
        raise ValueError(f"q must have rank 3 [B, Hq, D] or 4 [B, Hq, 1, D], got shape "
                         f"{tuple(q.shape)}")
    float_input("q", q)
    on_kernel_device("q", q)
    head_dim(q.shape[-1])
    return q3, tuple(q.shape)


def _kv_pair(q3, names: tuple[str, str], k, v, layout: str) -> None:
    """A K/V pair of rank 4, contiguous head dim, on q's device, one shape, one dtype:
    q's, or fp8 (e4m3fn / e5m2) when q is fp16 or bf16."""
    for name, t in zip(names, (k, v), strict=True):
        tensor(name, t, 4, layout)
    if k.dtype in FP8_DTYPES:
        if q3.dtype not in (torch.float16, torch.bfloat16):
            raise ValueError(f"{names[0]} is {k.dtype}: fp8 caches need q in float16 or "
                             f"bfloat16 (the dtype they are converted to), got q {q3.dtype}")
        for name, t in zip(names, (k, v), strict=True):
            same_kind(names[0], k, name, t)
            if t.device != q3.device:
                raise ValueError(f"{name} must be on {q3.device} like q, got {t.device}")
            if t.numel() and t.stride(-1) != 1:
                raise ValueError(f"{name} must be contiguous in its last (head) dim, got "
                                 f"strides {t.stride()}")
    else:
        for name, t in zip(names, (k, v), strict=True):
            if t.dtype in FP8_DTYPES:  # v fp8, k not: name the mix
                raise ValueError(f"{name} is {t.dtype} but {names[0]} is {k.dtype}: K and V "
                                 f"caches must share one dtype")
            if t.dtype.is_floating_point and t.dtype.itemsize == 1:  # e.g. float8_e4m3fnuz
                raise ValueError(f"{name} must be float16, bfloat16 or float32, or an fp8 "
                                 f"cache in float8_e4m3fn or float8_e5m2, got {t.dtype}")
            float_input(name, t)
            same_kind("q", q3, name, t)
    if k.shape != v.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{tuple(k.shape)} and {tuple(v.shape)}")


def dense_cache(q3, k, v) -> None:
    _kv_pair(q3, ("k", "v"), k, v, "[B, Hkv, N, D]")
    if k.shape[0] != q3.shape[0]:
        raise ValueError(f"k must have batch {q3.shape[0]} like q, got {tuple(k.shape)}")
    if k.shape[3] != q3.shape[2]:
        raise ValueError(f"k must have head dim {q3.shape[2]} like q, got {k.shape[3]}")
    gqa(q3.shape[1], k.shape[1])


def paged_cache(q3, k_cache, v_cache, block_table, seq_lens, validate: bool,
                batch: int | None = None) -> None:
    """Caches [num_pages, P, Hkv, D]; block_table int32 [B, max_pages]; seq_lens int32 [B]
    (B: q3's batch unless given). With validate, lengths fit the table row and every
    *used* table entry is a page id."""
    _kv_pair(q3, ("k_cache", "v_cache"), k_cache, v_cache, "[num_pages, page_size, Hkv, D]")
    num_pages, page_size, num_kv_heads, d = k_cache.shape
    if d != q3.shape[2]:
        raise ValueError(f"k_cache must have head dim {q3.shape[2]} like q, got {d}")
    if page_size < 1:
        raise ValueError(f"page_size (k_cache.shape[1]) must be >= 1, got {page_size}")
    gqa(q3.shape[1], num_kv_heads)
    batch = q3.shape[0] if batch is None else batch
    tensor("block_table", block_table)
    if block_table.dtype != torch.int32:
        raise ValueError(f"block_table must be int32, got {block_table.dtype}")
    if block_table.dim() != 2 or block_table.shape[0] != batch:
        raise ValueError(f"block_table must have shape ({batch}, max_pages), got "
                         f"{tuple(block_table.shape)}")
    if block_table.device != q3.device:
        raise ValueError(f"block_table must be on {q3.device} like q, got {block_table.device}")
    if block_table.shape[1] > 1 and block_table.stride(1) != 1:  # rows are read as arrays
        raise ValueError(f"block_table must be contiguous along its pages, got strides "
                         f"{block_table.stride()}")
    max_pages = block_table.shape[1]
    check_lengths("seq_lens", seq_lens, batch, max_pages * page_size, q3.device, validate)
    if validate and batch and max_pages:
        used = torch.arange(max_pages, device=q3.device)[None, :] \
            < ((seq_lens.long() + page_size - 1) // page_size)[:, None]
        bad = used & ((block_table < 0) | (block_table >= num_pages))
        if bool(bad.any()):
            b, j = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"block_table[{b}, {j}] = {int(block_table[b, j])} is used by "
                             f"sequence {b} but is not a page id in [0, {num_pages})")


def kv_scales(k, k_scale, v_scale, num_kv_heads: int, device, validate: bool) -> None:
    """fp8 dequantisation scales (real = stored x scale): both or neither, only with fp8
    caches; each a float32 tensor on q's device of shape [] / [1] (per tensor) or [Hkv]
    (per KV head); with validate, finite and > 0."""
    if k_scale is None and v_scale is None:
        return
    if k_scale is None or v_scale is None:
        given, missing = ("k_scale", "v_scale") if v_scale is None else ("v_scale", "k_scale")
        raise ValueError(f"{given} given without {missing}: pass both scales or neither "
                         f"(neither: scale 1)")
    if k.dtype not in FP8_DTYPES:
        raise ValueError(f"k_scale and v_scale dequantise fp8 caches (float8_e4m3fn, "
                         f"float8_e5m2); the caches here are {k.dtype}")
    for name, t in (("k_scale", k_scale), ("v_scale", v_scale)):
        tensor(name, t)
        if t.dtype != torch.float32:
            raise ValueError(f"{name} must be float32, got {t.dtype}")
        if t.device != device:
            raise ValueError(f"{name} must be on {device} like q, got {t.device}")
        if not (t.dim() == 0 or (t.dim() == 1 and t.shape[0] in (1, num_kv_heads))):
            raise ValueError(f"{name} must have shape (), (1,) (one scale) or "
                             f"({num_kv_heads},) (one per KV head), got {tuple(t.shape)}")
        if validate:
            bad = ~(torch.isfinite(t) & (t > 0))
            if bool(bad.any()):
                raise ValueError(f"{name} must be finite and > 0, got "
                                 f"{t.reshape(-1)[bad.reshape(-1)][0].item()}")


def indices(idx, q3, num_kv_heads: int, seq_lens, n_ctx: int, validate: bool) -> None:
    """int32 [B, H_idx, K], H_idx in {Hkv, Hq}; with validate every entry in
    [-1, seq_len) (the length, or n_ctx without lengths; -1 = unused)."""
    batch, num_q_heads = q3.shape[:2]
    tensor("indices", idx)
    if idx.dtype != torch.int32:
        raise ValueError(f"indices must be int32, got {idx.dtype}")
    if idx.dim() != 3 or idx.shape[0] != batch:
        raise ValueError(f"indices must have shape ({batch}, H_idx, K), got "
                         f"{tuple(idx.shape)}")
    if idx.shape[1] not in (num_kv_heads, num_q_heads):
        raise ValueError(f"indices.shape[1] (H_idx) must be Hkv={num_kv_heads} or "
                         f"Hq={num_q_heads}, got {idx.shape[1]}")
    if idx.device != q3.device:
        raise ValueError(f"indices must be on {q3.device} like q, got {idx.device}")
    if validate and idx.numel():
        limit = (seq_lens.long() if seq_lens is not None
                 else torch.full((batch,), n_ctx, device=q3.device)).view(-1, 1, 1)
        bad = (idx < -1) | (idx >= limit)
        if bool(bad.any()):
            b, h, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"indices[{b}, {h}, {i}] = {int(idx[b, h, i])} is outside "
                             f"[-1, {int(limit[b])}) (the sequence length; -1 = unused)")


def decode_call(q, k, v, *, block_table=None, seq_lens=None, idx=None, num_splits=None,
                sm_scale=None, k_scale=None, v_scale=None, out=None,
                validate: bool = True) -> tuple[torch.Tensor, float]:
    """Every check of a decode-family call (dense or paged cache, with or without index
    rows), in one place and in one order: q, the cache (and table, and lengths), the split
    count, the indices, sm_scale, the fp8 scales, out=. Returns (out, allocated when not
    given; sm_scale)."""
    compile_guard(validate)
    q3, out_shape = decode_query(q)
    if block_table is None:
        dense_cache(q3, k, v)
        num_kv_heads, n_ctx = k.shape[1], k.shape[2]
        check_num_splits(num_splits)
        if seq_lens is not None:
            check_lengths("seq_lens", seq_lens, q3.shape[0], n_ctx, q3.device, validate)
    else:
        paged_cache(q3, k, v, block_table, seq_lens, validate)
        num_kv_heads, n_ctx = k.shape[2], 0
        check_num_splits(num_splits)
    if idx is not None:
        indices(idx, q3, num_kv_heads, seq_lens, n_ctx, validate)
    scale = check_sm_scale(sm_scale, q3.shape[2])
    kv_scales(k, k_scale, v_scale, num_kv_heads, q3.device, validate)
    return check_out(out, q3, out_shape), scale


# ------------------------------------------------------------------ prefill family


def prefill_call(q, k, v, *, seq_lens, kv_seq_lens, sm_scale, out, validate: bool):
    """Every check of a padded-batch prefill call. Returns (out, sm_scale, kv_seq_lens:
    the key lengths, seq_lens when not given)."""
    compile_guard(validate)
    check_qkv(q, k, v, rank=4, layout="[B, H, N, D]")
    batch, _, n_q, d = q.shape
    n_k = k.shape[2]
    if k.shape[0] != batch:
        raise ValueError(f"k must have batch {batch} like q, got k.shape={tuple(k.shape)}")
    if seq_lens is None and kv_seq_lens is not None:
        raise ValueError("kv_seq_lens needs seq_lens (the query lengths) as well")
    if seq_lens is not None:
        check_lengths("seq_lens", seq_lens, batch, n_q, q.device, validate)
        if kv_seq_lens is None:  # self-attention: the key lengths are the query lengths
            check_lengths("seq_lens (also the key lengths, kv_seq_lens not given)",
                          seq_lens, batch, n_k, q.device, validate)
            kv_seq_lens = seq_lens
        else:
            check_lengths("kv_seq_lens", kv_seq_lens, batch, n_k, q.device, validate)
    scale = check_sm_scale(sm_scale, d)
    return check_out(out, q, tuple(q.shape)), scale, kv_seq_lens


def prefill_varlen_call(q, k, v, *, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                        sm_scale, out, validate: bool):
    """Every check of a packed var-len prefill call. Returns (out, sm_scale, cu_seqlens_k:
    cu_seqlens_q when not given, max_q: the grid's query length, the longest query length
    when validate reads it anyway, else max_seqlen_q, at most the packed rows)."""
    compile_guard(validate)
    check_qkv(q, k, v, rank=3, layout="[T, H, D]")
    total_q, _, d = q.shape
    if cu_seqlens_k is None:
        cu_seqlens_k = cu_seqlens_q
    batch = check_cu_seqlens("cu_seqlens_q", cu_seqlens_q, total_q, q.device, validate)
    batch_k = check_cu_seqlens("cu_seqlens_k", cu_seqlens_k, k.shape[0], q.device, validate)
    if batch_k != batch:
        raise ValueError(f"cu_seqlens_k must have {batch + 1} entries like cu_seqlens_q, "
                         f"got {batch_k + 1}")
    for name, value in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if value is None and name == "max_seqlen_k":
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    max_q = min(max_seqlen_q, total_q)  # the grid's query length
    if validate:
        longest = int((cu_seqlens_q[1:] - cu_seqlens_q[:-1]).max()) if batch else 0
        max_q = min(max_q, longest)  # known here at no extra cost: no tiles past the longest
        if longest > max_seqlen_q:
            raise ValueError(f"max_seqlen_q={max_seqlen_q} is smaller than the longest "
                             f"query sequence ({longest})")
        if max_seqlen_k is not None and batch:
            longest_k = int((cu_seqlens_k[1:] - cu_seqlens_k[:-1]).max())
            if longest_k > max_seqlen_k:
                raise ValueError(f"max_seqlen_k={max_seqlen_k} is smaller than the longest "
                                 f"key sequence ({longest_k})")
    scale = check_sm_scale(sm_scale, d)
    return check_out(out, q, tuple(q.shape)), scale, cu_seqlens_k, max_q


# ------------------------------------------------------------------ paged prefill


def max_seqlen(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def paged_prefill_call(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, *,
                       max_seqlen_q, num_splits, sm_scale, out, validate: bool,
                       k_scale=None, v_scale=None):
    """Every check of a paged prefill call: packed q [Tq, Hq, D], the paged cache (as
    paged decode's), cu_seqlens_q, and with validate every sequence's new tokens within
    its context (q_len_b <= seq_lens[b]) and within max_seqlen_q. Returns (out, sm_scale,
    max_q: the grid's query length, the longest one when validate reads it anyway)."""
    compile_guard(validate)
    tensor("q", q, 3, "[Tq, Hq, D]")
    float_input("q", q)
    on_kernel_device("q", q)
    head_dim(q.shape[2])
    total_q = q.shape[0]
    batch = check_cu_seqlens("cu_seqlens_q", cu_seqlens_q, total_q, q.device, validate)
    paged_cache(q, k_cache, v_cache, block_table, seq_lens, validate, batch=batch)
    check_num_splits(num_splits)
    max_q = min(max_seqlen("max_seqlen_q", max_seqlen_q), total_q)
    if validate and batch:
        q_lens = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).cpu()
        longest = int(q_lens.max())
        if longest > max_seqlen_q:
            raise ValueError(f"max_seqlen_q={max_seqlen_q} is smaller than the longest "
                             f"query sequence ({longest})")
        over = (q_lens > seq_lens.cpu()).nonzero()
        if over.numel():
            b = int(over[0])
            raise ValueError(f"sequence {b} has {int(q_lens[b])} new tokens (cu_seqlens_q) "
                             f"but a context of seq_lens[{b}] = {int(seq_lens[b])}: "
                             f"seq_lens counts the new tokens too, so it must be >= the "
                             f"query length")
        max_q = min(max_q, longest)
    scale = check_sm_scale(sm_scale, q.shape[2])
    kv_scales(k_cache, k_scale, v_scale, k_cache.shape[2], q.device, validate)
    return check_out(out, q, tuple(q.shape)), scale, max_q


# ------------------------------------------------------------------ variants (kernels/mods.py)


def _head_vector(name: str, t, num_q_heads: int, device, validate: bool, allow_neg_inf: bool):
    tensor(name, t)
    if t.dtype != torch.float32:
        raise ValueError(f"{name} must be float32, got {t.dtype}")
    if tuple(t.shape) != (num_q_heads,):
        raise ValueError(f"{name} must have shape ({num_q_heads},) (one value per query "
                         f"head), got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} must be on {device} like q, got {t.device}")
    if validate and t.numel():
        bad = torch.isnan(t) | (t == float("inf"))
        if not allow_neg_inf:
            bad |= t == float("-inf")
        if bool(bad.any()):
            allowed = "finite or -inf" if allow_neg_inf else "finite"
            raise ValueError(f"{name} must be {allowed}, got {name}[{int(bad.nonzero()[0])}] "
                             f"= {t[bad][0].item()}")


def score_mods(q, *, window=None, softcap=None, sinks=None, alibi_slopes=None,
               validate: bool = True) -> ScoreMods:
    """The variant options of any call (kernels/mods.py), after q's own checks: window a
    (left, right) pair of ints, each >= 0 or -1 (unbounded); softcap a finite float > 0;
    sinks and alibi_slopes float32 [Hq] on q's device (with validate: sinks finite or
    -inf, slopes finite). Hq is q.shape[1] in every layout ([B, Hq, ...], packed
    [T, Hq, D])."""
    num_q_heads = q.shape[1]
    left = right = -1
    if window is not None:
        if (not isinstance(window, (tuple, list)) or len(window) != 2
                or any(isinstance(w, bool) or not isinstance(w, int) for w in window)):
            raise TypeError(f"window must be a (left, right) pair of ints (-1: unbounded), "
                            f"got {window!r}")
        for side, w in zip(("left", "right"), window, strict=True):
            if w < -1:
                raise ValueError(f"window's {side} side must be >= 0, or -1 for unbounded, "
                                 f"got {w}")
        # a side past any int32 position bounds nothing: clamped, so that the kernels'
        # int32 arithmetic on it cannot overflow (2**31 - 1 gave wrong results unclamped)
        left, right = (min(w, INT32_MAX) for w in window)
    cap = 0.0
    if softcap is not None:
        cap = positive_float("softcap", softcap, " (None: no soft-cap)")
    if sinks is not None:
        _head_vector("sinks", sinks, num_q_heads, q.device, validate, allow_neg_inf=True)
    if alibi_slopes is not None:
        _head_vector("alibi_slopes", alibi_slopes, num_q_heads, q.device, validate,
                     allow_neg_inf=False)
    return ScoreMods(left, right, cap, sinks, alibi_slopes)
