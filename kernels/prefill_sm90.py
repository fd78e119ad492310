"""Causal prefill on Hopper (sm_90) in Gluon, for the long-sequence case: warp-specialised,
with the tensor cores and the softmax overlapped (FlashAttention-3's design).

Why a second implementation: the Triton kernel (prefill.py) cannot overlap the softmax with
the tensor cores. tl.dot waits for each wgmma at once, and triton 3.6 has no warp
specialisation on sm_90 (benchmarks/NOTES.md, sessions 7 and 8). Gluon exposes the
asynchronous wgmma, its waits, TMA, mbarriers and warp partitions. On an H200 this kernel
runs causal B4 Hq32 Hkv8 N4096 D128 fp16 in 0.989 ms against the Triton kernel's 1.055,
and N16384 in 3.38 against 3.77 ms (session 8).

Scope (prefill.py dispatches here only then, see _sm90_gluon_ok): Hopper, fp16/bf16, causal,
the fixed layout without lengths, head_dim 128, Nq == Nk a multiple of 128, contiguous
q/k/v/out, any GQA; of the attention variants sinks (an epilogue term), a window (the
key loop starts at the tile holding the first row's left edge, and the two edge tiles
there take a peeled masked step like the diagonal's) and a soft-cap (the hardware's tanh
on every tile's scores before its mask, its output factor folded into the softmax's scale);
ALiBi calls take the Triton kernel. Gluon does
not run under the interpreter: CPU runs never take this path, and the GPU tests compare it
with the oracle and with the Triton kernel. prefill.py imports this module only on a
Hopper GPU (and falls back when this Triton lacks Gluon's names).

One program per (128-row query tile, batch x query head), pair after pair, heaviest tile
first (the Triton kernel's full-length order). Three warp partitions share a K/V ring in
shared memory:
  loader    (one warpgroup, 24 registers): every TMA load, each as soon as both consumers
            have released its slot (an mbarrier per slot that counts two arrivals);
  consumers (two warpgroups, 64 query rows each, no barrier between them, so they take
            turns on the tensor cores). Step j of a consumer's key loop, with p_j (the
            operand form of tile j's probabilities) and alpha_j ready:
    1. issue s_{j+1} = q k_{j+1}^T (asynchronous wgmma);
    2. rescale acc by alpha_j, issue acc += p_j v_j (asynchronous);
    3. wait until one wgmma is in flight: s_{j+1} is done (groups complete in order), so
       K slot j+1 is released; the softmax of s_{j+1} runs while p_j v_j is in flight;
    4. wait for p_j v_j (V slot j released), convert p_{j+1} to the operand form. Not
       before: the wgmma in flight reads p_j's registers, and ptxas serialises every
       wgmma when they could be overwritten. p_j is passed through the waits for that.
The diagonal tile's mask is a compile-time choice of a peeled step: a branch between an
asynchronous wgmma and its wait also makes ptxas serialise.

Reference: Shah et al. 2024, FlashAttention-3 (warp specialisation, intra-warpgroup
overlap); Triton's Gluon tutorials (layouts, wgmma, TMA).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import torch
from triton.experimental import gluon
from triton.experimental.gluon import language as gl
from triton.experimental.gluon.language.nvidia.hopper import (
    mbarrier,
    tma,
    warpgroup_mma,
    warpgroup_mma_wait,
)
from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

LOG2E = 1.4426950408889634
TILE_M = 128  # query rows per program (two consumer warpgroups of 64)
TILE_N = 128  # keys per tile
RING = 2  # K/V ring depth (3 measured the same at N4096, with more shared memory)

LN2 = gl.constexpr(0.6931471805599453)
LOG2E_JIT = gl.constexpr(LOG2E)  # what a @gluon.jit body may read


@gluon.jit
def _load_tile(desc, row, bar, smem):
    mbarrier.expect(bar, desc.block_type.nbytes)
    tma.async_copy_global_to_shared(desc, [row, 0], bar, smem)


@gluon.jit
def _tanh_approx(x):
    """PTX tanh.approx.f32 (kernels/_jit.py tanh_approx, here for Gluon's layouts)."""
    return gl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x],
                                     dtype=gl.float32, is_pure=True, pack=1)


@gluon.jit
def _softmax_tile(s, m_i, l_i, start_n, offs_m, offs_n0, qk_scale, win_left, softcap_in,
                  softcap_out, dtype: gl.constexpr, p_layout: gl.constexpr,
                  MASKED: gl.constexpr, HAS_WINDOW: gl.constexpr, SOFTCAP: gl.constexpr):
    """One key tile's online-softmax step on its raw scores s: (p, fp32, in the scores'
    layout; the rescale factor alpha; the new max and sum). MASKED is a
    compile-time choice: a branch between an asynchronous wgmma and its wait makes ptxas
    wait for every wgmma in flight. A masked tile takes the whole rule: key j is seen by
    row i iff i - win_left <= j <= i (the causal diagonal and, with HAS_WINDOW, the
    window's left edge), so one mask serves the edge tiles at both ends. A row that sees
    no key of the tile keeps m_i (finite from the start), so p is 0 there, never NaN.
    SOFTCAP: the scores become softcap_out * tanh(s * softcap_in) first, with the
    hardware's tanh (kernels/mods.py SOFTCAP_FAST: this kernel takes 16-bit inputs only).
    softcap_out joins qk_scale (their product is softcap x log2 e > 0, so the row max
    commutes with it): one multiply per score fewer (the soft-capped build's sm_90 SASS,
    offline, triton 3.6: 1576 -> 1194 FMUL)."""
    if SOFTCAP:
        s = _tanh_approx(s * softcap_in)
        qk_scale = qk_scale * softcap_out
    if MASKED:
        keys = gl.expand_dims(start_n + offs_n0, 0)
        rows = gl.expand_dims(offs_m, 1)
        keep = keys <= rows
        if HAS_WINDOW:
            keep = keep & (keys >= rows - win_left)
        s = gl.where(keep, s, float("-inf"))
    m_new = gl.maximum(m_i, gl.max(s, axis=1) * qk_scale)
    alpha = gl.exp2(m_i - m_new)
    p = gl.exp2(s * qk_scale - gl.expand_dims(m_new, 1))
    l_i = l_i * alpha + gl.sum(p, axis=1)
    return p, alpha, m_new, l_i


@gluon.jit
def _as_operand(p, dtype: gl.constexpr, p_layout: gl.constexpr):
    """p as the A operand of the p v product. Called only once no wgmma reading the previous
    p is in flight: ptxas serialises every wgmma when registers that one in flight reads
    are written (FlashAttention-3 converts after the same wait)."""
    return gl.convert_layout(p.to(dtype), p_layout)


@gluon.jit
def _step(j, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready, k_empty,
          v_empty, s_zero, offs_m, offs_n0, key0, qk_scale, win_left, softcap_in, softcap_out,
          dtype: gl.constexpr, p_layout: gl.constexpr, row_o: gl.constexpr,
          BLOCK_N: gl.constexpr, STAGES: gl.constexpr, MASKED: gl.constexpr,
          HAS_WINDOW: gl.constexpr, SOFTCAP: gl.constexpr):
    """Key tile j's p v product and tile j + 1's scores and softmax (p_j, alpha_j ready).
    Tiles count from the program's first key tile, which holds key key0."""
    nxt = j + 1
    # 1. the next tile's scores, asynchronously
    mbarrier.wait(k_ready.index(nxt % STAGES), phase=(nxt // STAGES) & 1)
    s = warpgroup_mma(q_smem, k_smem.index(nxt % STAGES).permute((1, 0)), s_zero,
                      use_acc=False, is_async=True)
    # 2. acc = alpha_j acc + p_j v_j, asynchronously (acc is not in flight here)
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)
    mbarrier.wait(v_ready.index(j % STAGES), phase=(j // STAGES) & 1)
    acc = warpgroup_mma(p16, v_smem.index(j % STAGES), acc, is_async=True)
    # 3. the scores were issued first, so they complete first: wait for them alone (K of
    #    tile j + 1 is then free), and run the next softmax while p_j v_j is on the tensor
    #    cores. p_j goes through the waits: its registers must stay untouched until the
    #    product that reads them is done.
    s, p16 = warpgroup_mma_wait(num_outstanding=1, deps=(s, p16))
    mbarrier.arrive(k_empty.index(nxt % STAGES), count=1)
    p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, key0 + nxt * BLOCK_N, offs_m, offs_n0,
                                       qk_scale, win_left, softcap_in, softcap_out, dtype,
                                       p_layout, MASKED, HAS_WINDOW, SOFTCAP)
    acc, p16 = warpgroup_mma_wait(num_outstanding=0, deps=(acc, p16))
    mbarrier.arrive(v_empty.index(j % STAGES), count=1)
    p16 = _as_operand(p, dtype, p_layout)
    return acc, p16, alpha, m_i, l_i


@gluon.jit
def _loader(q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty,
            v_empty, q_row, kv_row0, n_tiles, BLOCK_N: gl.constexpr, STAGES: gl.constexpr):
    """The producer partition (one warpgroup, few registers): every TMA load, each as soon
    as its ring slot is released by the consumers."""
    HALF: gl.constexpr = q_desc.block_type.shape[0]
    mbarrier.expect(q_bar, 2 * q_desc.block_type.nbytes)
    tma.async_copy_global_to_shared(q_desc, [q_row, 0], q_bar, q_smem.index(0))
    tma.async_copy_global_to_shared(q_desc, [q_row + HALF, 0], q_bar, q_smem.index(1))
    for t in range(n_tiles):
        slot = t % STAGES
        free_phase = ((t // STAGES) & 1) ^ 1  # the release of tile t - STAGES
        mbarrier.wait(k_empty.index(slot), free_phase, pred=t >= STAGES)
        _load_tile(k_desc, kv_row0 + t * BLOCK_N, k_ready.index(slot), k_smem.index(slot))
        mbarrier.wait(v_empty.index(slot), free_phase, pred=t >= STAGES)
        _load_tile(v_desc, kv_row0 + t * BLOCK_N, v_ready.index(slot), v_smem.index(slot))


@gluon.jit
def _consumer(q_all, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, out_ptr,
              lse_ptr, sink_ptr, q_row, start_m, key0, n_tiles, qk_scale, win_left, softcap_in,
              softcap_out, HALF_INDEX: gl.constexpr, dtype: gl.constexpr,
              TILE_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
              STAGES: gl.constexpr, WRITE_LSE: gl.constexpr, HAS_SINKS: gl.constexpr,
              HAS_WINDOW: gl.constexpr, SOFTCAP: gl.constexpr):
    """One consumer warpgroup: rows [HALF_INDEX * BLOCK_M, +BLOCK_M) of the program's
    TILE_M-row query tile (BLOCK_M = TILE_M / 2). Two of them run side by side on the
    same K/V ring, each releasing a slot once (the empty barriers count two arrivals); with
    no barrier between them they can take turns on the tensor cores."""
    num_warps: gl.constexpr = 4
    BLOCK_M: gl.constexpr = TILE_M // 2
    q_smem = q_all.index(HALF_INDEX)
    q_row = q_row + HALF_INDEX * BLOCK_M
    start_m = start_m + HALF_INDEX * BLOCK_M
    s_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, BLOCK_N, 16])
    o_layout: gl.constexpr = gl.NVMMADistributedLayout(
        version=[3, 0], warps_per_cta=[num_warps, 1], instr_shape=[16, HEAD_DIM, 16])
    p_layout: gl.constexpr = gl.DotOperandLayout(operand_index=0, parent=o_layout, k_width=2)
    row_s: gl.constexpr = gl.SliceLayout(1, s_layout)
    row_o: gl.constexpr = gl.SliceLayout(1, o_layout)

    m_i = gl.full([BLOCK_M], -3.4028234663852886e38, gl.float32, layout=row_s)
    l_i = gl.zeros([BLOCK_M], gl.float32, layout=row_s)
    acc = gl.zeros([BLOCK_M, HEAD_DIM], gl.float32, layout=o_layout)
    s_zero = gl.zeros([BLOCK_M, BLOCK_N], gl.float32, layout=s_layout)
    offs_m = start_m + gl.arange(0, BLOCK_M, layout=row_s)
    offs_n0 = gl.arange(0, BLOCK_N, layout=gl.SliceLayout(0, s_layout))

    mbarrier.wait(q_bar, phase=0)
    mbarrier.wait(k_ready.index(0), phase=0)
    s = warpgroup_mma(q_smem, k_smem.index(0).permute((1, 0)), s_zero, use_acc=False,
                      is_async=True)
    s = warpgroup_mma_wait(num_outstanding=0, deps=(s, ))
    mbarrier.arrive(k_empty.index(0), count=1)
    # The last DIAG = BLOCK_M // BLOCK_N key tiles are on the diagonal (masked); the mask is
    # chosen at compile time in each step (see _softmax_tile), so those steps are peeled.
    # Under a window the first two tiles are edge tiles too: the program's first row's
    # left edge start_m - win_left lies in the first (or before it, when that is clamped
    # to key 0), and its last row's, TILE_M - 1 keys further, at most in the second
    # (TILE_N >= TILE_M); from the third on, every key lies in every row's window (launch
    # checks TILE_N == TILE_M).
    DIAG: gl.constexpr = TILE_M // BLOCK_N
    # tile 0 (no wgmma in flight: a runtime branch is fine)
    if HAS_WINDOW or n_tiles == DIAG:
        p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, key0, offs_m, offs_n0, qk_scale,
                                           win_left, softcap_in, softcap_out, dtype,
                                           p_layout, True, HAS_WINDOW, SOFTCAP)
    else:
        p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, key0, offs_m, offs_n0, qk_scale,
                                           win_left, softcap_in, softcap_out, dtype,
                                           p_layout, False, HAS_WINDOW, SOFTCAP)
    p16 = _as_operand(p, dtype, p_layout)
    # steps [first, n_tiles - DIAG - 1) reach only inner tiles: unmasked
    first = 0
    if HAS_WINDOW:  # the step into tile 1, the second edge tile, unless it is diagonal
        first = 1
        if n_tiles - DIAG - 1 > 0:
            acc, p16, alpha, m_i, l_i = _step(
                0, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready,
                k_empty, v_empty, s_zero, offs_m, offs_n0, key0, qk_scale, win_left,
                softcap_in, softcap_out, dtype, p_layout, row_o, BLOCK_N, STAGES, True,
                HAS_WINDOW, SOFTCAP)
    for j in range(first, n_tiles - DIAG - 1):
        acc, p16, alpha, m_i, l_i = _step(
            j, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready, k_empty,
            v_empty, s_zero, offs_m, offs_n0, key0, qk_scale, win_left, softcap_in,
            softcap_out, dtype, p_layout, row_o, BLOCK_N, STAGES, False, HAS_WINDOW, SOFTCAP)
    for i in gl.static_range(DIAG):  # the steps into the diagonal tiles
        j = n_tiles - DIAG - 1 + i
        if j >= 0:
            acc, p16, alpha, m_i, l_i = _step(
                j, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready,
                k_empty, v_empty, s_zero, offs_m, offs_n0, key0, qk_scale, win_left,
                softcap_in, softcap_out, dtype, p_layout, row_o, BLOCK_N, STAGES, True,
                HAS_WINDOW, SOFTCAP)
    last = n_tiles - 1
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)
    mbarrier.wait(v_ready.index(last % STAGES), phase=(last // STAGES) & 1)
    acc = warpgroup_mma(p16, v_smem.index(last % STAGES), acc, is_async=True)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc, ))

    if HAS_SINKS:  # the head's sink logit (natural log): one more key of value 0, which
        # adds exp(sink) to the denominator only (kernels/_jit.py add_sink; here every row
        # has seen its own key, so m_i is finite)
        sink = gl.load(sink_ptr) * LOG2E_JIT
        m_new = gl.maximum(m_i, sink)
        alpha = gl.exp2(m_i - m_new)
        l_i = l_i * alpha + gl.exp2(sink - m_new)
        acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)
        m_i = m_new
    # every row sees its own key at least (causal, square; a window holds it): l_i > 0
    out = acc / gl.expand_dims(gl.convert_layout(l_i, row_o), 1)
    rows = q_row + gl.arange(0, BLOCK_M, layout=row_o)
    cols = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
    ptrs = out_ptr + gl.expand_dims(rows.to(gl.int64) * HEAD_DIM, 1) + gl.expand_dims(cols, 0)
    gl.store(ptrs, out.to(dtype))
    if WRITE_LSE:  # natural log: m_i is a base-2 max
        lse_rows = q_row + gl.arange(0, BLOCK_M, layout=row_s)
        gl.store(lse_ptr + lse_rows.to(gl.int64), (m_i + gl.log2(l_i)) * LN2)


@gluon.jit
def _prefill_sm90_kernel(q_desc, k_desc, v_desc, out_ptr, lse_ptr, sinks_ptr, n_ctx,
                         num_q_heads, group_size, qk_scale, win_left, softcap_in, softcap_out,
                         BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
                         STAGES: gl.constexpr, WRITE_LSE: gl.constexpr,
                         HAS_SINKS: gl.constexpr, HAS_WINDOW: gl.constexpr,
                         SOFTCAP: gl.constexpr):
    dtype: gl.constexpr = q_desc.dtype
    num_m_tiles = n_ctx // BLOCK_M
    pid = gl.program_id(0)
    pair = pid // num_m_tiles
    tile = num_m_tiles - 1 - pid % num_m_tiles  # heaviest first within a pair
    off_b = pair // num_q_heads
    off_h = pair % num_q_heads
    num_kv_heads = num_q_heads // group_size
    start_m = tile * BLOCK_M
    q_row = pair * n_ctx + start_m  # rows of the 2-D [B*H*N, D] views
    # causal, square: keys [0, start_m + BLOCK_M); a window starts them at the tile holding
    # the first row's left edge (tiles wholly left of every row's window are skipped)
    first_tile = 0
    if HAS_WINDOW:
        first_tile = gl.maximum(start_m - win_left, 0) // BLOCK_N
    key0 = first_tile * BLOCK_N
    n_tiles = (start_m + BLOCK_M) // BLOCK_N - first_tile
    kv_row0 = (off_b * num_kv_heads + off_h // group_size) * n_ctx + key0

    q_smem = gl.allocate_shared_memory(dtype, [2, BLOCK_M // 2, HEAD_DIM], q_desc.layout)
    k_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], k_desc.layout)
    v_smem = gl.allocate_shared_memory(dtype, [STAGES, BLOCK_N, HEAD_DIM], v_desc.layout)
    q_bar = gl.allocate_shared_memory(gl.int64, [1], mbarrier.MBarrierLayout())
    k_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_ready = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    k_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    v_empty = gl.allocate_shared_memory(gl.int64, [STAGES, 1], mbarrier.MBarrierLayout())
    mbarrier.init(q_bar, count=1)
    for i in gl.static_range(STAGES):
        mbarrier.init(k_ready.index(i), count=1)
        mbarrier.init(v_ready.index(i), count=1)
        mbarrier.init(k_empty.index(i), count=2)  # one arrival per consumer warpgroup
        mbarrier.init(v_empty.index(i), count=2)

    gl.warp_specialize([
        (_consumer, (q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, out_ptr,
                     lse_ptr, sinks_ptr + off_h, q_row, start_m, key0, n_tiles, qk_scale,
                     win_left, softcap_in, softcap_out, 0, dtype, BLOCK_M, BLOCK_N,
                     HEAD_DIM, STAGES, WRITE_LSE, HAS_SINKS, HAS_WINDOW, SOFTCAP)),
        (_consumer, (q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, out_ptr,
                     lse_ptr, sinks_ptr + off_h, q_row, start_m, key0, n_tiles, qk_scale,
                     win_left, softcap_in, softcap_out, 1, dtype, BLOCK_M, BLOCK_N,
                     HEAD_DIM, STAGES, WRITE_LSE, HAS_SINKS, HAS_WINDOW, SOFTCAP)),
        (_loader, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready,
                   k_empty, v_empty, q_row, kv_row0, n_tiles, BLOCK_N, STAGES)),
    ], [4, 4], [232, 24])

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_ready.index(i))
        mbarrier.invalidate(v_ready.index(i))
        mbarrier.invalidate(k_empty.index(i))
        mbarrier.invalidate(v_empty.index(i))


def launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
           lse: torch.Tensor | None, sm_scale: float, sinks: torch.Tensor | None = None,
           window_left: int = -1, softcap: tuple = (0.0, 0.0)) -> None:
    """Causal attention: q/out [B, Hq, N, 128], k/v [B, Hkv, N, 128], contiguous, 16-bit,
    N a multiple of TILE_M (the caller checks: prefill._sm90_gluon_ok); lse [B, Hq, N]
    fp32 contiguous or None; sinks fp32 [Hq] (validated: finite or -inf) or None;
    window_left >= 0: row i sees keys [i - window_left, i] only (-1: unbounded; under
    causal a window's right side bounds nothing); softcap: (softcap_in, softcap_out) of
    kernels/mods.py ScoreMods.softcap_factors, logits softcap_out * tanh(q.k * softcap_in)
    in raw units with the hardware's tanh ((0.0, 0.0): none)."""
    assert TILE_N == TILE_M  # the edge-tile count in _consumer
    batch, num_q_heads, n, d = q.shape
    gdt = gl.float16 if q.dtype == torch.float16 else gl.bfloat16

    def desc(t, rows):  # the 2-D [B*H*N, D] view, boxes of rows x D
        layout = gl.NVMMASharedLayout.get_default_for([rows, d], gdt)
        flat = t.view(-1, d)
        return TensorDescriptor(flat, list(flat.shape), list(flat.stride()), [rows, d], layout)

    grid = (n // TILE_M * batch * num_q_heads, )
    _prefill_sm90_kernel[grid](
        desc(q, TILE_M // 2), desc(k, TILE_N), desc(v, TILE_N), out,
        lse if lse is not None else out, sinks if sinks is not None else out, n,
        # a left side >= N bounds nothing: clamped, it stays a 32-bit argument (a TMA
        # coordinate is derived from it)
        num_q_heads, num_q_heads // k.shape[1], sm_scale * LOG2E, min(max(window_left, 0), n),
        *softcap, BLOCK_M=TILE_M, BLOCK_N=TILE_N, HEAD_DIM=d, STAGES=RING,
        WRITE_LSE=lse is not None, HAS_SINKS=sinks is not None, HAS_WINDOW=window_left >= 0,
        SOFTCAP=softcap[1] > 0, num_warps=4)
