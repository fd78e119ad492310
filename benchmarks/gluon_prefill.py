"""A prototype, not a kernel of the package: causal prefill for the long D128 config in Gluon,
written to overlap the softmax with the tensor cores through explicit asynchronous wgmma
and waits, which Triton's tl.dot does not give (benchmarks/NOTES.md, session 8).

    python -m benchmarks.gluon_prefill     # on a Hopper GPU: check against kernels.prefill,
                                           # then time both (A B A B)

Status (H200, session 8): correct (max |gluon - ours| 0 to 4.9e-4 fp16, 7.8e-3 bf16), and
22% slower than kernels.prefill at N4096 (1.297 against 1.060 ms; BLOCK_N 64: 1.48 ms).
The SASS shows why: ptxas still waits for the p v product before the exponentials
(`WARPGROUP.DEPBAR.LE gsb0, 0x0` ahead of them), so only the q.k of the next tile overlaps
anything. Next steps: a producer warp for the TMA loads (gl.warp_specialize, so no CTA
barrier runs in the consumers' loop), a deeper K/V ring, and the two consumer warpgroups
taking turns on the tensor cores (FlashAttention-3's ping-pong).

Scope: the fixed layout [B, H, N, D] (contiguous), causal, 16-bit, D = 128, N a multiple
of BLOCK_M, BLOCK_N dividing BLOCK_M, GQA. One program per (query tile, batch x head),
pair by pair, heaviest tile first, like kernels/prefill.py's full-length order. Hopper only
(wgmma, TMA); Gluon does not run under the interpreter. Step j of the key loop, with
p_j (operand form) and alpha_j ready:
  1. issue s_{j+1} = q k_{j+1}^T (asynchronous);
  2. rescale acc by alpha_j, issue acc += p_j v_j (asynchronous);
  3. wait until one wgmma is in flight: s_{j+1} is ready (wgmma groups complete in order);
     the softmax of s_{j+1} is meant to run while p_j v_j is on the tensor cores;
  4. wait for p_j v_j, convert p_{j+1} to the operand form (not before: an in-flight wgmma
     reads p_j's registers), load tile j + 2's K and V into tile j's buffers.
The diagonal tiles' mask is a compile-time choice per peeled step: a branch between an
asynchronous wgmma and its wait makes ptxas serialise every wgmma.
"""

from __future__ import annotations

import sys

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


@gluon.jit
def _load_tile(desc, row, bar, smem):
    mbarrier.expect(bar, desc.block_type.nbytes)
    tma.async_copy_global_to_shared(desc, [row, 0], bar, smem)


@gluon.jit
def _softmax_tile(s, m_i, l_i, start_n, offs_m, offs_n0, qk_scale,
                  dtype: gl.constexpr, p_layout: gl.constexpr, MASKED: gl.constexpr):
    """One key tile's online-softmax step on its raw scores s: (p, fp32, in the scores'
    layout; the rescale factor alpha; the new max and sum). MASKED is a
    compile-time choice: a branch between an asynchronous wgmma and its wait makes ptxas
    wait for every wgmma in flight."""
    if MASKED:  # the diagonal tile: key j is seen by rows i >= j
        keep = gl.expand_dims(start_n + offs_n0, 0) <= gl.expand_dims(offs_m, 1)
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
          v_empty, s_zero, offs_m, offs_n0, qk_scale, dtype: gl.constexpr,
          p_layout: gl.constexpr, row_o: gl.constexpr, BLOCK_N: gl.constexpr,
          STAGES: gl.constexpr, MASKED: gl.constexpr):
    """Key tile j's p v product and tile j + 1's scores and softmax (p_j, alpha_j ready)."""
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
    p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, nxt * BLOCK_N, offs_m, offs_n0, qk_scale,
                                       dtype, p_layout, MASKED)
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
def _consumer(q_all, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, out_ptr, q_row,
              start_m, n_tiles, qk_scale, HALF_INDEX: gl.constexpr, dtype: gl.constexpr,
              TILE_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
              STAGES: gl.constexpr):
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
    DIAG: gl.constexpr = TILE_M // BLOCK_N
    if n_tiles == DIAG:  # tile 0 is on the diagonal (no wgmma in flight: branching is fine)
        p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, 0, offs_m, offs_n0, qk_scale, dtype,
                                           p_layout, MASKED=True)
    else:
        p, alpha, m_i, l_i = _softmax_tile(s, m_i, l_i, 0, offs_m, offs_n0, qk_scale, dtype,
                                           p_layout, MASKED=False)
    p16 = _as_operand(p, dtype, p_layout)
    for j in range(n_tiles - DIAG - 1):  # step j computes tile j + 1's softmax: unmasked
        acc, p16, alpha, m_i, l_i = _step(
            j, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready, k_empty,
            v_empty, s_zero, offs_m, offs_n0, qk_scale, dtype, p_layout, row_o, BLOCK_N,
            STAGES, MASKED=False)
    for i in gl.static_range(DIAG):  # the steps into the diagonal tiles
        j = n_tiles - DIAG - 1 + i
        if j >= 0:
            acc, p16, alpha, m_i, l_i = _step(
                j, acc, p16, alpha, m_i, l_i, q_smem, k_smem, v_smem, k_ready, v_ready,
                k_empty, v_empty, s_zero, offs_m, offs_n0, qk_scale, dtype, p_layout, row_o,
                BLOCK_N, STAGES, MASKED=True)
    last = n_tiles - 1
    acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)
    mbarrier.wait(v_ready.index(last % STAGES), phase=(last // STAGES) & 1)
    acc = warpgroup_mma(p16, v_smem.index(last % STAGES), acc, is_async=True)
    acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc, ))

    out = acc / gl.expand_dims(gl.convert_layout(l_i, row_o), 1)
    rows = q_row + gl.arange(0, BLOCK_M, layout=row_o)
    cols = gl.arange(0, HEAD_DIM, layout=gl.SliceLayout(0, o_layout))
    ptrs = out_ptr + gl.expand_dims(rows.to(gl.int64) * HEAD_DIM, 1) + gl.expand_dims(cols, 0)
    gl.store(ptrs, out.to(dtype))


@gluon.jit
def _gluon_prefill_kernel(q_desc, k_desc, v_desc, out_ptr, n_ctx, num_q_heads, group_size,
                          qk_scale,
                          BLOCK_M: gl.constexpr, BLOCK_N: gl.constexpr, HEAD_DIM: gl.constexpr,
                          STAGES: gl.constexpr, num_warps: gl.constexpr):
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
    kv_row0 = (off_b * num_kv_heads + off_h // group_size) * n_ctx
    n_tiles = (start_m + BLOCK_M) // BLOCK_N  # causal, square: keys [0, start_m + BLOCK_M)

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
                     q_row, start_m, n_tiles, qk_scale, 0, dtype, BLOCK_M, BLOCK_N, HEAD_DIM,
                     STAGES)),
        (_consumer, (q_smem, k_smem, v_smem, q_bar, k_ready, v_ready, k_empty, v_empty, out_ptr,
                     q_row, start_m, n_tiles, qk_scale, 1, dtype, BLOCK_M, BLOCK_N, HEAD_DIM,
                     STAGES)),
        (_loader, (q_desc, k_desc, v_desc, q_smem, k_smem, v_smem, q_bar, k_ready, v_ready,
                   k_empty, v_empty, q_row, kv_row0, n_tiles, BLOCK_N, STAGES)),
    ], [4, 4], [232, 24])

    mbarrier.invalidate(q_bar)
    for i in gl.static_range(STAGES):
        mbarrier.invalidate(k_ready.index(i))
        mbarrier.invalidate(v_ready.index(i))
        mbarrier.invalidate(k_empty.index(i))
        mbarrier.invalidate(v_empty.index(i))


def gluon_prefill(q, k, v, block_m=128, block_n=128, stages=2):
    """Causal attention, q [B, Hq, N, D], k/v [B, Hkv, N, D], contiguous, 16-bit, D = 128."""
    batch, hq, n, d = q.shape
    hkv = k.shape[1]
    assert d == 128 and n % block_m == 0 and block_m % block_n == 0
    assert q.is_contiguous() and k.is_contiguous() and v.is_contiguous()
    gdt = gl.float16 if q.dtype == torch.float16 else gl.bfloat16
    out = torch.empty_like(q)

    def desc(t, rows):
        layout = gl.NVMMASharedLayout.get_default_for([rows, d], gdt)
        flat = t.view(-1, d)
        return TensorDescriptor(flat, list(flat.shape), list(flat.stride()), [rows, d], layout)

    grid = (n // block_m * batch * hq, )
    _gluon_prefill_kernel[grid](desc(q, block_m // 2), desc(k, block_n), desc(v, block_n), out, n,
                                hq, hq // hkv, d ** -0.5 * LOG2E, BLOCK_M=block_m,
                                BLOCK_N=block_n, HEAD_DIM=d, STAGES=stages, num_warps=4)
    return out


def main() -> int:
    import kernels

    from .timing import Timer, gpu_time_ms

    timer = Timer()
    torch.manual_seed(0)
    status = 0
    for batch, n in ((1, 512), (4, 4096), (1, 16384)):
        for dtype in (torch.float16, torch.bfloat16):
            q = torch.randn(batch, 32, n, 128, device="cuda", dtype=dtype)
            k = torch.randn(batch, 8, n, 128, device="cuda", dtype=dtype)
            v = torch.randn(batch, 8, n, 128, device="cuda", dtype=dtype)
            for block_n, stages in ((128, 2), (128, 3), (64, 4)):
                label = (f"B{batch} Hq32 Hkv8 N{n} D128 {str(dtype)[6:]} BLOCK_N {block_n} "
                         f"STAGES {stages}")
                try:
                    got = gluon_prefill(q, k, v, block_n=block_n, stages=stages)
                except Exception as exc:  # a prototype: report and go on
                    print(f"{label}: {type(exc).__name__}: {str(exc)[:2000]}", flush=True)
                    status = 1
                    continue
                ref = kernels.prefill(q, k, v)
                err = (got.float() - ref.float()).abs().max().item()
                ok = err < (2e-2 if dtype == torch.bfloat16 else 4e-3)
                line = f"{label}: max |gluon - ours| {err:.2e} {'ok' if ok else 'WRONG'}"
                if ok and n >= 4096:
                    ours_fn = lambda q=q, k=k, v=v: kernels.prefill(q, k, v)
                    gluon_fn = lambda q=q, k=k, v=v, bn=block_n, st=stages: gluon_prefill(
                        q, k, v, block_n=bn, stages=st)
                    times = [gpu_time_ms(fn, timer.warmup_ms, timer.rep_ms)
                             for fn in (ours_fn, gluon_fn) * 2]
                    line += (f"; ours {times[0]:.4f} / {times[2]:.4f} ms, gluon {times[1]:.4f}"
                             f" / {times[3]:.4f} ms")
                status |= not ok
                print(line, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
