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
launch (``_config.PDL``): it is scheduled while the split kernel runs and waits
(griddepcontrol.wait) for the split kernel's completion and memory before reading.

The public wrappers here are ``decode`` and ``paged_decode``; ``kernels.sparse`` wraps
the same launcher for index lists.

References: Dao et al., "Flash-Decoding for long-context inference" (2023); vLLM paged
attention.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait

from . import _validate as val
from ._config import decode_config, interpreting, pdl, programs_per_sm, sm_limits
from ._jit import LOG2E_HOST, aligned, dim_ok, finalize, mm, online_softmax_step, page_lookup

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


@triton.jit(do_not_specialize=["n_ctx", "n_list", "num_splits", "page_size",
                               "num_head_programs", "heads_per_program", "group_size",
                               "head_dim", *_STRIDES])
def _decode_kernel(
    q_ptr,  # [B, Hq, D]
    k_ptr, v_ptr,  # dense: [B, Hkv, N, D]; paged: [num_pages, page_size, Hkv, D]
    block_table_ptr,  # [B, max_pages] int32 (IS_PAGED)
    seq_lens_ptr,  # [B] int32 (HAS_LENS)
    indices_ptr,  # [B, H_idx, K] int32 (HAS_INDICES); H_idx = Hq // heads_per_program
    out_ptr,  # [B, Hq, D]            (not SPLIT_KV)
    lse_ptr,  # [B, Hq] fp32          (not SPLIT_KV and WRITE_LSE)
    part_out_ptr,  # [B, Hq, num_splits, D] fp32 (SPLIT_KV)
    part_lse_ptr,  # [B, Hq, num_splits] fp32    (SPLIT_KV)
    n_ctx,  # dense: N, the length when there are no seq_lens
    n_list,  # sparse: K, the key-list length
    num_splits,  # split-KV count (grid axis 1)
    page_size,  # paged: tokens per page
    num_head_programs, heads_per_program, group_size, head_dim, qk_scale,
    stride_q_batch, stride_q_head,
    stride_k_batch, stride_k_seq, stride_k_page, stride_k_slot, stride_k_head,
    stride_v_batch, stride_v_seq, stride_v_page, stride_v_slot, stride_v_head,
    stride_table_batch,
    stride_idx_batch, stride_idx_head, stride_idx_k,
    stride_o_batch, stride_o_head,
    stride_lse_batch, stride_lse_head,
    IS_PAGED: tl.constexpr,
    HAS_LENS: tl.constexpr,
    HAS_INDICES: tl.constexpr,
    WRITE_LSE: tl.constexpr,
    SPLIT_KV: tl.constexpr,  # num_splits > 1: write fp32 partials for _combine_kernel
    BLOCK_H: tl.constexpr,  # >= heads_per_program, >= 16 for tl.dot
    BLOCK_N: tl.constexpr,
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,  # head_dim == HEAD_DIM_PAD: no mask along D
    FP32: tl.constexpr,
    ALIGNED: tl.constexpr,  # every q/k/v/out stride is a multiple of 16 elements
    PDL: tl.constexpr,  # the merge kernel is a programmatic dependent launch
):
    if PDL:  # every program has started: the merge grid may be scheduled (it waits)
        gdc_launch_dependents()
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

    if HAS_LENS:  # clamped: with validate=False a bad length must not read past capacity
        seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx)
    else:
        seq_len = n_ctx
    list_len = n_list if HAS_INDICES else seq_len
    # Split boundaries, in whole tiles.
    per_split = tl.cdiv(tl.cdiv(list_len, num_splits), BLOCK_N) * BLOCK_N
    lo = split * per_split
    hi = tl.minimum(lo + per_split, list_len)

    if IS_PAGED:
        table_row = block_table_ptr + off_b.to(tl.int64) * stride_table_batch
        k_base = k_ptr + off_kvh.to(tl.int64) * stride_k_head
        v_base = v_ptr + off_kvh.to(tl.int64) * stride_v_head
    else:
        k_base = k_ptr + off_b.to(tl.int64) * stride_k_batch + off_kvh.to(tl.int64) * stride_k_head
        v_base = v_ptr + off_b.to(tl.int64) * stride_v_batch + off_kvh.to(tl.int64) * stride_v_head
    idx_row = indices_ptr + off_b.to(tl.int64) * stride_idx_batch \
        + off_hp.to(tl.int64) * stride_idx_head

    m_i = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, HEAD_DIM_PAD], dtype=tl.float32)
    offs_n0 = tl.arange(0, BLOCK_N)
    for start in range(lo, hi, BLOCK_N):
        pos = start + offs_n0  # [BLOCK_N] key-list entries
        pos_ok = pos < hi
        if HAS_INDICES:
            t = tl.load(idx_row + pos.to(tl.int64) * stride_idx_k, mask=pos_ok, other=-1)
            t_ok = pos_ok & (t >= 0) & (t < seq_len)  # -1 = unused slot
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
        kv_mask = t_ok[:, None] & d_ok[None, :]  # constant along D with EVEN_D: cp.async
        k = tl.load(k_base + k_off[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        v = tl.load(v_base + v_off[:, None] + offs_d[None, :], mask=kv_mask, other=0.0)
        s = mm(q, tl.trans(k), tl.zeros([BLOCK_H, BLOCK_N], dtype=tl.float32), FP32)
        s = tl.where(t_ok[None, :], s, float("-inf"))  # [BLOCK_H, BLOCK_N] raw scores
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, v, qk_scale,
                                            MAY_BE_EMPTY=True, FP32=FP32)

    out, lse = finalize(acc, m_i, l_i)  # [BLOCK_H, HEAD_DIM_PAD], [BLOCK_H]
    if not SPLIT_KV:
        tl.store(out_ptr + off_b.to(tl.int64) * stride_o_batch
                 + offs_h[:, None].to(tl.int64) * stride_o_head + offs_d[None, :],
                 out.to(out_ptr.dtype.element_ty), mask=h_ok[:, None] & d_ok[None, :])
        if WRITE_LSE:
            tl.store(lse_ptr + off_b.to(tl.int64) * stride_lse_batch
                     + offs_h.to(tl.int64) * stride_lse_head, lse, mask=h_ok)
    else:
        row = (off_b.to(tl.int64) * (num_head_programs * heads_per_program) + offs_h) \
            * num_splits + split  # [BLOCK_H] rows of the [B * Hq * num_splits] partials
        part_row = row * _row_len(head_dim, HEAD_DIM_PAD, EVEN_D)
        tl.store(part_out_ptr + part_row[:, None] + offs_d[None, :], out,
                 mask=h_ok[:, None] & d_ok[None, :])
        tl.store(part_lse_ptr + row, lse, mask=h_ok)


@triton.jit(do_not_specialize=["num_splits", "num_q_heads", "head_dim"])
def _combine_kernel(
    part_out_ptr,  # [B * Hq, num_splits, D] fp32
    part_lse_ptr,  # [B * Hq, num_splits] fp32
    out_ptr,  # [B, Hq, D]
    lse_ptr,  # [B, Hq] fp32 (WRITE_LSE)
    num_splits, num_q_heads, head_dim,
    stride_o_batch, stride_o_head,
    stride_lse_batch, stride_lse_head,
    WRITE_LSE: tl.constexpr,
    SPLITS_PAD: tl.constexpr,  # next power of two >= num_splits
    HEAD_DIM_PAD: tl.constexpr,
    EVEN_D: tl.constexpr,  # head_dim == HEAD_DIM_PAD
    PDL: tl.constexpr,  # launched as a programmatic dependent of the split kernel
):
    """out = sum_s w_s o_s / sum_s w_s with w_s = exp(lse_s - max lse): the exact merge
    of softmax partials. All splits empty -> out 0, lse -inf."""
    row = tl.program_id(0).to(tl.int64)  # b * Hq + h
    off_b = row // num_q_heads
    off_h = row % num_q_heads
    offs_s = tl.arange(0, SPLITS_PAD)
    s_ok = offs_s < num_splits
    offs_d = tl.arange(0, HEAD_DIM_PAD)
    d_ok = dim_ok(offs_d, head_dim, EVEN_D)
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
    if WRITE_LSE:
        lse = tl.where(total == 0.0, float("-inf"), m_safe + tl.log(total_safe))
        tl.store(lse_ptr + off_b * stride_lse_batch + off_h * stride_lse_head, lse)


def default_num_splits(num_programs: int, list_capacity: int, resident: int, min_keys: int,
                       max_splits: int) -> int:
    """The split count for num_programs (batch, head) programs over key lists of
    list_capacity entries when `resident` programs fit on the GPU at once (see MANY_WAVES).
    Uses capacities (N, pages x P, K), never the lengths on the device: no sync."""
    if num_programs == 0:
        return 1
    if num_programs <= resident:
        by_waves = resident // num_programs
    else:
        by_waves = triton.cdiv(MANY_WAVES * resident, num_programs)
    by_len = max(1, list_capacity // min_keys)
    return max(1, min(by_waves, by_len, max_splits))


# (device, dtype, config, constexprs) -> programs of the split kernel resident on the GPU
_resident: dict[tuple, int] = {}


def resident_programs(device: torch.device, kernel_args: dict, consts: dict,
                      launch_options: dict) -> int:
    """How many split-kernel programs (SPLIT_KV variant) the GPU runs at once, from the
    compiled kernel's registers and shared memory; compiled (not launched) on first use,
    then looked up (no allocation, no compile)."""
    key = (device, kernel_args["q_ptr"].dtype, tuple(consts.items()),
           tuple(launch_options.items()))
    if key not in _resident:
        partials = torch.empty(0, device=device, dtype=torch.float32)  # fp32 pointers
        compiled = _decode_kernel.warmup(
            grid=(1, 1), **kernel_args, part_out_ptr=partials, part_lse_ptr=partials,
            num_splits=2, **consts, SPLIT_KV=True, **launch_options)
        compiled._init_handles()  # loads the binary: n_regs is known from here
        limits = sm_limits(device)
        _resident[key] = limits.sms * programs_per_sm(
            compiled.metadata.num_warps, compiled.n_regs, compiled.metadata.shared, limits)
    return _resident[key]


def launch(q, k, v, out, lse, *, seq_lens, block_table, indices, n_ctx, num_splits,
           sm_scale):
    """Run the decode family. q/out: [B, Hq, D] (views allowed); k/v dense [B, Hkv, N, D]
    or paged [num_pages, P, Hkv, D] (when block_table is given); indices [B, H_idx, K]."""
    batch, num_q_heads, head_dim = q.shape
    paged = block_table is not None
    num_kv_heads = k.shape[2] if paged else k.shape[1]
    group_size = num_q_heads // num_kv_heads
    # One program per index row: per KV head (whole group) or per query head.
    heads_per_program = num_q_heads // indices.shape[1] if indices is not None else group_size
    num_head_programs = num_q_heads // heads_per_program
    n_list = indices.shape[2] if indices is not None else n_ctx
    head_dim_pad = max(16, triton.next_power_of_2(head_dim))
    cfg = decode_config(head_dim_pad, q.dtype)
    if batch * num_q_heads == 0:
        return
    aligned_strides = all(st % 16 == 0 for st in (*q.stride()[:2], *k.stride()[:3],
                                                  *v.stride()[:3], *out.stride()[:2]))
    dummy = q
    args = dict(
        q_ptr=q, k_ptr=k, v_ptr=v,
        block_table_ptr=block_table if paged else dummy,
        seq_lens_ptr=seq_lens if seq_lens is not None else dummy,
        indices_ptr=indices if indices is not None else dummy,
        out_ptr=out, lse_ptr=lse if lse is not None else out,
        n_ctx=n_ctx, n_list=n_list,
        page_size=k.shape[1] if paged else 1, num_head_programs=num_head_programs,
        heads_per_program=heads_per_program, group_size=group_size, head_dim=head_dim,
        qk_scale=sm_scale * LOG2E_HOST,
        stride_q_batch=q.stride(0), stride_q_head=q.stride(1),
        stride_k_batch=0 if paged else k.stride(0), stride_k_seq=0 if paged else k.stride(2),
        stride_k_page=k.stride(0) if paged else 0, stride_k_slot=k.stride(1) if paged else 0,
        stride_k_head=k.stride(2) if paged else k.stride(1),
        stride_v_batch=0 if paged else v.stride(0), stride_v_seq=0 if paged else v.stride(2),
        stride_v_page=v.stride(0) if paged else 0, stride_v_slot=v.stride(1) if paged else 0,
        stride_v_head=v.stride(2) if paged else v.stride(1),
        stride_table_batch=block_table.stride(0) if paged else 0,
        stride_idx_batch=indices.stride(0) if indices is not None else 0,
        stride_idx_head=indices.stride(1) if indices is not None else 0,
        stride_idx_k=indices.stride(2) if indices is not None else 0,
        stride_o_batch=out.stride(0), stride_o_head=out.stride(1),
        stride_lse_batch=lse.stride(0) if lse is not None else 0,
        stride_lse_head=lse.stride(1) if lse is not None else 0)
    consts = dict(
        IS_PAGED=paged, HAS_LENS=seq_lens is not None, HAS_INDICES=indices is not None,
        WRITE_LSE=lse is not None,
        BLOCK_H=max(16, triton.next_power_of_2(heads_per_program)), BLOCK_N=cfg.block_n,
        HEAD_DIM_PAD=head_dim_pad, EVEN_D=head_dim == head_dim_pad,
        FP32=q.dtype == torch.float32, ALIGNED=aligned_strides, PDL=pdl(q.device))
    launch_options = cfg.launch_options()
    if num_splits is None:
        if interpreting() or q.device.type != "cuda":
            resident, min_keys = INTERPRETER_RESIDENT, INTERPRETER_MIN_KEYS
        else:
            resident = resident_programs(q.device, args, consts, launch_options)
            min_keys = max(MIN_KEYS_PER_SPLIT, cfg.block_n)
        num_splits = default_num_splits(batch * num_head_programs, n_list, resident, min_keys,
                                        MAX_SPLITS_PAGED if paged else MAX_SPLITS)
    if num_splits > 1:
        part_out = torch.empty((batch * num_q_heads, num_splits, head_dim),
                               device=q.device, dtype=torch.float32)
        part_lse = torch.empty((batch * num_q_heads, num_splits), device=q.device,
                               dtype=torch.float32)
    else:
        part_out = part_lse = out  # unused
    use_pdl = num_splits > 1 and consts["PDL"]
    _decode_kernel[(batch * num_head_programs, num_splits)](
        **args, part_out_ptr=part_out, part_lse_ptr=part_lse, num_splits=num_splits,
        **{**consts, "PDL": use_pdl}, SPLIT_KV=num_splits > 1, **launch_options)
    if num_splits > 1:
        _combine_kernel[(batch * num_q_heads,)](
            part_out_ptr=part_out, part_lse_ptr=part_lse, out_ptr=out,
            lse_ptr=lse if lse is not None else out, num_splits=num_splits,
            num_q_heads=num_q_heads,
            head_dim=head_dim, stride_o_batch=out.stride(0), stride_o_head=out.stride(1),
            stride_lse_batch=lse.stride(0) if lse is not None else 0,
            stride_lse_head=lse.stride(1) if lse is not None else 0,
            WRITE_LSE=lse is not None,
            SPLITS_PAD=triton.next_power_of_2(num_splits), HEAD_DIM_PAD=head_dim_pad,
            EVEN_D=head_dim == head_dim_pad, PDL=use_pdl,
            num_warps=4 if head_dim_pad >= 128 else 2,
            **({"launch_pdl": True} if use_pdl else {}),
        )


def run(q3, out_shape, k, v, *, out, return_lse, sm_scale, **launch_kw):
    """The common tail of every decode-family wrapper, after its own checks: allocate or
    check out= (q's shape), allocate the LSE, launch, return what was asked for."""
    sm_scale = val.check_sm_scale(sm_scale, q3.shape[2])
    out = val.check_out(out, q3, out_shape)
    out3 = out[:, :, 0] if out.dim() == 4 else out
    lse = torch.empty(q3.shape[:2], device=q3.device, dtype=torch.float32) \
        if return_lse else None
    launch(q3, k, v, out3, lse, sm_scale=sm_scale, **launch_kw)
    return (out, lse) if return_lse else out


def check_decode_query(q) -> tuple[torch.Tensor, tuple]:
    """q [B, Hq, D] or [B, Hq, 1, D] -> (a [B, Hq, D] view, the output shape)."""
    val.tensor("q", q)
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
    val.float_input("q", q)
    val.on_kernel_device("q", q)
    val.head_dim(q.shape[-1])
    return q3, tuple(q.shape)


def check_dense_cache(q3, k, v) -> None:
    for name, t in (("k", k), ("v", v)):
        val.tensor(name, t, 4, "[B, Hkv, N, D]")
        val.float_input(name, t)
        val.same_kind("q", q3, name, t)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if k.shape[0] != q3.shape[0]:
        raise ValueError(f"k must have batch {q3.shape[0]} like q, got {tuple(k.shape)}")
    if k.shape[3] != q3.shape[2]:
        raise ValueError(f"k must have head dim {q3.shape[2]} like q, got {k.shape[3]}")
    val.gqa(q3.shape[1], k.shape[1])


def check_dense_call(q, k, v, seq_lens, num_splits, validate: bool):
    """Every check of a dense-cache decode call (decode, sparse_decode) but the indices;
    returns (q as [B, Hq, D], the output shape)."""
    q3, out_shape = check_decode_query(q)
    check_dense_cache(q3, k, v)
    val.check_num_splits(num_splits)
    if seq_lens is not None:
        val.check_lengths("seq_lens", seq_lens, q3.shape[0], k.shape[2], q3.device, validate)
    return q3, out_shape


def check_paged_call(q, k_cache, v_cache, block_table, seq_lens, num_splits, validate: bool):
    """Every check of a paged-cache decode call (paged_decode, sparse_paged_decode) but
    the indices; returns (q as [B, Hq, D], the output shape)."""
    q3, out_shape = check_decode_query(q)
    check_paged_cache(q3, k_cache, v_cache, block_table, seq_lens, validate)
    val.check_num_splits(num_splits)
    return q3, out_shape


def check_paged_cache(q3, k_cache, v_cache, block_table, seq_lens, validate: bool) -> None:
    """Caches [num_pages, P, Hkv, D]; block_table int32 [B, max_pages]; seq_lens int32 [B].
    With validate, lengths fit the table row and every *used* table entry is a page id."""
    for name, t in (("k_cache", k_cache), ("v_cache", v_cache)):
        val.tensor(name, t, 4, "[num_pages, page_size, Hkv, D]")
        val.float_input(name, t)
        val.same_kind("q", q3, name, t)
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"k_cache and v_cache must have the same shape, got "
                         f"{tuple(k_cache.shape)} and {tuple(v_cache.shape)}")
    num_pages, page_size, num_kv_heads, d = k_cache.shape
    if d != q3.shape[2]:
        raise ValueError(f"k_cache must have head dim {q3.shape[2]} like q, got {d}")
    if page_size < 1:
        raise ValueError(f"page_size (k_cache.shape[1]) must be >= 1, got {page_size}")
    val.gqa(q3.shape[1], num_kv_heads)
    batch = q3.shape[0]
    val.tensor("block_table", block_table)
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
    val.check_lengths("seq_lens", seq_lens, batch, max_pages * page_size, q3.device, validate)
    if validate and batch and max_pages:
        used = torch.arange(max_pages, device=q3.device)[None, :] \
            < ((seq_lens.long() + page_size - 1) // page_size)[:, None]
        bad = used & ((block_table < 0) | (block_table >= num_pages))
        if bool(bad.any()):
            b, j = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"block_table[{b}, {j}] = {int(block_table[b, j])} is used by "
                             f"sequence {b} but is not a page id in [0, {num_pages})")


def decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    seq_lens: torch.Tensor | None = None,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Decode over a dense cache.

    q: [B, Hq, D] or [B, Hq, 1, D] (the output mirrors it); k, v: [B, Hkv, N, D];
    seq_lens: int32 [B] valid cache lengths (default N; keys past it are never read).
    num_splits: split-KV count (default: a heuristic from B x Hkv and N).
    Returns out (and lse [B, Hq] float32, natural log; -inf for a length-0 row).
    """
    q3, out_shape = check_dense_call(q, k, v, seq_lens, num_splits, validate)
    return run(q3, out_shape, k, v, out=out, return_lse=return_lse, sm_scale=sm_scale,
               seq_lens=seq_lens, block_table=None, indices=None, n_ctx=k.shape[2],
               num_splits=num_splits)


def paged_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Decode over a paged cache.

    q: [B, Hq, D] or [B, Hq, 1, D]; k_cache, v_cache: [num_pages, page_size, Hkv, D]
    (any strides with a contiguous last dim); block_table: int32 [B, max_pages];
    seq_lens: int32 [B]. Token t of sequence b is cache[block_table[b, t // P], t % P];
    table entries past a sequence's last page are never read and may hold anything.
    """
    q3, out_shape = check_paged_call(q, k_cache, v_cache, block_table, seq_lens, num_splits,
                                     validate)
    return run(q3, out_shape, k_cache, v_cache, out=out, return_lse=return_lse,
               sm_scale=sm_scale, seq_lens=seq_lens, block_table=block_table, indices=None,
               n_ctx=block_table.shape[1] * k_cache.shape[1], num_splits=num_splits)


__all__ = ["decode", "paged_decode"]
