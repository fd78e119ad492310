"""Decode attention (one query token per sequence) over a dense or paged KV cache,
over every token or over a given list of token positions (sparse), with split-KV.

Algorithm: one program per (batch, group of query heads, split). The group's query
heads are the M side of the tile, so each K/V row is read once for the whole group
(the seeds re-read it for every query head). The program walks its split of the
sequence's "key list" in tiles of BLOCK_N entries; a key-list entry is

  dense:   token position p                      -> k[b, kvh, p]
  paged:   token p at page table[b, p // P]      -> k_cache[page, p % P, kvh]
  sparse:  the position indices[b, h_idx, i]     -> either of the above (-1 skipped)

With more than one split, each split writes a normalised partial output and its LSE
(fp32) and ``_combine_kernel`` merges them (flash-decoding). Splits that see no key
write LSE -inf and weigh 0 in the merge. On sm_90+ the merge is a programmatic dependent
launch (``tuning.pdl``): it is scheduled while the split kernel runs and waits
(griddepcontrol.wait) for the split kernel's completion and memory before reading.

Sparse-token decode is the same kernel (flag HAS_INDICES): the key list of a program is
its row of ``indices`` instead of 0..seq_len, so the cost follows the number of selected
tokens, never the context length. With one index row per KV head (H_idx == Hkv) the
whole query group shares each gathered K/V row; with one row per query head (H_idx ==
Hq) every query head walks its own list. Positions outside [0, seq_len) are skipped,
never read (validate=True rejects them first).

Host side, one path for the four public functions (kernels/api.py): the arguments are
checked once (``_validate.decode_call``), described by a ``KVLayout`` (dense / paged,
indexed or not, with its strides), turned into a ``DecodePlan`` (config, split count,
grid, constexprs, launch flags; ``plan``) and launched (``launch``). ``attend`` is that
path; the custom ops of kernels/ops.py call it through the ``*_impl`` functions.

References: Dao et al., "Flash-Decoding for long-context inference" (2023); vLLM paged
attention.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_wait

from . import tuning
from ._config import decode_config, dummy, interpreting, pdl, programs_per_sm, sm_limits
from ._jit import (
    LOG2E_HOST,
    add_sink,
    aligned,
    dim_ok,
    finalize,
    head_values,
    kv_scale,
    kv_values,
    mm,
    modded_scores,
    online_softmax_step,
    page_lookup,
    signal_dependents,
)
from .mods import NONE, ScoreMods
from .tuning import Tuning

# Split-KV rule (benchmarks/NOTES.md, session 6). The split kernel is memory-bound; its
# programs run in waves of R = SMs x programs-per-SM (from the compiled kernel's registers
# and shared memory). With at most R (batch, head) programs, the splits make one wave as
# full as possible (R // programs splits); a second, partial wave costs more than it
# hides (H200, dense D128 fp16, R = 3 x 132 = 396: B32 N4096 1 split = 256 programs
# 135.4 us, 2 splits = 512 programs 153.8; B16 2 splits 78.2 vs 4 splits 88.9). With more
# programs than R, about MANY_WAVES waves (B64 N16384: 4 splits 966 us, 2 splits 997).
MANY_WAVES = 4
# A split covers at least max(MIN_KEYS_PER_SPLIT, BLOCK_N) key-list entries, so that its
# fixed cost (loading q, writing a partial row, the merge) stays small against its loads.
MIN_KEYS_PER_SPLIT = 32
# Upper bound on the default split count: the merge reads num_splits partial rows per head.
# A paged cache allows more (probe v12, H200, B1 Hq32 Hkv8 N65536 D128, page 16: paged
# 102.7 us at 32 splits, 84.5 at 64; dense 79.4 / 86.6: the paged kernel holds 4 programs
# per SM, the dense one 3).
MAX_SPLITS = 32
MAX_SPLITS_PAGED = 64
# Off the GPU (interpreter): a small "wave" and short splits, so CPU-sized cases still
# exercise splitting.
INTERPRETER_RESIDENT, INTERPRETER_MIN_KEYS = 16, 8


# Sizes and strides vary from call to call: specialising on each value would compile a
# variant per shape; the q/k/v/out strides get one flag instead (ALIGNED). The index
# row's stride stays specialised (it is 1, for vector loads of indices).
# Switches that cost a scalar branch outside the key loop (prologue, epilogue) are
# runtime 0/1 arguments, never specialised: as constexprs each doubled the variants to
# compile (issue 21: the GPU suite compiled ~1500 decode variants, most of them for these)
# and bought nothing measurable. What changes the key loop stays constexpr.
_RUNTIME_FLAGS = ["has_lens", "write_lse", "has_sinks", "pdl"]
_STRIDES = ["stride_q_batch", "stride_q_head", "stride_k_batch", "stride_k_seq",
            "stride_k_page", "stride_k_slot", "stride_k_head", "stride_v_batch",
            "stride_v_seq", "stride_v_page", "stride_v_slot", "stride_v_head",
            "stride_table_batch", "stride_idx_batch", "stride_idx_head", "stride_o_batch",
            "stride_o_head", "stride_lse_batch", "stride_lse_head"]


@triton.jit
def _row_len(head_dim, HEAD_DIM_PAD: tl.constexpr, EVEN_D: tl.constexpr):
    """A partial row's length (fp32 elements): the constexpr HEAD_DIM_PAD when it equals
    head_dim, so the compiler sees 16-byte aligned rows and vectorises their accesses."""
    if EVEN_D:
        return HEAD_DIM_PAD
    else:
        return head_dim


@triton.jit
def _key_offsets(start, offs_n0, hi, t_min, seq_len, idx_row, stride_idx_k, table_row,
                 page_size, stride_k_seq, stride_v_seq, stride_k_page, stride_k_slot,
                 stride_v_page, stride_v_slot, IS_PAGED: tl.constexpr,
                 HAS_INDICES: tl.constexpr):
    """Key-list entries [start, start + BLOCK_N) of a program: their token positions t,
    which of them are read (t_ok: inside the split, and for an index list a position in
    [t_min, seq_len), t_min > 0 under a window; -1 = an unused slot) and the K and V row
    offsets of their tokens."""
    pos = start + offs_n0  # [BLOCK_N] key-list entries
    pos_ok = pos < hi
    if HAS_INDICES:
        t = tl.load(idx_row + pos.to(tl.int64) * stride_idx_k, mask=pos_ok, other=-1)
        t_ok = pos_ok & (t >= t_min) & (t < seq_len)
    else:
        t = pos
        t_ok = pos_ok
    if IS_PAGED:
        page, slot = page_lookup(table_row, t, t_ok, page_size)
        k_off = page * stride_k_page + slot * stride_k_slot
        v_off = page * stride_v_page + slot * stride_v_slot
    else:
        k_off = t.to(tl.int64) * stride_k_seq
        v_off = t.to(tl.int64) * stride_v_seq
    return t, t_ok, k_off, v_off


@triton.jit(do_not_specialize=["n_ctx", "n_list", "num_splits", "page_size",
                               "num_head_programs", "heads_per_program", "group_size",
                               "head_dim", "win_left", "win_right", *_RUNTIME_FLAGS,
                               *_STRIDES])
def _decode_kernel(
    q_ptr,  # [B, Hq, D]
    k_ptr, v_ptr,  # dense: [B, Hkv, N, D]; paged: [num_pages, page_size, Hkv, D]
    block_table_ptr,  # [B, max_pages] int32 (IS_PAGED)
    seq_lens_ptr,  # [B] int32 (has_lens)
    indices_ptr,  # [B, H_idx, K] int32 (HAS_INDICES); H_idx = Hq // heads_per_program
    k_scale_ptr, v_scale_ptr,  # fp8 caches: [Hkv] fp32, or one value (stride 0) (HAS_SCALES)
    sinks_ptr, alibi_ptr,  # [Hq] fp32 (has_sinks, ALIBI)
    out_ptr,  # [B, Hq, D]            (num_splits == 1)
    lse_ptr,  # [B, Hq] fp32          (num_splits == 1 and write_lse)
    part_out_ptr,  # [B, Hq, num_splits, D] fp32 (num_splits > 1)
    part_lse_ptr,  # [B, Hq, num_splits] fp32    (num_splits > 1)
    n_ctx,  # dense: N, the length when there are no seq_lens
    n_list,  # sparse: K, the key-list length
    num_splits,  # split-KV count (grid axis 1)
    page_size,  # paged: tokens per page
    num_head_programs, heads_per_program, group_size, head_dim, qk_scale,
    win_left, win_right, softcap_in, softcap_out, alibi_scale,  # kernels/mods.py
    stride_q_batch, stride_q_head,
    stride_k_batch, stride_k_seq, stride_k_page, stride_k_slot, stride_k_head,
    stride_v_batch, stride_v_seq, stride_v_page, stride_v_slot, stride_v_head,
    stride_table_batch,
    stride_idx_batch, stride_idx_head, stride_idx_k,
    stride_o_batch, stride_o_head,
    stride_lse_batch, stride_lse_head,
    stride_k_scale, stride_v_scale,
    has_lens,  # seq_lens given (else every sequence holds n_ctx keys)
    write_lse,  # store the LSE (one split)
    has_sinks,  # a sink logit per query head (kernels/mods.py)
    pdl,  # the merge kernel is a programmatic dependent launch
    IS_PAGED: tl.constexpr,
    HAS_INDICES: tl.constexpr,
    HAS_SCALES: tl.constexpr,  # fp8 caches with k_scale / v_scale
    SOFTCAP: tl.constexpr,  # the variants that change the key loop (kernels/mods.py)
    ALIBI: tl.constexpr,
    BLOCK_H: tl.constexpr,  # >= heads_per_program, >= 16 for tl.dot
    BLOCK_N: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,  # head_dim == HEAD_DIM_PAD: no mask along D
    FP32: tl.constexpr,
    ALIGNED: tl.constexpr,  # every q/k/v/out stride is a multiple of 16 elements
    PDL_OK: tl.constexpr,  # the device has griddepcontrol (sm_90+): one value per device
):
    """One (sequence, group of query heads, split) program. num_splits > 1: writes fp32
    partials for _combine_kernel instead of the output and LSE. Without a window (or
    with its left side unbounded), win_left is n_ctx, which bounds nothing."""
    signal_dependents(pdl, PDL_OK)
    stride_q_batch = aligned(stride_q_batch, ALIGNED)
    stride_q_head = aligned(stride_q_head, ALIGNED)
    stride_k_batch = aligned(stride_k_batch, ALIGNED)
    stride_k_seq = aligned(stride_k_seq, ALIGNED)
    stride_k_page = aligned(stride_k_page, ALIGNED)
    stride_k_slot = aligned(stride_k_slot, ALIGNED)
    stride_k_head = aligned(stride_k_head, ALIGNED)
    stride_v_batch = aligned(stride_v_batch, ALIGNED)
    stride_v_seq = aligned(stride_v_seq, ALIGNED)
    stride_v_page = aligned(stride_v_page, ALIGNED)
    stride_v_slot = aligned(stride_v_slot, ALIGNED)
    stride_v_head = aligned(stride_v_head, ALIGNED)
    stride_o_batch = aligned(stride_o_batch, ALIGNED)
    stride_o_head = aligned(stride_o_head, ALIGNED)
    pid = tl.program_id(0)
    off_b = pid // num_head_programs
    off_hp = pid % num_head_programs  # also the index row when HAS_INDICES
    split = tl.program_id(1)
    first_head = off_hp * heads_per_program
    off_kvh = first_head // group_size

    offs_h = first_head + tl.arange(0, BLOCK_H)  # [BLOCK_H] query heads
    h_ok = offs_h < first_head + heads_per_program
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)  # constant with EVEN_D: 16-byte accesses
    q = tl.load(q_ptr + off_b.to(tl.int64) * stride_q_batch
                + offs_h[:, None].to(tl.int64) * stride_q_head + offs_d[None, :],
                mask=h_ok[:, None] & d_ok[None, :], other=0.0)  # [BLOCK_H, HEAD_DIM_PAD]

    seq_len = n_ctx
    if has_lens != 0:  # clamped: with validate=False a bad length must not read past capacity
        seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx)
    # The query sits at position seq_len - 1; a window keeps keys from t_min on (its right
    # side bounds nothing: no key comes after the query). A dense or paged key list then
    # starts at t_min, so the cost follows the window; an index list is masked.
    q_pos = seq_len - 1
    t_min = tl.maximum(q_pos - win_left, 0)
    list_start = 0 if HAS_INDICES else t_min
    list_len = n_list if HAS_INDICES else seq_len
    # Split boundaries, in whole tiles from the list's start.
    per_split = tl.cdiv(tl.cdiv(list_len - list_start, num_splits), BLOCK_N) * BLOCK_N
    lo = list_start + split * per_split
    hi = tl.minimum(lo + per_split, list_len)

    if IS_PAGED:
        table_row = block_table_ptr + off_b.to(tl.int64) * stride_table_batch
        k_base = k_ptr + off_kvh.to(tl.int64) * stride_k_head
        v_base = v_ptr + off_kvh.to(tl.int64) * stride_v_head
    else:
        table_row = block_table_ptr  # unused
        k_base = k_ptr + off_b.to(tl.int64) * stride_k_batch + off_kvh.to(tl.int64) * stride_k_head
        v_base = v_ptr + off_b.to(tl.int64) * stride_v_batch + off_kvh.to(tl.int64) * stride_v_head
    idx_row = indices_ptr + off_b.to(tl.int64) * stride_idx_batch \
        + off_hp.to(tl.int64) * stride_idx_head
    # fp8: real K = stored K x k_scale, folded into the scores' scale (one multiply per
    # program, not per element); V's scale multiplies the output (the softmax weights sum
    # to one, so scaling sum_j p_j v_j is scaling every v_j).
    k_sc = kv_scale(k_scale_ptr, off_kvh, stride_k_scale, HAS_SCALES)
    qk_scale = qk_scale * k_sc
    if HAS_SCALES:  # the raw scores are real / k_scale: so are the soft-cap's and ALiBi's
        softcap_in = softcap_in * k_sc
        softcap_out = softcap_out / k_sc
        alibi_scale = alibi_scale / k_sc
    slopes = head_values(alibi_ptr, offs_h, h_ok, ALIBI)

    m_i = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, HEAD_DIM_PAD], dtype=tl.float32)
    offs_n0 = tl.arange(0, BLOCK_N)
    # The key offsets run one tile ahead: the index and page-table loads of tile i + 1
    # are issued while tile i computes, so no K/V load waits on a table load of its own
    # iteration (there the pipeliner waits for every copy in flight, each tile: PTX
    # cp.async.wait_group 0). The K/V loads use the same mask as the lookups.
    t, t_ok, k_off, v_off = _key_offsets(
        lo, offs_n0, hi, t_min, seq_len, idx_row, stride_idx_k, table_row, page_size,
        stride_k_seq, stride_v_seq, stride_k_page, stride_k_slot, stride_v_page,
        stride_v_slot, IS_PAGED, HAS_INDICES)
    for start in range(lo, hi, BLOCK_N):
        t_cur, ok, k_cur, v_cur = t, t_ok, k_off, v_off
        t, t_ok, k_off, v_off = _key_offsets(
            start + BLOCK_N, offs_n0, hi, t_min, seq_len, idx_row, stride_idx_k, table_row,
            page_size, stride_k_seq, stride_v_seq, stride_k_page, stride_k_slot,
            stride_v_page, stride_v_slot, IS_PAGED, HAS_INDICES)
        kv_mask = ok[:, None] & d_ok[None, :]  # constant along D with EVEN_D: cp.async
        k = kv_values(tl.load(k_base + k_cur[:, None] + offs_d[None, :], mask=kv_mask,
                              other=0.0), q.dtype)
        v = kv_values(tl.load(v_base + v_cur[:, None] + offs_d[None, :], mask=kv_mask,
                              other=0.0), q.dtype)
        s = mm(q, tl.trans(k), tl.zeros([BLOCK_H, BLOCK_N], dtype=tl.float32), FP32)
        s = modded_scores(s, tl.full([BLOCK_H], 0, tl.int32) + q_pos, t_cur, slopes,
                          softcap_in, softcap_out, alibi_scale, SOFTCAP, ALIBI)
        s = tl.where(ok[None, :], s, float("-inf"))  # [BLOCK_H, BLOCK_N] raw scores
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, v, qk_scale,
                                            MAY_BE_EMPTY=True, FP32=FP32)

    if has_sinks != 0:  # once per row: in split 0's partial (the merge is exact either way)
        sink = head_values(sinks_ptr, offs_h, h_ok, True)
        acc, m_i, l_i = add_sink(acc, m_i, l_i, tl.where(split == 0, sink, float("-inf")))
    out, lse = finalize(acc, m_i, l_i)  # [BLOCK_H, HEAD_DIM_PAD], [BLOCK_H]
    if HAS_SCALES:
        out = out * kv_scale(v_scale_ptr, off_kvh, stride_v_scale, HAS_SCALES)
    if num_splits == 1:
        tl.store(out_ptr + off_b.to(tl.int64) * stride_o_batch
                 + offs_h[:, None].to(tl.int64) * stride_o_head + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=h_ok[:, None] & d_ok[None, :])
        if write_lse != 0:
            tl.store(lse_ptr + off_b.to(tl.int64) * stride_lse_batch
                     + offs_h.to(tl.int64) * stride_lse_head, lse, mask=h_ok)
    else:
        row = (off_b.to(tl.int64) * (num_head_programs * heads_per_program) + offs_h) \
            * num_splits + split  # [BLOCK_H] rows of the [B * Hq * num_splits] partials
        part_row = row * _row_len(head_dim, HEAD_DIM_PAD, EVEN_D)
        tl.store(part_out_ptr + part_row[:, None] + offs_d[None, :], out,
                 mask=h_ok[:, None] & d_ok[None, :])
        tl.store(part_lse_ptr + row, lse, mask=h_ok)


@triton.jit(do_not_specialize=["num_splits", "num_q_heads", "head_dim", "write_lse",
                               "has_rows_end", "stride_o_batch", "stride_o_head",
                               "stride_lse_batch", "stride_lse_head"])
def _combine_kernel(
    part_out_ptr,  # [B * Hq, num_splits, D] fp32
    part_lse_ptr,  # [B * Hq, num_splits] fp32
    out_ptr,  # [B, Hq, D]
    lse_ptr,  # [B, Hq] fp32 (write_lse)
    rows_end_ptr,  # int32 [1]: rows b >= it are left as they are (has_rows_end)
    num_splits, num_q_heads, head_dim,
    stride_o_batch, stride_o_head,
    stride_lse_batch, stride_lse_head,
    write_lse,  # runtime 0/1 switches (see _RUNTIME_FLAGS)
    has_rows_end,  # paged prefill: packed rows past cu_seqlens_q[-1]
    SPLITS_PAD: tl.constexpr,  # merge_tile(num_splits)
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,  # head_dim == HEAD_DIM_PAD
    ALIGNED: tl.constexpr,  # the output's strides are multiples of 16 elements
    PDL: tl.constexpr,  # launched as a programmatic dependent of the split kernel
):
    """out = sum_s w_s o_s / sum_s w_s with w_s = exp(lse_s - max lse): the exact merge
    of softmax partials. All splits empty -> out 0, lse -inf. Paged prefill's rows are
    (packed token, head): "b" is the token there, and rows past the last sequence's
    tokens have no partials (has_rows_end)."""
    stride_o_batch = aligned(stride_o_batch, ALIGNED)
    stride_o_head = aligned(stride_o_head, ALIGNED)
    row = tl.program_id(0).to(tl.int64)  # b * Hq + h
    off_b = row // num_q_heads
    off_h = row % num_q_heads
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)
    live = off_b >= 0
    if has_rows_end != 0:  # a dead row reads no split and stores nothing
        live = off_b < tl.load(rows_end_ptr)
    # a scalar selects: d_ok stays constant along D (16-byte accesses)
    s_ok = tl.where(live, offs_s < num_splits, False)
    d_ok = tl.where(live, d_ok, False)
    if PDL:  # the split kernel has finished and its partials are visible
        gdc_wait()
    lse_s = tl.load(part_lse_ptr + row * num_splits + offs_s, mask=s_ok,
                    other=float("-inf"))  # [SPLITS_PAD]
    m = tl.max(lse_s, 0)
    m_safe = tl.where(m == float("-inf"), 0.0, m)
    w = tl.exp(lse_s - m_safe)  # 0 for empty splits
    part_rows = (row * num_splits + offs_s[:, None]) * _row_len(head_dim, HEAD_DIM_PAD, EVEN_D)
    o_s = tl.load(part_out_ptr + part_rows + offs_d[None, :],
                  mask=s_ok[:, None] & d_ok[None, :], other=0.0)
    total = tl.sum(w, 0)
    total_safe = tl.where(total == 0.0, 1.0, total)
    out = tl.sum(o_s * w[:, None], 0) / total_safe  # [HEAD_DIM_PAD]
    tl.store(out_ptr + off_b * stride_o_batch + off_h * stride_o_head + offs_d,
             out.to(out_ptr.dtype.element_ty), mask=d_ok)
    if write_lse != 0:
        lse = tl.where(total == 0.0, float("-inf"), m_safe + tl.log(total_safe))
        tl.store(lse_ptr + off_b * stride_lse_batch + off_h * stride_lse_head, lse, mask=live)


def merge_tile(num_splits: int) -> int:
    """_combine_kernel's SPLITS_PAD: the next power of two >= num_splits, at least 16.
    The lanes past num_splits are masked (no load), so a small count pays only idle
    lanes; the floor keeps counts 2 to 16 on one compiled variant instead of four."""
    return max(16, triton.next_power_of_2(num_splits))


def default_num_splits(num_programs: int, list_capacity: int, resident: int, min_keys: int,
                       max_splits: int, block: int = 1) -> int:
    """The split count for num_programs (batch, head) programs over key lists of
    list_capacity entries when `resident` programs fit on the GPU at once (see MANY_WAVES).
    Uses capacities (N, pages x P, K), never the lengths on the device: no sync.
    block: the kernel's tile (BLOCK_N). A split covers whole tiles,
    cdiv(cdiv(n, splits), block) x block entries, so rounding up can leave the last
    splits of a full list with no entry at all (the sparse seed, 640 entries in tiles of
    16: 12 splits of 64, of which 2 empty). Those splits would still load q and write a
    partial row for the merge: the count returned is the splits that hold an entry. A list
    of list_capacity entries keeps the same per-split ranges, so decode over full-length
    lists gives the same partials and the same output bits; shorter lists (seq_lens, and
    paged prefill's query tiles, whose key ranges list_capacity only bounds) are split
    differently, still into whole tiles covering the list."""
    if num_programs == 0:
        return 1
    if num_programs <= resident:
        by_waves = resident // num_programs
    else:
        by_waves = triton.cdiv(MANY_WAVES * resident, num_programs)
    by_len = max(1, list_capacity // min_keys)
    splits = max(1, min(by_waves, by_len, max_splits))
    if list_capacity <= 0:
        return splits
    per_split = triton.cdiv(triton.cdiv(list_capacity, splits), block) * block
    return triton.cdiv(list_capacity, per_split)


# (device, dtype, config, constexprs) -> programs of the split kernel resident on the GPU
_resident: dict[tuple, int] = {}


def resident_programs(device: torch.device, kernel_args: dict, consts: dict,
                      launch_options: dict, kernel=None) -> int:
    """How many split-kernel programs (num_splits > 1; of `kernel`, default this file's
    split kernel, else one with the same partial-row arguments) the GPU runs at once, from
    the compiled kernel's registers and shared memory; compiled (not launched) on first
    use, then looked up (no allocation, no compile)."""
    kernel = _decode_kernel if kernel is None else kernel
    key = (kernel, device, kernel_args["q_ptr"].dtype, kernel_args["k_ptr"].dtype,
           tuple(consts.items()),
           tuple(launch_options.items()))
    if key not in _resident:
        partials = torch.empty(0, device=device, dtype=torch.float32)  # fp32 pointers
        compiled = kernel.warmup(
            grid=(1, 1, 1), **kernel_args, part_out_ptr=partials, part_lse_ptr=partials,
            num_splits=2, **consts, **launch_options)
        if compiled is None:  # a jit_cache_hook skipped the compile (tests/compile_record.py
            return sm_limits(device).sms  # records variants): a guess, never cached
        compiled._init_handles()  # loads the binary: n_regs is known from here
        limits = sm_limits(device)
        _resident[key] = limits.sms * programs_per_sm(
            compiled.metadata.num_warps, compiled.n_regs, compiled.metadata.shared, limits)
    return _resident[key]


# ------------------------------------------------------------------------------ host side
# validated arguments (_validate.decode_call) -> KVLayout -> DecodePlan -> launch


def scale_args(k_scale, v_scale, device) -> dict:
    """The scale pointers and strides of a kernel taking fp8 dequantisation scales
    (validated: both or neither, fp32, one value or [Hkv]); dummies without them."""
    if k_scale is None:
        none = dummy(device, torch.float32)
        return dict(k_scale_ptr=none, v_scale_ptr=none, stride_k_scale=0, stride_v_scale=0)
    return dict(k_scale_ptr=k_scale, v_scale_ptr=v_scale,
                stride_k_scale=k_scale.stride(0) if k_scale.numel() > 1 else 0,
                stride_v_scale=v_scale.stride(0) if v_scale.numel() > 1 else 0)


@dataclass(frozen=True)
class KVLayout:
    """Where the kernel finds key-list entry i of (sequence b, KV head h):

      dense  [B, Hkv, N, D]:             position p = i           -> k[b, h, p]
      paged  [num_pages, P, Hkv, D]:     position p = i           -> k[table[b, p // P], p % P, h]
      indexed (either of the above):     position p = indices[b, h_idx, i] (-1: skipped)

    seq_lens (optional on a dense cache) bounds the valid positions. fp8 caches may
    come with dequantisation scales (real = stored x scale), fp32 [Hkv] or one value."""
    k: torch.Tensor
    v: torch.Tensor
    block_table: torch.Tensor | None = None
    seq_lens: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    k_scale: torch.Tensor | None = None
    v_scale: torch.Tensor | None = None

    @property
    def paged(self) -> bool:
        return self.block_table is not None

    @property
    def num_kv_heads(self) -> int:
        return self.k.shape[2] if self.paged else self.k.shape[1]

    @property
    def n_ctx(self) -> int:
        """Tokens the cache can hold per sequence (dense N; paged max_pages x P)."""
        return self.block_table.shape[1] * self.k.shape[1] if self.paged else self.k.shape[2]

    @property
    def n_list(self) -> int:
        """Entries of one key list: K index slots, else every position up to n_ctx."""
        return self.indices.shape[2] if self.indices is not None else self.n_ctx

    def kernel_args(self) -> dict:
        """The kernel's cache pointers and strides (the other kind's strides are 0)."""
        k, v, table, idx = self.k, self.v, self.block_table, self.indices
        none = dummy(k.device, torch.int32)

        def cache(name, t):
            if self.paged:  # [num_pages, P, Hkv, D]
                return {f"stride_{name}_batch": 0, f"stride_{name}_seq": 0,
                        f"stride_{name}_page": t.stride(0), f"stride_{name}_slot": t.stride(1),
                        f"stride_{name}_head": t.stride(2)}
            return {f"stride_{name}_batch": t.stride(0), f"stride_{name}_seq": t.stride(2),
                    f"stride_{name}_page": 0, f"stride_{name}_slot": 0,
                    f"stride_{name}_head": t.stride(1)}

        return dict(
            k_ptr=k, v_ptr=v, **scale_args(self.k_scale, self.v_scale, k.device),
            block_table_ptr=table if self.paged else none,
            seq_lens_ptr=self.seq_lens if self.seq_lens is not None else none,
            indices_ptr=idx if idx is not None else none,
            n_ctx=self.n_ctx, n_list=self.n_list,
            page_size=k.shape[1] if self.paged else 1,
            **cache("k", k), **cache("v", v),
            stride_table_batch=table.stride(0) if self.paged else 0,
            stride_idx_batch=idx.stride(0) if idx is not None else 0,
            stride_idx_head=idx.stride(1) if idx is not None else 0,
            stride_idx_k=idx.stride(2) if idx is not None else 0)

    def strides_aligned(self) -> bool:
        """Every cache stride a multiple of 16 elements (the kernel's ALIGNED flag)."""
        n = 3  # batch/page, head/slot, seq/head: the three outer axes
        return all(st % 16 == 0 for st in (*self.k.stride()[:n], *self.v.stride()[:n]))


@dataclass(frozen=True)
class DecodePlan:
    """Everything a launch needs beyond the tensors: decided once per call."""
    grid: tuple
    num_splits: int
    args: dict  # the split kernel's runtime arguments (pointers, sizes, strides)
    consts: dict  # its constexprs
    launch_options: dict
    pdl: bool  # the merge as a programmatic dependent launch
    head_dim_pad: int


def plan(q, layout: KVLayout, out, lse, *, sm_scale: float, num_splits: int | None,
         tune: Tuning, mods: ScoreMods = NONE) -> DecodePlan | None:
    """q/out: [B, Hq, D] (views allowed); lse [B, Hq] or None. None: nothing to launch."""
    batch, num_q_heads, head_dim = q.shape
    group_size = num_q_heads // layout.num_kv_heads
    # One program per index row: per KV head (whole group) or per query head.
    indices = layout.indices
    heads_per_program = num_q_heads // indices.shape[1] if indices is not None else group_size
    num_head_programs = num_q_heads // heads_per_program
    head_dim_pad = max(16, triton.next_power_of_2(head_dim))
    cfg = decode_config(head_dim_pad, q.dtype, tune.decode_config,
                        paged_fp8=layout.paged and indices is None
                        and layout.k.dtype.itemsize == 1)
    if batch * num_q_heads == 0:
        return None
    aligned_strides = layout.strides_aligned() and all(
        st % 16 == 0 for st in (*q.stride()[:2], *out.stride()[:2]))
    args = dict(
        q_ptr=q, **layout.kernel_args(),
        out_ptr=out, lse_ptr=lse if lse is not None else dummy(q.device, torch.float32),
        num_head_programs=num_head_programs, heads_per_program=heads_per_program,
        group_size=group_size, head_dim=head_dim, qk_scale=sm_scale * LOG2E_HOST,
        **mods.kernel_args(sm_scale, q.device),
        has_lens=int(layout.seq_lens is not None), write_lse=int(lse is not None),
        pdl=0,
        stride_q_batch=q.stride(0), stride_q_head=q.stride(1),
        stride_o_batch=out.stride(0), stride_o_head=out.stride(1),
        stride_lse_batch=lse.stride(0) if lse is not None else 0,
        stride_lse_head=lse.stride(1) if lse is not None else 0)
    if mods.window_left < 0 or mods.window_left >= layout.n_ctx:
        # the capacity bounds nothing (UNBOUNDED, mods.left()'s clamp, would past 2**30 keys)
        args["win_left"] = layout.n_ctx
    consts = dict(
        IS_PAGED=layout.paged, HAS_INDICES=indices is not None,
        HAS_SCALES=layout.k_scale is not None, **mods.loop_consts(q.dtype),
        BLOCK_H=max(16, triton.next_power_of_2(heads_per_program)), BLOCK_N=cfg.block_n,
        HEAD_DIM_PAD=head_dim_pad, EVEN_D=head_dim == head_dim_pad,
        FP32=q.dtype == torch.float32, ALIGNED=aligned_strides, PDL_OK=pdl(q.device))
    launch_options = cfg.launch_options()
    if num_splits is None:
        if interpreting() or q.device.type != "cuda":
            resident, min_keys = INTERPRETER_RESIDENT, INTERPRETER_MIN_KEYS
        else:
            resident = resident_programs(q.device, args, consts, launch_options)
            min_keys = max(MIN_KEYS_PER_SPLIT, cfg.block_n)
        list_capacity = layout.n_list
        if mods.window_left >= 0 and indices is None:  # the list starts at the window
            list_capacity = min(list_capacity, mods.window_left + 1)
        num_splits = default_num_splits(batch * num_head_programs, list_capacity, resident,
                                        min_keys,
                                        MAX_SPLITS_PAGED if layout.paged else MAX_SPLITS,
                                        block=consts["BLOCK_N"])
    use_pdl = num_splits > 1 and pdl(q.device, tune.pdl)
    return DecodePlan(grid=(batch * num_head_programs, num_splits), num_splits=num_splits,
                      args={**args, "pdl": int(use_pdl)}, consts=consts,
                      launch_options=launch_options, pdl=use_pdl, head_dim_pad=head_dim_pad)


def launch(p: DecodePlan) -> None:
    """Run the plan: the split kernel, and with more than one split the merge."""
    q, out, lse = p.args["q_ptr"], p.args["out_ptr"], p.args["lse_ptr"]
    batch, num_q_heads, head_dim = q.shape
    if p.num_splits > 1:
        part_out = torch.empty((batch * num_q_heads, p.num_splits, head_dim),
                               device=q.device, dtype=torch.float32)
        part_lse = torch.empty((batch * num_q_heads, p.num_splits), device=q.device,
                               dtype=torch.float32)
    else:
        part_out = part_lse = dummy(q.device, torch.float32)  # unused
    _decode_kernel[p.grid](
        **p.args, part_out_ptr=part_out, part_lse_ptr=part_lse, num_splits=p.num_splits,
        **p.consts, **p.launch_options)
    if p.num_splits > 1:
        _combine_kernel[(batch * num_q_heads,)](
            part_out_ptr=part_out, part_lse_ptr=part_lse, out_ptr=out, lse_ptr=lse,
            rows_end_ptr=dummy(q.device, torch.int32), num_splits=p.num_splits,
            num_q_heads=num_q_heads, head_dim=head_dim,
            stride_o_batch=out.stride(0), stride_o_head=out.stride(1),
            stride_lse_batch=p.args["stride_lse_batch"],
            stride_lse_head=p.args["stride_lse_head"],
            write_lse=p.args["write_lse"], has_rows_end=0,
            SPLITS_PAD=merge_tile(p.num_splits), HEAD_DIM_PAD=p.head_dim_pad,
            EVEN_D=p.consts["EVEN_D"], ALIGNED=p.consts["ALIGNED"], PDL=p.pdl,
            num_warps=4 if p.head_dim_pad >= 128 else 2,
            **({"launch_pdl": True} if p.pdl else {}),
        )


def attend(q, layout: KVLayout, *, num_splits: int | None, sm_scale: float, return_lse: bool,
           out: torch.Tensor, mods: ScoreMods = NONE) -> torch.Tensor:
    """The decode family's implementation behind every public decode function and its
    custom op, on validated arguments: q [B, Hq, D] or [B, Hq, 1, D], out like q (filled).
    Returns the LSE [B, Hq] (float32), or an empty tensor without return_lse."""
    q3 = q[:, :, 0] if q.dim() == 4 else q
    out3 = out[:, :, 0] if out.dim() == 4 else out
    lse = torch.empty(q3.shape[:2], device=q3.device, dtype=torch.float32) \
        if return_lse else None
    p = plan(q3, layout, out3, lse, sm_scale=sm_scale, num_splits=num_splits,
             tune=tuning.current(), mods=mods)
    if p is not None:
        launch(p)
    return lse if return_lse else q3.new_empty(0, dtype=torch.float32)


# The custom-op implementations (kernels/ops.py), one per public function. The five
# arguments after the scales are the variant options (kernels/mods.py ScoreMods).
def decode_impl(q, k, v, seq_lens, num_splits, sm_scale, k_scale, v_scale, window_left,
                window_right, softcap, sinks, alibi_slopes, return_lse, out):
    return attend(q, KVLayout(k, v, seq_lens=seq_lens, k_scale=k_scale, v_scale=v_scale),
                  num_splits=num_splits, sm_scale=sm_scale, return_lse=return_lse, out=out,
                  mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))


def paged_decode_impl(q, k_cache, v_cache, block_table, seq_lens, num_splits, sm_scale,
                      k_scale, v_scale, window_left, window_right, softcap, sinks,
                      alibi_slopes, return_lse, out):
    return attend(q, KVLayout(k_cache, v_cache, block_table=block_table, seq_lens=seq_lens,
                              k_scale=k_scale, v_scale=v_scale),
                  num_splits=num_splits, sm_scale=sm_scale, return_lse=return_lse, out=out,
                  mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))


def sparse_decode_impl(q, k, v, indices, seq_lens, num_splits, sm_scale, k_scale, v_scale,
                       window_left, window_right, softcap, sinks, alibi_slopes, return_lse,
                       out):
    return attend(q, KVLayout(k, v, seq_lens=seq_lens, indices=indices, k_scale=k_scale,
                              v_scale=v_scale),
                  num_splits=num_splits, sm_scale=sm_scale, return_lse=return_lse, out=out,
                  mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))


def sparse_paged_decode_impl(q, k_cache, v_cache, block_table, seq_lens, indices, num_splits,
                             sm_scale, k_scale, v_scale, window_left, window_right, softcap,
                             sinks, alibi_slopes, return_lse, out):
    return attend(q, KVLayout(k_cache, v_cache, block_table=block_table, seq_lens=seq_lens,
                              indices=indices, k_scale=k_scale, v_scale=v_scale),
                  num_splits=num_splits, sm_scale=sm_scale, return_lse=return_lse, out=out,
                  mods=ScoreMods(window_left, window_right, softcap, sinks, alibi_slopes))
