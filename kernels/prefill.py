"""Prefill attention: causal or not, fixed, padded var-len and packed var-len, any GQA.

Algorithm (FlashAttention-2 forward): one program per (query tile of BLOCK_M rows,
batch x query head), launched heaviest causal tiles first (see
``_config.PREFILL_CHUNK_BYTES``: across all pairs when lengths vary and the call's K/V
fits in L2, else pair by pair; both orders on 3-D grids, ``_grid``). It streams key
tiles of BLOCK_N rows through the online softmax in ``_jit.online_softmax_step``, in one
software-pipelined loop over the key tiles:
tiles on the causal diagonal (or at the length's end) apply the score mask under a
branch on a scalar, so the tiles below the diagonal pay nothing for it and the diagonal
stays in the same pipeline (a separate masked loop cost 5-13%: benchmarks/NOTES.md, v7).
Tiles past the valid length or fully above the diagonal are never visited, and a query
tile past its sequence's length loads nothing, so the cost follows the valid lengths,
not the padded size. On Hopper, with 16-bit inputs and a layout TMA can address
(``_tma_ok``), q and the key tiles arrive through tensor descriptors (bulk copies into
shared memory, no address arithmetic). No key past the valid length is read: on the
fixed layout TMA returns zeros past the tensor's end; padded var-len loads the key tile
that crosses a length moved back to end at it; packed var-len loads that tile with
masked pointer loads.

On Hopper, long causal calls without lengths at head_dim 128 go to a second implementation,
kernels/prefill_sm90.py (Gluon: warp-specialised, softmax overlapped with the tensor
cores, which this Triton kernel cannot do); see _sm90_gluon_ok for its scope.

Shapes:
  prefill:        q [B, Hq, Nq, D], k/v [B, Hkv, Nk, D], out like q, lse [B, Hq, Nq]
  prefill_varlen: q [Tq, Hq, D],    k/v [Tk, Hkv, D],    out like q, lse [Hq, Tq]
Causal masks are aligned bottom-right on the valid lengths (query i of Lq sees key j
iff j <= i + Lk - Lq), the FlashAttention convention.

Variants (kernels/mods.py; each behind a constexpr, so a call without one compiles none
of it): a sliding window visits only the key tiles that reach some row's window (the
cost follows the window, not the context) and masks the tiles on its edges under the
same scalar branch; soft-capping and ALiBi rewrite every tile's raw scores before the
mask (``_jit.modded_scores``); a sink adds its head's logit to each row's denominator
once, before the final division (``_jit.add_sink``). The Gluon kernel takes sinks and a
window (kernels/prefill_sm90.py); soft-capping and ALiBi run here.

Host side, one path for both public functions (kernels/api.py): the arguments are
checked once (``_validate.prefill_call`` / ``prefill_varlen_call``), described by a
``QKVLayout`` (4-D views, lengths, batch strides), turned into a ``PrefillPlan`` (Gluon or
Triton; config, chunking, tile order, load path, grid, constexprs; ``plan``) and launched.

References: Dao 2023 (FlashAttention-2); Triton tutorial 06-fused-attention.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import functools
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from . import _config, tuning
from ._config import GRID_LIMIT, GRID_YZ_LIMIT, cc_major, dummy, interpreting, prefill_config
from ._jit import (
    FLT_MAX_NEG,
    LOG2E_HOST,
    add_sink,
    aligned,
    dim_ok,
    finalize,
    in_window,
    mm,
    modded_scores,
    online_softmax_step,
    window_tiles,
)
from .mods import NONE, ScoreMods
from .tuning import Tuning


@triton.jit
def _attend_key_tiles(
    acc, m_i, l_i,
    q,  # [BLOCK_M, HEAD_DIM_PAD] input dtype
    k_base_ptr, v_base_ptr,  # K/V of this (batch, kv head), first valid row
    k_desc, v_desc,  # TMA descriptors of the 4-D K/V (USE_TMA), else unused
    desc_b, desc_h, desc_row0,  # this (batch, kv head)'s coordinates in them
    stride_k_seq, stride_v_seq,
    offs_m,  # [BLOCK_M] query row indices within the sequence
    offs_d,  # [HEAD_DIM_PAD]
    lo, hi,  # the key tiles [lo, hi) to visit
    mask_from,  # tiles from here on get the score mask (the causal diagonal, the length's
    #   end, a window's right edge)
    mask_below,  # HAS_WINDOW: so do tiles that start below this (the window's left edge)
    kv_len, causal_shift, head_dim, qk_scale,
    slopes,  # [BLOCK_M] fp32 ALiBi slopes of the rows (ALIBI)
    win_left, win_right, softcap_in, softcap_out, alibi_scale,  # kernels/mods.py
    BOUNDED: tl.constexpr,  # tiles may reach past kv_len: masked pointer loads, no TMA
    SHIFT_LAST: tl.constexpr,  # TMA with a length: a tile crossing kv_len loads its last
    #   BLOCK_N valid rows instead (see below)
    IS_CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    SOFTCAP: tl.constexpr,
    ALIBI: tl.constexpr,
    EVEN_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP32: tl.constexpr,
    USE_TMA: tl.constexpr,  # the loads come through the tensor-memory accelerator
    STAGES: tl.constexpr,  # software-pipelining depth of this loop (None: the launch's)
):
    tl.static_assert(not SHIFT_LAST or (USE_TMA and not BOUNDED))  # pointers start at start_n
    offs_n0 = tl.arange(0, BLOCK_N)
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)
    for start_n in tl.range(lo, hi, BLOCK_N, num_stages=STAGES):
        start_n = tl.multiple_of(start_n, BLOCK_N)
        if SHIFT_LAST:
            # A tile that crosses kv_len is moved back to end at it: rows [kv_len - BLOCK_N,
            # kv_len), so no key past the length is read (rows before the tensor's start,
            # kv_len < BLOCK_N, arrive from TMA as zeros). Its keys before start_n were
            # seen by the previous tile: the mask below drops them. Other tiles stay.
            first_n = tl.minimum(start_n, kv_len - BLOCK_N)
        else:
            first_n = start_n
        offs_n = first_n + offs_n0
        # 64-bit tile start, 32-bit offsets inside the tile: start_n * stride can pass
        # 2**31 in a long sequence, BLOCK_N * stride cannot.
        k_tile = k_base_ptr + start_n.to(tl.int64) * stride_k_seq
        v_tile = v_base_ptr + start_n.to(tl.int64) * stride_v_seq
        k_ptrs = k_tile + offs_n0[None, :] * stride_k_seq + offs_d[:, None]  # [D, N]
        v_ptrs = v_tile + offs_n0[:, None] * stride_v_seq + offs_d[None, :]  # [N, D]
        if USE_TMA and not BOUNDED:
            # One bulk copy per tile, no address arithmetic. Rows past the tensor's end
            # arrive as zeros (TMA bounds every dimension); their scores are masked below.
            row = desc_row0 + first_n
            kt = tl.trans(
                k_desc.load([desc_b, desc_h, row, 0]).reshape(BLOCK_N, offs_d.shape[0]))
            v = v_desc.load([desc_b, desc_h, row, 0]).reshape(BLOCK_N, offs_d.shape[0])
        elif BOUNDED:
            n_ok = offs_n < kv_len
            kt = tl.load(k_ptrs, mask=n_ok[None, :] & d_ok[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        else:  # d_ok is a constant with EVEN_D: the mask folds away, the loads stay vectors
            kt = tl.load(k_ptrs, mask=d_ok[:, None], other=0.0)
            v = tl.load(v_ptrs, mask=d_ok[None, :], other=0.0)
        s = mm(q, kt, tl.zeros([q.shape[0], BLOCK_N], dtype=tl.float32), FP32)
        # s: [BLOCK_M, BLOCK_N] fp32 raw scores; soft-cap and ALiBi before the mask.
        s = modded_scores(s, offs_m + causal_shift, offs_n, slopes, softcap_in, softcap_out,
                          alibi_scale, SOFTCAP, ALIBI)
        # The mask is a branch on a scalar, so the tiles below the diagonal (and inside
        # every row's window) pay nothing for it and the edge tiles stay in the same
        # software pipeline as the rest.
        if HAS_WINDOW:
            need_mask = (start_n >= mask_from) | (start_n < mask_below)
        else:
            need_mask = start_n >= mask_from
        if need_mask:
            ok = offs_n[None, :] < kv_len
            if SHIFT_LAST:
                ok = ok & (offs_n[None, :] >= start_n)
            if IS_CAUSAL:
                ok = ok & (offs_n[None, :] <= offs_m[:, None] + causal_shift)
            if HAS_WINDOW:
                ok = ok & in_window(offs_m + causal_shift, offs_n, win_left, win_right)
            s = tl.where(ok, s, float("-inf"))
        # m_i starts at -FLT_MAX, not -inf: a row whose keys so far are all masked keeps a
        # finite max, so the step needs no -inf guard (exp2(-inf - m) = 0, alpha = 1).
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, v, qk_scale,
                                            MAY_BE_EMPTY=False, FP32=FP32)
    return acc, m_i, l_i


# Sizes and strides vary from call to call: specialising on each (divisible by 16, equal
# to 1) compiles a new variant per shape. Strides get one flag instead (ALIGNED).
_STRIDES = [f"stride_{t}_{a}" for t in ("q", "k", "v", "o", "lse")
            for a in ("batch", "head", "seq")]


@triton.jit(do_not_specialize=["n_q", "n_k", "num_m_tiles", "bh_per_chunk", "num_q_heads",
                               "group_size", "head_dim", "win_left", "win_right",
                               "write_lse", "has_sinks", "tiles_from_end", "grid_order",
                               *_STRIDES])
def _prefill_kernel(
    q_ptr,  # [B, Hq, Nq, D] (padded) or [Tq, Hq, D] (varlen, batch stride 0)
    k_ptr, v_ptr,  # [B, Hkv, Nk, D] or [Tk, Hkv, D]
    q_desc, k_desc, v_desc,  # TMA descriptors of q/k/v as 4-D [B, H, N, D] views (USE_TMA)
    out_ptr,  # like q
    lse_ptr,  # [B, Hq, Nq] or [Hq, Tq] fp32 (unused unless write_lse)
    q_lens_ptr, kv_lens_ptr,  # int32 [B] lengths (HAS_LENS) or cu_seqlens [B+1] (IS_VARLEN)
    sinks_ptr, alibi_ptr,  # [Hq] fp32 (has_sinks, ALIBI)
    n_q, n_k,  # padded lengths (fixed/padded layouts)
    num_m_tiles,  # query tiles per (batch, head): cdiv(max_q, BLOCK_M)
    bh_per_chunk,  # (batch, head) pairs per chunk of the program order
    num_q_heads, group_size, head_dim, qk_scale,
    win_left, win_right, softcap_in, softcap_out, alibi_scale,  # kernels/mods.py
    stride_q_batch, stride_q_head, stride_q_seq,
    stride_k_batch, stride_k_head, stride_k_seq,
    stride_v_batch, stride_v_head, stride_v_seq,
    stride_o_batch, stride_o_head, stride_o_seq,
    stride_lse_batch, stride_lse_head, stride_lse_seq,
    # Runtime switches, never specialised (one branch outside the key loop each; as
    # constexprs they multiplied the variants to compile: see decode.py _RUNTIME_FLAGS):
    write_lse,  # 0/1: store the LSE
    has_sinks,  # 0/1: a sink logit per query head (kernels/mods.py)
    tiles_from_end,  # 0/1: query tiles ordered from each length's end (see below)
    grid_order,  # 0: one grid axis; 1, 2: 3-D grids (see below and _grid)
    IS_CAUSAL: tl.constexpr,
    HAS_LENS: tl.constexpr,
    IS_VARLEN: tl.constexpr,
    HAS_WINDOW: tl.constexpr,  # the variants that change the key loop (kernels/mods.py)
    SOFTCAP: tl.constexpr,
    ALIBI: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP32: tl.constexpr,
    ALIGNED: tl.constexpr,  # every q/k/v/out stride is a multiple of 16 elements
    USE_TMA: tl.constexpr,
):
    stride_q_batch = aligned(stride_q_batch, ALIGNED)
    stride_q_head = aligned(stride_q_head, ALIGNED)
    stride_q_seq = aligned(stride_q_seq, ALIGNED)
    stride_k_batch = aligned(stride_k_batch, ALIGNED)
    stride_k_head = aligned(stride_k_head, ALIGNED)
    stride_k_seq = aligned(stride_k_seq, ALIGNED)
    stride_v_batch = aligned(stride_v_batch, ALIGNED)
    stride_v_head = aligned(stride_v_head, ALIGNED)
    stride_v_seq = aligned(stride_v_seq, ALIGNED)
    stride_o_batch = aligned(stride_o_batch, ALIGNED)
    stride_o_head = aligned(stride_o_head, ALIGNED)
    stride_o_seq = aligned(stride_o_seq, ALIGNED)
    # Program order: the (batch, head) pairs in chunks of bh_per_chunk (the host's choice:
    # _config.prefill_chunk_pairs); inside a chunk, level by level, the heaviest causal
    # tiles (last rows) of every pair first, then the next lighter ones: the long tiles
    # start early and the short ones fill the tail. The query tile of a level is chosen
    # below, once the sequence's length is known. The two common chunkings take a 3-D
    # grid whose x-fastest launch order is that order (grid_order, see _grid), so the
    # coordinates need no runtime division before the first load; others, one axis.
    if grid_order == 1:  # one chunk of all pairs: grid (Hq, B, levels)
        off_h = tl.program_id(0)
        off_b = tl.program_id(1)
        level = tl.program_id(2)
    elif grid_order == 2:  # one pair per chunk: grid (levels, Hq, B)
        level = tl.program_id(0)
        off_h = tl.program_id(1)
        off_b = tl.program_id(2)
    else:
        num_bh = tl.num_programs(0) // num_m_tiles
        pid = tl.program_id(0)
        first_bh = (pid // (bh_per_chunk * num_m_tiles)) * bh_per_chunk
        chunk_bh = tl.minimum(bh_per_chunk, num_bh - first_bh)  # the last chunk may be short
        r = pid - first_bh * num_m_tiles
        level = r // chunk_bh
        pid_bh = first_bh + r % chunk_bh
        off_b = pid_bh // num_q_heads
        off_h = pid_bh % num_q_heads
    off_kvh = off_h // group_size

    if IS_VARLEN:
        q_start = tl.load(q_lens_ptr + off_b)
        q_len = tl.load(q_lens_ptr + off_b + 1) - q_start
        k_start = tl.load(kv_lens_ptr + off_b)
        kv_len = tl.load(kv_lens_ptr + off_b + 1) - k_start
        store_rows = q_len  # rows past q_len belong to the next sequence
    else:
        q_start = 0
        k_start = 0
        if HAS_LENS:  # clamped: with validate=False a bad length must not read past N
            q_len = tl.minimum(tl.maximum(tl.load(q_lens_ptr + off_b), 0), n_q)
            kv_len = tl.minimum(tl.maximum(tl.load(kv_lens_ptr + off_b), 0), n_k)
        else:
            q_len = n_q
            kv_len = n_k
        store_rows = n_q  # padding rows are written, as zeros

    if tiles_from_end != 0:
        # Levels count from each sequence's own last tile: level t < n_valid is valid tile
        # n_valid - 1 - t, level t >= n_valid the tile t past the length (padding or
        # nothing): a pair's tiles past its length run after its valid ones (the host's
        # choice, _config.prefill_tiles_from_end). n_valid <= num_m_tiles keeps this a
        # bijection on [0, num_m_tiles) even when a length exceeds max_seqlen_q.
        n_valid = tl.minimum(tl.cdiv(tl.maximum(q_len, 0), BLOCK_M), num_m_tiles)
        tile = tl.where(level < n_valid, n_valid - 1 - level, level)
    else:  # levels count from the longest length (num_m_tiles tiles)
        tile = num_m_tiles - 1 - level
    start_m = tile * BLOCK_M
    q_base = q_ptr + off_b.to(tl.int64) * stride_q_batch + off_h.to(tl.int64) * stride_q_head \
        + q_start.to(tl.int64) * stride_q_seq
    k_base = k_ptr + off_b.to(tl.int64) * stride_k_batch + off_kvh.to(tl.int64) * stride_k_head \
        + k_start.to(tl.int64) * stride_k_seq
    v_base = v_ptr + off_b.to(tl.int64) * stride_v_batch + off_kvh.to(tl.int64) * stride_v_head \
        + k_start.to(tl.int64) * stride_v_seq
    o_base = out_ptr + off_b.to(tl.int64) * stride_o_batch + off_h.to(tl.int64) * stride_o_head \
        + q_start.to(tl.int64) * stride_o_seq

    rows = tl.arange(0, BLOCK_M)  # within the tile; start_m is added in 64 bits
    offs_m = start_m + rows
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    row_ok = offs_m < q_len
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)  # constant with EVEN_D: 16-byte stores
    q_base += start_m.to(tl.int64) * stride_q_seq
    o_base += start_m.to(tl.int64) * stride_o_seq
    m_i = tl.full([BLOCK_M], FLT_MAX_NEG, dtype=tl.float32)  # finite: see _attend_key_tiles
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM_PAD], dtype=tl.float32)
    if start_m < q_len:  # else: padding rows (or none) only: no load, zeros are written
        desc_b = 0 if IS_VARLEN else off_b  # varlen: one packed batch, rows from q/k_start
        if USE_TMA:
            # A whole box: rows past q_len hold padding or the next packed sequence (or TMA's
            # zeros past the tensor). Rows never mix in attention, and those rows' outputs
            # are masked below, so they cannot reach a valid row. In shared memory, q feeds
            # the tensor cores without taking registers.
            q = q_desc.load([desc_b, off_h, q_start + start_m, 0]).reshape(BLOCK_M, HEAD_DIM_PAD)
        else:
            q = tl.load(q_base + rows[:, None] * stride_q_seq + offs_d[None, :],
                        mask=row_ok[:, None] & d_ok[None, :], other=0.0)  # [BLOCK_M, HEAD_DIM_PAD]

        # Key tiles [lo, hi) in one loop (lo = 0 without a window); from mask_from on,
        # scores are masked (the causal diagonal; keys past kv_len; a window's edges, see
        # below). Loads: [lo, whole_hi) are whole tiles of valid keys; no key past the
        # length may be read, so the one tile that crosses kv_len,
        # [whole_hi, hi), takes masked pointer loads in a second loop, except with TMA on
        # the [B, H, N, D] layout: without lengths (kv_len == the tensor's N) TMA reads
        # zeros past N, and with lengths the tile is moved back to end at kv_len
        # (SHIFT_LAST). Packed var-len keeps the second loop: moved back, the tile of a
        # sequence shorter than BLOCK_N would read the previous sequence's rows.
        causal_shift = kv_len - q_len
        if IS_CAUSAL:
            hi = tl.minimum(kv_len, start_m + BLOCK_M + causal_shift)
            # every row of the tile sees key j iff j <= start_m + causal_shift
            mask_from = tl.maximum(start_m + causal_shift + 1, 0) // BLOCK_N * BLOCK_N
            mask_from = tl.minimum(mask_from, kv_len // BLOCK_N * BLOCK_N)
        else:
            hi = kv_len
            mask_from = kv_len // BLOCK_N * BLOCK_N
        hi = tl.maximum(hi, 0)
        if HAS_WINDOW:  # lo stays a multiple of BLOCK_N: whole tiles and SHIFT_LAST hold
            lo, hi, mask_from, mask_below = window_tiles(
                start_m + causal_shift, tl.minimum(start_m + BLOCK_M, q_len) - 1 + causal_shift,
                hi, mask_from, win_left, win_right, BLOCK_N)
        else:
            lo = 0
            mask_below = 0
        SHIFT_LAST: tl.constexpr = USE_TMA and HAS_LENS
        ONE_LOOP: tl.constexpr = (USE_TMA and not HAS_LENS and not IS_VARLEN) or SHIFT_LAST
        if ONE_LOOP:
            whole_hi = hi
        else:
            # (>= lo under a window: lo <= first_al <= kv_len - 1, the first row is valid)
            whole_hi = tl.minimum(hi, kv_len // BLOCK_N * BLOCK_N)
        if ALIBI:  # one query head per program: one slope for every row
            slopes = tl.zeros([BLOCK_M], dtype=tl.float32) + tl.load(alibi_ptr + off_h)
        else:
            slopes = tl.zeros([BLOCK_M], dtype=tl.float32)

        acc, m_i, l_i = _attend_key_tiles(
            acc, m_i, l_i, q, k_base, v_base, k_desc, v_desc, desc_b, off_kvh, k_start,
            stride_k_seq, stride_v_seq, offs_m, offs_d,
            lo, whole_hi, mask_from, mask_below, kv_len, causal_shift, head_dim, qk_scale,
            slopes, win_left, win_right, softcap_in, softcap_out, alibi_scale,
            BOUNDED=False, SHIFT_LAST=SHIFT_LAST, IS_CAUSAL=IS_CAUSAL, HAS_WINDOW=HAS_WINDOW,
            SOFTCAP=SOFTCAP, ALIBI=ALIBI, EVEN_D=EVEN_D, BLOCK_N=BLOCK_N, FP32=FP32,
            USE_TMA=USE_TMA, STAGES=None)
        if not ONE_LOOP:  # at most one tile: no pipelining, no buffers for it
            acc, m_i, l_i = _attend_key_tiles(
                acc, m_i, l_i, q, k_base, v_base, k_desc, v_desc, desc_b, off_kvh, k_start,
                stride_k_seq, stride_v_seq, offs_m, offs_d,
                whole_hi, hi, whole_hi, mask_below, kv_len, causal_shift, head_dim, qk_scale,
                slopes, win_left, win_right, softcap_in, softcap_out, alibi_scale,
                BOUNDED=True, SHIFT_LAST=False, IS_CAUSAL=IS_CAUSAL, HAS_WINDOW=HAS_WINDOW,
                SOFTCAP=SOFTCAP, ALIBI=ALIBI, EVEN_D=EVEN_D, BLOCK_N=BLOCK_N, FP32=FP32,
                USE_TMA=USE_TMA, STAGES=1)
        if has_sinks != 0:  # the head's sink logit, once per row (a row with no key: LSE sink)
            sink = tl.zeros([BLOCK_M], dtype=tl.float32) + tl.load(sinks_ptr + off_h)
            acc, m_i, l_i = add_sink(acc, m_i, l_i, sink)

    out, lse = finalize(acc, m_i, l_i)
    out = tl.where(row_ok[:, None], out, 0.0)
    store_ok = offs_m < store_rows
    tl.store(o_base + rows[:, None] * stride_o_seq + offs_d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=store_ok[:, None] & d_ok[None, :])
    if write_lse != 0:
        lse = tl.where(row_ok, lse, float("-inf"))
        lse_base = lse_ptr + off_b.to(tl.int64) * stride_lse_batch \
            + off_h.to(tl.int64) * stride_lse_head \
            + (q_start + start_m).to(tl.int64) * stride_lse_seq
        tl.store(lse_base + rows * stride_lse_seq, lse, mask=store_ok)


@functools.cache
def _sm90_module():
    """kernels.prefill_sm90 (Gluon), or None where this Triton lacks the names it uses."""
    try:
        from . import prefill_sm90
    except (ImportError, AttributeError):
        return None
    return prefill_sm90


def _gluon_outside(mods: ScoreMods) -> bool:
    """A variant outside the Gluon kernel's scope: ALiBi (sinks, a window and a soft-cap
    are in it, kernels/mods.py)."""
    return mods.alibi_slopes is not None


def _sm90_gluon_ok(q, k, v, out, *, causal: bool, has_lens: bool, variants: bool = False,
                   mode: bool | None = None) -> bool:
    """Whether prefill runs the Gluon kernel (prefill_sm90.py): a Hopper GPU (not the
    interpreter), the default rule or a forced mode (tuning.prefill_gluon), and a call
    inside its scope: causal, no lengths, no variant outside it (`variants`:
    _gluon_outside),
    fp16/bf16, head_dim 128, Nq == Nk a multiple of 128, contiguous 16-byte-aligned
    q/k/v/out, row coordinates within int32."""
    if mode is False or interpreting() or not _config.nvidia_hopper(q.device):
        return False
    if variants:
        return False
    n_q, n_k = q.shape[2], k.shape[2]
    if not (causal and not has_lens and q.dtype in (torch.float16, torch.bfloat16)
            and q.shape[3] == 128 and n_q == n_k and n_q % 128 == 0 and q.numel() > 0
            and k.numel() > 0):
        return False
    if mode is None and n_q < _config.LONG_PREFILL:
        return False
    if not all(t.is_contiguous() and t.data_ptr() % 16 == 0 for t in (q, k, v, out)):
        return False
    if q.numel() // 128 >= 2**31:  # TMA coordinates are 32-bit
        return False
    return _sm90_module() is not None


def _tma_ok(q, k, v, even_d: bool, is_aligned: bool) -> bool:
    """Q and the whole key tiles go through TMA when the hardware can address K/V as boxes:
    a Hopper-or-later GPU (or the interpreter), fp16/bf16 (fp32 runs without tensor
    cores; it gains nothing), a power-of-two head dim (a box is a power-of-two tile),
    16-byte aligned base and strides (is_aligned: every stride a multiple of 16
    elements), no empty tensor (a tensor map needs every dimension >= 1) and no
    broadcast (stride 0) dimension. Other layouts keep the pointer path."""
    if not (even_d and is_aligned and q.element_size() == 2):
        return False
    for t in (q, k, v):
        if t.numel() == 0 or t.data_ptr() % 16 != 0:
            return False
        if any(st == 0 and n > 1 for st, n in zip(t.stride(), t.shape, strict=True)):
            return False
    return interpreting() or _is_hopper_or_later(k.device)


def _is_hopper_or_later(device: torch.device) -> bool:
    return cc_major(device) >= 9


def _has_228kb_smem(device: torch.device) -> bool:
    """Data-centre Hopper and Blackwell (sm_90, sm_100): 228 KB of shared memory per SM."""
    return cc_major(device) in (9, 10)




def _grid(num_m_tiles: int, num_batch: int, num_q_heads: int, bh_per_chunk: int,
          three_d: bool = True):
    """The launch grid and the kernel's grid_order. CUDA launches a grid's programs x
    fastest, then y, then z (not a documented promise; the one-axis order relies on the
    same launch-order behaviour), so (Hq, B, levels) is one chunk of all pairs, level by
    level, and (levels, Hq, B) is pair after pair: the kernel reads its coordinates from
    the program ids, with no runtime division before its first load (three_d:
    tuning.prefill_3d_grid). Other chunkings, or sizes past the y/z limit, take one axis."""
    num_bh = num_batch * num_q_heads
    if three_d:
        if bh_per_chunk >= num_bh and max(num_batch, num_m_tiles) <= GRID_YZ_LIMIT:
            return (num_q_heads, num_batch, num_m_tiles), 1
        if bh_per_chunk == 1 and max(num_q_heads, num_batch) <= GRID_YZ_LIMIT:
            return (num_m_tiles, num_q_heads, num_batch), 2
    return (num_m_tiles * num_bh,), 0


# ------------------------------------------------------------------------------ host side
# validated arguments (_validate.prefill_call / prefill_varlen_call) -> QKVLayout ->
# PrefillPlan -> launch


@dataclass(frozen=True)
class QKVLayout:
    """q/k/v/out as 4-D [B, H, N, D] views. Padded batch: the tensors themselves, with
    optional lengths (q_lens, kv_lens: int32 [B]). Packed var-len: [1, H, T, D] views of
    [T, H, D], sequence b at rows cu_seqlens[b] (q_lens, kv_lens: the cu_seqlens), so the
    kernel's batch strides are 0."""
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor
    lse: torch.Tensor | None  # [B, Hq, Nq] (padded) or [1, Hq, Tq] (var-len) fp32
    q_lens: torch.Tensor | None
    kv_lens: torch.Tensor | None
    num_batch: int
    varlen: bool

    @property
    def has_lens(self) -> bool:  # seq_lens (padded) or cu_seqlens (varlen)
        return self.q_lens is not None

    def strides(self) -> dict:
        bs = (lambda t: 0) if self.varlen else (lambda t: t.stride(0))
        q, k, v, out = self.q, self.k, self.v, self.out
        return dict(
            stride_q_batch=bs(q), stride_q_head=q.stride(1), stride_q_seq=q.stride(2),
            stride_k_batch=bs(k), stride_k_head=k.stride(1), stride_k_seq=k.stride(2),
            stride_v_batch=bs(v), stride_v_head=v.stride(1), stride_v_seq=v.stride(2),
            stride_o_batch=bs(out), stride_o_head=out.stride(1), stride_o_seq=out.stride(2))

    def lse_strides(self) -> dict:
        lse = self.lse
        st = (lse.stride(0), lse.stride(1), lse.stride(2)) if lse is not None else (0, 0, 0)
        return dict(stride_lse_batch=0 if self.varlen else st[0], stride_lse_head=st[1],
                    stride_lse_seq=st[2])


@dataclass(frozen=True)
class PrefillPlan:
    """Everything a launch needs beyond the layout: decided once per call."""
    gluon: bool  # the Gluon Hopper kernel (prefill_sm90.launch) instead of _prefill_kernel
    sinks: torch.Tensor | None = None  # the Gluon kernel's sinks (fp32 [Hq])
    window_left: int = -1  # and its window's left side (-1: none)
    softcap: tuple = (0.0, 0.0)  # and its soft-cap's (softcap_in, softcap_out)
    grid: tuple = ()
    args: dict | None = None  # _prefill_kernel's runtime arguments
    consts: dict | None = None  # its constexprs
    launch_options: dict | None = None


def plan(lay: QKVLayout, *, causal: bool, max_q: int, sm_scale: float,
         tune: Tuning, mods: ScoreMods = NONE) -> PrefillPlan | None:
    """None: nothing to launch (no query tile or no (batch, head) pair)."""
    q, k, v, out = lay.q, lay.k, lay.v, lay.out
    if not lay.varlen and _sm90_gluon_ok(q, k, v, out, causal=causal, has_lens=lay.has_lens,
                                         variants=_gluon_outside(mods),
                                         mode=tune.prefill_gluon):
        # causal: the window's right side bounds nothing
        return PrefillPlan(gluon=True, sinks=mods.sinks, window_left=mods.window_left,
                           softcap=mods.softcap_factors(sm_scale))
    num_q_heads, head_dim = q.shape[1], q.shape[3]
    group_size = num_q_heads // k.shape[1]
    head_dim_pad = max(16, triton.next_power_of_2(head_dim))
    cfg = prefill_config(head_dim_pad, q.dtype, causal, max_q,
                         hopper=_has_228kb_smem(q.device), forced=tune.prefill_config)
    num_m_tiles, num_bh = triton.cdiv(max_q, cfg.block_m), lay.num_batch * num_q_heads
    if num_m_tiles == 0 or num_bh == 0:
        return None
    # A bound of the one-axis grid that _grid can fall back to; the 3-D grids keep it too.
    if num_m_tiles * num_bh > GRID_LIMIT:
        raise ValueError(f"this call needs {num_m_tiles} query tiles x {num_bh} (batch, head) "
                         f"pairs = {num_m_tiles * num_bh} programs, more than one CUDA grid "
                         f"holds ({GRID_LIMIT}); split the batch (longest query length used: "
                         f"{max_q})")
    bh_per_chunk = _config.prefill_chunk_pairs(2 * k.numel() * k.element_size(), num_bh,
                                               lengths_vary=lay.has_lens,
                                               forced=tune.prefill_chunk_pairs)
    tiles_from_end = _config.prefill_tiles_from_end(lay.has_lens, bh_per_chunk,
                                                    forced=tune.prefill_tiles_from_end)
    strides = lay.strides()
    is_aligned = all(st % 16 == 0 for st in strides.values())
    padded = lay.has_lens and not lay.varlen
    want_tma = tune.tma
    if want_tma is None:  # the tuned default: padded var-len has its own switch
        want_tma = tune.padded_tma if padded else True
    use_tma = want_tma and _tma_ok(q, k, v, head_dim == head_dim_pad, is_aligned)
    launch_options = cfg.launch_options()
    if use_tma:
        box = [1, 1, cfg.block_n, head_dim_pad]
        q_desc = TensorDescriptor.from_tensor(q, [1, 1, cfg.block_m, head_dim_pad])
        k_desc, v_desc = TensorDescriptor.from_tensor(k, box), TensorDescriptor.from_tensor(v, box)
    else:
        q_desc, k_desc, v_desc = q, k, v
        # the register cap was measured on the TMA path; pointer loads need more
        launch_options.pop("maxnreg", None)
    grid, grid_order = _grid(num_m_tiles, lay.num_batch, num_q_heads, bh_per_chunk,
                             three_d=tune.prefill_3d_grid)
    args = dict(
        q_ptr=q, k_ptr=k, v_ptr=v, q_desc=q_desc, k_desc=k_desc, v_desc=v_desc,
        out_ptr=out, lse_ptr=lay.lse if lay.lse is not None else dummy(q.device, torch.float32),
        q_lens_ptr=lay.q_lens if lay.has_lens else dummy(q.device, torch.int32),
        kv_lens_ptr=lay.kv_lens if lay.has_lens else dummy(q.device, torch.int32),
        n_q=q.shape[2], n_k=k.shape[2], num_m_tiles=num_m_tiles, bh_per_chunk=bh_per_chunk,
        num_q_heads=num_q_heads, group_size=group_size,
        head_dim=head_dim, qk_scale=sm_scale * LOG2E_HOST,
        **mods.kernel_args(sm_scale, q.device), **strides, **lay.lse_strides(),
        write_lse=int(lay.lse is not None), tiles_from_end=int(tiles_from_end),
        grid_order=grid_order)
    consts = dict(
        IS_CAUSAL=causal, HAS_LENS=padded, IS_VARLEN=lay.varlen, **mods.consts(q.dtype),
        HEAD_DIM_PAD=head_dim_pad, EVEN_D=head_dim == head_dim_pad, BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n, FP32=q.dtype == torch.float32, ALIGNED=is_aligned,
        USE_TMA=use_tma)
    return PrefillPlan(gluon=False, grid=grid, args=args, consts=consts,
                       launch_options=launch_options)


def launch(p: PrefillPlan, lay: QKVLayout, sm_scale: float) -> None:
    if p.gluon:
        _sm90_module().launch(lay.q, lay.k, lay.v, lay.out, lay.lse, sm_scale, p.sinks,
                              p.window_left, p.softcap)
    else:
        _prefill_kernel[p.grid](**p.args, **p.consts, **p.launch_options)


def attend(lay: QKVLayout, *, causal: bool, max_q: int, sm_scale: float,
           mods: ScoreMods = NONE) -> None:
    """Plan and launch one validated call (the family's one path)."""
    p = plan(lay, causal=causal, max_q=max_q, sm_scale=sm_scale, tune=tuning.current(),
             mods=mods)
    if p is not None:
        launch(p, lay, sm_scale)


# The custom-op implementations (kernels/ops.py), one per public function: validated
# arguments, out filled in place; return the LSE, or an empty tensor without return_lse.
def prefill_impl(q, k, v, seq_lens, kv_seq_lens, causal, sm_scale, window_left, window_right,
                 softcap, sinks, alibi_slopes, return_lse, out):
    batch, num_q_heads, n_q, _ = q.shape
    lse = torch.empty((batch, num_q_heads, n_q), device=q.device, dtype=torch.float32) \
        if return_lse else None
    attend(QKVLayout(q, k, v, out, lse, seq_lens, kv_seq_lens, num_batch=batch, varlen=False),
           causal=causal, max_q=n_q, sm_scale=sm_scale,
           mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))
    return lse if return_lse else q.new_empty(0, dtype=torch.float32)


def prefill_varlen_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_q, causal, sm_scale,
                        window_left, window_right, softcap, sinks, alibi_slopes, return_lse,
                        out):
    total_q, num_q_heads, _ = q.shape
    lse = torch.empty((num_q_heads, total_q), device=q.device, dtype=torch.float32) \
        if return_lse else None

    def as4d(t):  # [T, H, D] -> [1, H, T, D] view; batch offsets come from cu_seqlens
        return t.unsqueeze(0).transpose(1, 2)

    attend(QKVLayout(as4d(q), as4d(k), as4d(v), as4d(out),
                     lse.unsqueeze(0) if lse is not None else None, cu_seqlens_q,
                     cu_seqlens_k, num_batch=cu_seqlens_q.shape[0] - 1, varlen=True),
           causal=causal, max_q=max_q, sm_scale=sm_scale,
           mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))
    return lse if return_lse else q.new_empty(0, dtype=torch.float32)
