"""Paged prefill: new query tokens of many sequences against their whole context in a
paged KV cache, in one launch (chunked prefill, prefix caching, speculative verification,
mixed batches of decode rows and prefill chunks).

Semantics (kernels/api.py, ``paged_prefill``): packed q [Tq, Hq, D], sequence b's q_len_b
new tokens at rows cu_seqlens_q[b]:cu_seqlens_q[b+1]; its context of seq_lens[b] tokens
(the new ones last) in caches [num_pages, P, Hkv, D] through block_table[b]; query i
attends key j iff j <= seq_lens[b] - q_len_b + i (causal, bottom-right) or j < seq_lens[b].
The variants of kernels/mods.py as in prefill: window (only the key tiles that reach some
row's window are visited), soft-cap, ALiBi and sinks, each row with its own head's slope
and sink (a tile packs several heads); with split-KV the sink is in split 0's partial.

Algorithm: one program per (query tile, block of query heads of one KV head, split).
The M side of a tile packs q_per_tile new tokens x heads_per_program query heads (row r
is token r // heads_per_program, head r % heads_per_program), so each gathered K/V row
is read once for the whole query group and every token of the tile: a decode row (q_len 1)
is the decode kernel's tile (the query group), and a long chunk fills BLOCK_M rows with
tokens. Query tiles of all sequences share grid axis 0: sequence b's tiles start at
cu_seqlens_q[b] // q_per_tile + b (strictly increasing in b, and the number of tiles
fits between consecutive starts), so a program finds its sequence by a binary search over
cu_seqlens_q, and the grid needs no host knowledge of the lengths: Tq // q_per_tile + B
programs bound the tiles of any batch (the few beyond a sequence's last tile exit). When
every sequence fits one tile (max_seqlen_q <= q_per_tile: decode rows, speculative
verification) program b is sequence b and the search is skipped (ONE_TILE).

Key tiles of BLOCK_N context positions arrive by page lookup (``_jit.page_lookup``) and
pointer loads; whole tiles below the length take unmasked loads, the one tile crossing
it masked ones, so no cache row past seq_lens[b] and no table entry past its last page is
read. Scores are masked from the first tile that reaches the causal diagonal (a branch on
a scalar, as in prefill; also a window's edge tiles). With num_splits > 1 each split
covers a whole-tile slice of the tile's key range and writes a normalised partial row and
its LSE; decode's ``_combine_kernel`` merges them (flash-decoding), skipping rows past
cu_seqlens_q[-1].

Host side: ``_validate.paged_prefill_call`` -> ``plan`` -> ``PagedPrefillPlan`` ->
``launch``; ``paged_prefill_impl`` is the custom op's implementation (kernels/ops.py).

References: Dao 2023 (FlashAttention-2); Dao et al. 2023 (Flash-Decoding); Kwon et al.
2023 (PagedAttention).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import tuning
from ._config import (
    GRID_LIMIT,
    GRID_YZ_LIMIT,
    cc_major,
    dummy,
    interpreting,
    paged_prefill_config,
    pdl,
)
from ._jit import (
    FLT_MAX_NEG,
    LOG2E_HOST,
    add_sink,
    aligned,
    dim_ok,
    finalize,
    head_values,
    in_window,
    kv_scale,
    kv_values,
    mm,
    modded_scores,
    online_softmax_step,
    page_lookup,
    signal_dependents,
    window_tiles,
)
from .decode import (
    MIN_KEYS_PER_SPLIT,
    _combine_kernel,
    default_num_splits,
    merge_tile,
    resident_programs,
    scale_args,
)
from .mods import NONE, ScoreMods
from .tuning import Tuning

MAX_SPLITS = 64  # the default split count's cap (as paged decode's)

_STRIDES = ["stride_q_tok", "stride_q_head", "stride_k_page", "stride_k_slot",
            "stride_k_head", "stride_v_page", "stride_v_slot", "stride_v_head",
            "stride_table_batch", "stride_o_tok", "stride_o_head", "stride_lse_head",
            "stride_lse_tok"]


@triton.jit
def _key_tiles(
    acc, m_i, l_i,
    q,  # [BLOCK_M, HEAD_DIM_PAD]
    k_base, v_base,  # this KV head's column of the caches
    table_row,  # block_table[b, :]
    page_size, stride_k_page, stride_k_slot, stride_v_page, stride_v_slot,
    q_tok,  # [BLOCK_M] each row's query position among the sequence's new tokens
    offs_d, d_ok,
    lo, hi,  # key tiles [lo, hi) to visit
    mask_from,  # tiles from here on get the score mask
    mask_below,  # HAS_WINDOW: so do tiles that start below this (the window's left edge)
    seq_len, causal_shift, qk_scale,
    slopes,  # [BLOCK_M] fp32 ALiBi slopes of the rows' heads (ALIBI)
    win_left, win_right, softcap_in, softcap_out, alibi_scale,  # kernels/mods.py
    BOUNDED: tl.constexpr,  # the tile may cross seq_len: masked loads (no row past it)
    IS_CAUSAL: tl.constexpr,
    HAS_WINDOW: tl.constexpr,
    SOFTCAP: tl.constexpr,
    ALIBI: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP32: tl.constexpr,
):
    offs_n0 = tl.arange(0, BLOCK_N)
    # The page lookup runs one tile ahead: the table entries of tile i + 1 are loaded
    # while tile i computes, so no K/V load waits on a table load in its own iteration
    # (in the same iteration the pipeliner waits for every copy in flight, each tile).
    page, slot = page_lookup(table_row, lo + offs_n0, (lo + offs_n0) < seq_len, page_size)
    for start_n in range(lo, hi, BLOCK_N):
        offs_n = start_n + offs_n0
        n_ok = offs_n < seq_len
        k_off = page * stride_k_page + slot * stride_k_slot
        v_off = page * stride_v_page + slot * stride_v_slot
        nxt = offs_n + BLOCK_N
        # Every key the next tile loads gets its page: the whole tile up to seq_len (an
        # unbounded tile loads all of its rows; keys past `hi`, e.g. past a tile's causal
        # end, are loaded and then masked, so they too must read their own page, never
        # the masked lookup's page 0).
        page, slot = page_lookup(table_row, nxt, nxt < seq_len, page_size)
        if BOUNDED:
            kv_mask = n_ok[:, None] & d_ok[None, :]
        else:  # d_ok is a constant with EVEN_D: the loads stay 16-byte vectors
            kv_mask = d_ok[None, :]
        k = kv_values(tl.load(k_base + k_off[:, None] + offs_d[None, :], mask=kv_mask,
                              other=0.0), q.dtype)
        v = kv_values(tl.load(v_base + v_off[:, None] + offs_d[None, :], mask=kv_mask,
                              other=0.0), q.dtype)
        s = mm(q, tl.trans(k), tl.zeros([q.shape[0], BLOCK_N], dtype=tl.float32), FP32)
        s = modded_scores(s, q_tok + causal_shift, offs_n, slopes, softcap_in, softcap_out,
                          alibi_scale, SOFTCAP, ALIBI)  # before the mask
        if HAS_WINDOW:
            need_mask = (start_n >= mask_from) | (start_n < mask_below)
        else:
            need_mask = start_n >= mask_from
        if need_mask:  # the causal diagonal, the tile crossing seq_len, a window's edges
            ok = n_ok[None, :]
            if IS_CAUSAL:
                ok = ok & (offs_n[None, :] <= q_tok[:, None] + causal_shift)
            if HAS_WINDOW:
                ok = ok & in_window(q_tok + causal_shift, offs_n, win_left, win_right)
            s = tl.where(ok, s, float("-inf"))
        # m_i starts at -FLT_MAX: rows whose keys so far are all masked need no guard.
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, v, qk_scale,
                                            MAY_BE_EMPTY=False, FP32=FP32)
    return acc, m_i, l_i


@triton.jit(do_not_specialize=["num_batch", "search_steps", "n_ctx", "num_splits",
                               "page_size", "q_per_tile", "heads_per_program",
                               "head_blocks", "group_size", "num_q_heads", "head_dim",
                               "win_left", "win_right", "write_lse", "has_sinks", "pdl",
                               *_STRIDES])
def _paged_prefill_kernel(
    q_ptr,  # [Tq, Hq, D]
    k_ptr, v_ptr,  # [num_pages, P, Hkv, D]
    block_table_ptr,  # [B, max_pages] int32
    cu_q_ptr,  # [B + 1] int32
    seq_lens_ptr,  # [B] int32, the context including the new tokens
    k_scale_ptr, v_scale_ptr,  # fp8 caches: [Hkv] fp32, or one value (stride 0) (HAS_SCALES)
    sinks_ptr, alibi_ptr,  # [Hq] fp32 (has_sinks, ALIBI)
    out_ptr,  # [Tq, Hq, D]                    (num_splits == 1)
    lse_ptr,  # [Hq, Tq] fp32                  (num_splits == 1 and write_lse)
    part_out_ptr,  # [Tq * Hq, num_splits, D] fp32 (num_splits > 1)
    part_lse_ptr,  # [Tq * Hq, num_splits] fp32    (num_splits > 1)
    num_batch,
    search_steps,  # ceil(log2(B)): the binary search's steps
    n_ctx,  # max_pages * P: a length past it is clamped (validate=False)
    num_splits, page_size,
    q_per_tile,  # new tokens per tile: BLOCK_M // heads_per_program
    heads_per_program,  # query heads per program, all of one KV head
    head_blocks,  # programs per KV head on grid axis 1: group_size // heads_per_program
    group_size, num_q_heads, head_dim, qk_scale,
    win_left, win_right, softcap_in, softcap_out, alibi_scale,  # kernels/mods.py
    stride_q_tok, stride_q_head,
    stride_k_page, stride_k_slot, stride_k_head,
    stride_v_page, stride_v_slot, stride_v_head,
    stride_table_batch,
    stride_o_tok, stride_o_head,
    stride_lse_head, stride_lse_tok,
    stride_k_scale, stride_v_scale,
    write_lse, has_sinks, pdl,  # runtime 0/1 switches (decode.py _RUNTIME_FLAGS)
    IS_CAUSAL: tl.constexpr,
    HAS_SCALES: tl.constexpr,  # fp8 caches with k_scale / v_scale (as decode's)
    HAS_WINDOW: tl.constexpr,  # the variants that change the key loop (kernels/mods.py)
    SOFTCAP: tl.constexpr,
    ALIBI: tl.constexpr,
    ONE_TILE: tl.constexpr,  # every sequence fits one tile: program b is sequence b
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,
    FP32: tl.constexpr,
    ALIGNED: tl.constexpr,  # every q/k/v/out stride is a multiple of 16 elements
    PDL_OK: tl.constexpr,  # the device has griddepcontrol (sm_90+): one value per device
):
    """One (query tile, query heads, split) program; num_splits > 1 writes fp32 partials
    for decode's _combine_kernel instead of the output and LSE."""
    signal_dependents(pdl, PDL_OK)
    stride_q_tok = aligned(stride_q_tok, ALIGNED)
    stride_q_head = aligned(stride_q_head, ALIGNED)
    stride_k_page = aligned(stride_k_page, ALIGNED)
    stride_k_slot = aligned(stride_k_slot, ALIGNED)
    stride_k_head = aligned(stride_k_head, ALIGNED)
    stride_v_page = aligned(stride_v_page, ALIGNED)
    stride_v_slot = aligned(stride_v_slot, ALIGNED)
    stride_v_head = aligned(stride_v_head, ALIGNED)
    stride_o_tok = aligned(stride_o_tok, ALIGNED)
    stride_o_head = aligned(stride_o_head, ALIGNED)
    pid = tl.program_id(0)
    if ONE_TILE:
        off_b = pid
        tile = 0
    else:
        # The last sequence whose first tile, cu_q[b] // q_per_tile + b, is <= pid.
        off_b = 0
        size = num_batch
        for _ in range(search_steps):
            half = size // 2
            mid = off_b + half
            first = tl.load(cu_q_ptr + mid) // q_per_tile + mid
            off_b = tl.where(first <= pid, mid, off_b)
            size -= half
        local = pid - (tl.load(cu_q_ptr + off_b) // q_per_tile + off_b)
    head_prog = tl.program_id(1)
    off_kvh = head_prog // head_blocks
    first_head = off_kvh * group_size + (head_prog % head_blocks) * heads_per_program
    split = tl.program_id(2)

    q_start = tl.load(cu_q_ptr + off_b)
    q_len = tl.load(cu_q_ptr + off_b + 1) - q_start
    if not ONE_TILE:
        # Heaviest (causal: last) tile first: a sequence's tiles launch in that order, so
        # the light ones fill the tail of the grid. Past the last tile: no tile (t0 >= q_len).
        n_tiles = tl.cdiv(q_len, q_per_tile)
        tile = tl.where(local < n_tiles, n_tiles - 1 - local, local)
    t0 = tile * q_per_tile
    # clamped: with validate=False a bad length must not read past the table's capacity
    seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx)
    causal_shift = seq_len - q_len

    rows = tl.arange(0, BLOCK_M)
    q_tok = t0 + rows // heads_per_program  # [BLOCK_M] position among the new tokens
    head = first_head + rows % heads_per_program  # [BLOCK_M] query head
    row_ok = (rows < q_per_tile * heads_per_program) & (q_tok < q_len)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)
    tok = (q_start + q_tok).to(tl.int64)  # packed row of each query row

    m_i = tl.full([BLOCK_M], FLT_MAX_NEG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM_PAD], dtype=tl.float32)
    if t0 < q_len:  # else: a program past the sequence's last tile: nothing to do
        q = tl.load(q_ptr + tok[:, None] * stride_q_tok
                    + head[:, None].to(tl.int64) * stride_q_head + offs_d[None, :],
                    mask=row_ok[:, None] & d_ok[None, :], other=0.0)
        # The tile's keys: up to its last token's diagonal (causal) or the length.
        if IS_CAUSAL:
            hi = tl.minimum(t0 + q_per_tile, q_len) + causal_shift
            # every row sees key j iff j <= t0 + causal_shift (the tile's first token)
            mask_from = tl.maximum(t0 + causal_shift + 1, 0) // BLOCK_N * BLOCK_N
        else:
            hi = seq_len
            mask_from = seq_len
        hi = tl.maximum(hi, 0)
        if HAS_WINDOW:  # the tile's valid tokens sit at aligned q_tok + causal_shift
            lo, hi, mask_from, mask_below = window_tiles(
                t0 + causal_shift, tl.minimum(t0 + q_per_tile, q_len) - 1 + causal_shift,
                hi, mask_from, win_left, win_right, BLOCK_N)
        else:
            lo = 0
            mask_below = 0
        if num_splits > 1:  # whole tiles of [lo, hi) per split: no tile crosses an edge
            per_split = tl.cdiv(tl.cdiv(hi - lo, num_splits), BLOCK_N) * BLOCK_N
            lo = lo + split * per_split
            hi = tl.minimum(lo + per_split, hi)
        whole = seq_len // BLOCK_N * BLOCK_N  # tiles below it hold valid rows only
        mask_from = tl.minimum(mask_from, whole)
        whole_hi = tl.maximum(tl.minimum(hi, whole), lo)
        table_row = block_table_ptr + off_b.to(tl.int64) * stride_table_batch
        k_sc = kv_scale(k_scale_ptr, off_kvh, stride_k_scale, HAS_SCALES)
        qk_scale = qk_scale * k_sc
        if HAS_SCALES:
            # fp8: the raw scores are q.k of the stored K, real / k_scale; the variants'
            # raw-unit constants (kernels/mods.py) take that factor too
            softcap_in = softcap_in * k_sc
            softcap_out = softcap_out / k_sc
            alibi_scale = alibi_scale / k_sc
        k_base = k_ptr + off_kvh.to(tl.int64) * stride_k_head
        v_base = v_ptr + off_kvh.to(tl.int64) * stride_v_head
        slopes = head_values(alibi_ptr, head, row_ok, ALIBI)  # each row's own head
        acc, m_i, l_i = _key_tiles(
            acc, m_i, l_i, q, k_base, v_base, table_row, page_size, stride_k_page,
            stride_k_slot, stride_v_page, stride_v_slot, q_tok, offs_d, d_ok,
            lo, whole_hi, mask_from, mask_below, seq_len, causal_shift, qk_scale,
            slopes, win_left, win_right, softcap_in, softcap_out, alibi_scale,
            BOUNDED=False, IS_CAUSAL=IS_CAUSAL, HAS_WINDOW=HAS_WINDOW, SOFTCAP=SOFTCAP,
            ALIBI=ALIBI, BLOCK_N=BLOCK_N, FP32=FP32)
        acc, m_i, l_i = _key_tiles(  # at most the one tile that crosses seq_len
            acc, m_i, l_i, q, k_base, v_base, table_row, page_size, stride_k_page,
            stride_k_slot, stride_v_page, stride_v_slot, q_tok, offs_d, d_ok,
            whole_hi, hi, whole_hi, mask_below, seq_len, causal_shift, qk_scale,
            slopes, win_left, win_right, softcap_in, softcap_out, alibi_scale,
            BOUNDED=True, IS_CAUSAL=IS_CAUSAL, HAS_WINDOW=HAS_WINDOW, SOFTCAP=SOFTCAP,
            ALIBI=ALIBI, BLOCK_N=BLOCK_N, FP32=FP32)
        if has_sinks != 0:  # once per row: in split 0's partial (the merge adds it once)
            sink = head_values(sinks_ptr, head, row_ok, True)
            acc, m_i, l_i = add_sink(acc, m_i, l_i, tl.where(split == 0, sink, float("-inf")))

        out, lse = finalize(acc, m_i, l_i)
        if HAS_SCALES:
            out = out * kv_scale(v_scale_ptr, off_kvh, stride_v_scale, HAS_SCALES)
        st_ok = row_ok[:, None] & d_ok[None, :]
        if num_splits == 1:
            tl.store(out_ptr + tok[:, None] * stride_o_tok
                     + head[:, None].to(tl.int64) * stride_o_head + offs_d[None, :],
                     out.to(out_ptr.dtype.element_ty), mask=st_ok)
            if write_lse != 0:
                tl.store(lse_ptr + head.to(tl.int64) * stride_lse_head + tok * stride_lse_tok,
                         lse, mask=row_ok)
        else:
            part = (tok * num_q_heads + head) * num_splits + split  # [BLOCK_M] partial rows
            row_len = HEAD_DIM_PAD if EVEN_D else head_dim
            tl.store(part_out_ptr + part[:, None] * row_len + offs_d[None, :], out, mask=st_ok)
            tl.store(part_lse_ptr + part, lse, mask=row_ok)


# ------------------------------------------------------------------------------ host side


def heads_per_program(group_size: int, block_m: int) -> int:
    """Query heads one program takes: the whole group when it fits the tile, else the
    largest divisor of the group that does (a program never spans two KV heads)."""
    return max(d for d in range(1, min(group_size, block_m) + 1) if group_size % d == 0)


@dataclass(frozen=True)
class PagedPrefillPlan:
    grid: tuple
    num_splits: int
    args: dict
    consts: dict
    launch_options: dict
    pdl: bool
    head_dim_pad: int


def plan(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, out, lse, *, max_q: int,
         causal: bool, sm_scale: float, num_splits: int | None, tune: Tuning,
         k_scale=None, v_scale=None, mods: ScoreMods = NONE) -> PagedPrefillPlan | None:
    """q/out [Tq, Hq, D]; lse [Hq, Tq] or None; fp8 caches' scales or None. None: nothing
    to launch."""
    total_q, num_q_heads, head_dim = q.shape
    num_batch = cu_seqlens_q.shape[0] - 1
    num_pages, page_size, num_kv_heads, _ = k_cache.shape
    group_size = num_q_heads // num_kv_heads
    if total_q == 0 or num_batch == 0 or max_q == 0:
        return None
    head_dim_pad = max(16, triton.next_power_of_2(head_dim))
    cfg = paged_prefill_config(head_dim_pad, q.dtype, max_q * group_size,
                               hopper=cc_major(q.device) in (9, 10),
                               forced=tune.paged_prefill_config)
    hp = heads_per_program(group_size, cfg.block_m)
    q_per_tile = cfg.block_m // hp
    one_tile = max_q <= q_per_tile
    num_tiles = num_batch if one_tile else total_q // q_per_tile + num_batch
    head_programs = num_kv_heads * (group_size // hp)
    if num_tiles > GRID_LIMIT or head_programs > GRID_YZ_LIMIT:
        raise ValueError(f"this call needs {num_tiles} query tiles x {head_programs} head "
                         f"programs, more than one CUDA grid holds; split the batch")
    n_ctx = block_table.shape[1] * page_size
    strides = dict(
        stride_q_tok=q.stride(0), stride_q_head=q.stride(1),
        stride_k_page=k_cache.stride(0), stride_k_slot=k_cache.stride(1),
        stride_k_head=k_cache.stride(2), stride_v_page=v_cache.stride(0),
        stride_v_slot=v_cache.stride(1), stride_v_head=v_cache.stride(2),
        stride_o_tok=out.stride(0), stride_o_head=out.stride(1))
    args = dict(
        q_ptr=q, k_ptr=k_cache, v_ptr=v_cache, block_table_ptr=block_table,
        cu_q_ptr=cu_seqlens_q, seq_lens_ptr=seq_lens, out_ptr=out,
        **scale_args(k_scale, v_scale, q.device),
        lse_ptr=lse if lse is not None else dummy(q.device, torch.float32),
        num_batch=num_batch,
        search_steps=math.ceil(math.log2(num_batch)) if num_batch > 1 else 0, n_ctx=n_ctx,
        page_size=page_size, q_per_tile=q_per_tile, heads_per_program=hp,
        head_blocks=group_size // hp, group_size=group_size, num_q_heads=num_q_heads,
        head_dim=head_dim, qk_scale=sm_scale * LOG2E_HOST,
        **mods.kernel_args(sm_scale, q.device), **strides,
        stride_table_batch=block_table.stride(0),
        stride_lse_head=lse.stride(0) if lse is not None else 0,
        stride_lse_tok=lse.stride(1) if lse is not None else 0,
        write_lse=int(lse is not None), pdl=0)
    consts = dict(
        IS_CAUSAL=causal, HAS_SCALES=k_scale is not None,
        **mods.consts(q.dtype), ONE_TILE=one_tile,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, HEAD_DIM_PAD=head_dim_pad,
        EVEN_D=head_dim == head_dim_pad, FP32=q.dtype == torch.float32,
        ALIGNED=all(st % 16 == 0 for st in strides.values()), PDL_OK=pdl(q.device))
    if num_splits is None:
        # Tiles of the batch, estimated without reading the lengths: one per sequence at
        # least, about Tq / q_per_tile in all.
        programs = max(num_batch, triton.cdiv(total_q, q_per_tile)) * head_programs
        if interpreting() or q.device.type != "cuda":
            resident, min_keys = _INTERPRETER_RESIDENT, _INTERPRETER_MIN_KEYS
        else:
            resident = resident_programs(q.device, args, consts, cfg.launch_options(),
                                         kernel=_paged_prefill_kernel)
            min_keys = max(MIN_KEYS_PER_SPLIT, cfg.block_n)
        # A tile's key range: the context, or under a window at most the window's width
        # plus the tile's tokens (and a tile's alignment).
        capacity = n_ctx
        if mods.window_left >= 0 and (causal or mods.window_right >= 0):
            capacity = min(capacity, mods.window_left + q_per_tile + cfg.block_n
                           + (0 if causal else mods.window_right))
        num_splits = default_num_splits(programs, capacity, resident, min_keys, MAX_SPLITS,
                                        block=cfg.block_n)
    use_pdl = num_splits > 1 and pdl(q.device, tune.pdl)
    return PagedPrefillPlan(
        grid=(num_tiles, head_programs, num_splits), num_splits=num_splits,
        args={**args, "pdl": int(use_pdl)}, consts=consts,
        launch_options=cfg.launch_options(), pdl=use_pdl, head_dim_pad=head_dim_pad)


# Off the GPU (interpreter): a small "wave" and short splits, so CPU-sized cases still
# exercise splitting (as decode's).
_INTERPRETER_RESIDENT, _INTERPRETER_MIN_KEYS = 16, 8


def launch(p: PagedPrefillPlan) -> None:
    """The split kernel, and with more than one split the merge (decode's)."""
    q, out, lse = p.args["q_ptr"], p.args["out_ptr"], p.args["lse_ptr"]
    total_q, num_q_heads, head_dim = q.shape
    split = p.num_splits > 1
    if split:
        part_out = torch.empty((total_q * num_q_heads, p.num_splits, head_dim),
                               device=q.device, dtype=torch.float32)
        part_lse = torch.empty((total_q * num_q_heads, p.num_splits), device=q.device,
                               dtype=torch.float32)
    else:
        part_out = part_lse = dummy(q.device, torch.float32)  # unused
    _paged_prefill_kernel[p.grid](
        **p.args, part_out_ptr=part_out, part_lse_ptr=part_lse, num_splits=p.num_splits,
        **p.consts, **p.launch_options)
    if split:
        cu = p.args["cu_q_ptr"]
        _combine_kernel[(total_q * num_q_heads,)](
            part_out_ptr=part_out, part_lse_ptr=part_lse, out_ptr=out, lse_ptr=lse,
            rows_end_ptr=cu[cu.shape[0] - 1:], num_splits=p.num_splits,
            num_q_heads=num_q_heads, head_dim=head_dim,
            stride_o_batch=out.stride(0), stride_o_head=out.stride(1),
            stride_lse_batch=p.args["stride_lse_tok"],
            stride_lse_head=p.args["stride_lse_head"],
            write_lse=p.args["write_lse"], has_rows_end=1,
            SPLITS_PAD=merge_tile(p.num_splits), HEAD_DIM_PAD=p.head_dim_pad,
            EVEN_D=p.consts["EVEN_D"], ALIGNED=p.consts["ALIGNED"], PDL=p.pdl,
            num_warps=4 if p.head_dim_pad >= 128 else 2,
            **({"launch_pdl": True} if p.pdl else {}))


def paged_prefill_impl(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, max_q,
                       causal, num_splits, sm_scale, k_scale, v_scale, window_left,
                       window_right, softcap, sinks, alibi_slopes, return_lse, out):
    """The custom op's implementation (kernels/ops.py), on validated arguments: out filled
    in place; returns the LSE [Hq, Tq], or an empty tensor without return_lse."""
    total_q, num_q_heads, _ = q.shape
    lse = torch.empty((num_q_heads, total_q), device=q.device, dtype=torch.float32) \
        if return_lse else None
    p = plan(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, out, lse, max_q=max_q,
             causal=causal, sm_scale=sm_scale, num_splits=num_splits, tune=tuning.current(),
             k_scale=k_scale, v_scale=v_scale,
             mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))
    if p is not None:
        launch(p)
    return lse if return_lse else q.new_empty(0, dtype=torch.float32)
