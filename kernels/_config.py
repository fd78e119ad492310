"""Launch configurations: data, picked by a key; pinned through ``kernels/tuning.py``
(the one public tuning surface) for sweeps and tests.

No ``@triton.autotune``: it cannot run under the interpreter without a GPU, and a fixed
choice per key keeps results deterministic and test runs free of re-tuning.
The GPU tables were chosen by ``benchmarks/sweep.py`` on an H100 (see
benchmarks/NOTES.md); the interpreter uses small tiles so that tiny test shapes still
cross several tile boundaries.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import functools
import os
from dataclasses import dataclass

import torch

from .tuning import Config  # noqa: F401  (defined with the tuning surface)

# Triton reads TRITON_INTERPRET when a kernel is defined, at import: read it once then too
# (a later change of the variable cannot move the defined kernels).
_INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


# CUDA's grid limits: programs on axis x, and on axes y and z.
GRID_LIMIT = 2**31 - 1
GRID_YZ_LIMIT = 65535


def interpreting() -> bool:
    """Whether the kernels were defined under Triton's interpreter (CPU tensors)."""
    return _INTERPRETING


@functools.cache
def dummy(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A zero-size tensor (a null pointer) for a kernel pointer argument that the launch
    does not use. Always of the argument's own dtype: a stand-in of another dtype (or the
    query, as it once was) would make Triton compile one more variant per dtype and
    alignment it takes."""
    return torch.empty(0, device=device, dtype=dtype)


@functools.cache
def cc_major(device: torch.device) -> int:
    """The compute capability's major number (0 off CUDA); looked up once per device."""
    return torch.cuda.get_device_capability(device)[0] if device.type == "cuda" else 0


def nvidia_hopper(device: torch.device) -> bool:
    """An NVIDIA Hopper GPU (sm_90): what the Gluon prefill needs. A ROCm build's MI200
    also reports compute capability 9."""
    return device.type == "cuda" and torch.version.hip is None and cc_major(device) == 9


# Interpreter: 16 is the smallest tile tl.dot accepts.
INTERPRETER = Config(block_m=16, block_n=16, num_warps=1, num_stages=1)

# Prefill on Hopper, keyed by (HEAD_DIM_PAD, element bytes). Shared memory bounds the
# tile: Q tile + num_stages x (K tile + V tile) must fit in 228 KB. D64 and D128 fp16:
# best of a 36-config sweep on an H100 (benchmarks/NOTES.md, 2026-11-25); D64 re-measured
# with the one-loop kernel (v7): s2 0.250 ms vs s3 0.263 at the seed shape. D64 M64 N64
# s2 compiles to 108 registers (4 programs per SM by registers, 5 by shared memory); a
# cap of 96 lets the fifth in: 0.2365 ms vs 0.2463 at the seed (v9 A/B; a cap of 80
# spills: 1.46 ms).
PREFILL = {
    (16, 2): Config(64, 64, 4, 2),
    (32, 2): Config(64, 64, 4, 2),
    (64, 2): Config(64, 64, 4, 2, maxnreg=96),
    (128, 2): Config(64, 64, 4, 3),
    (256, 2): Config(64, 32, 4, 2),
    (16, 4): Config(64, 32, 4, 2),
    (32, 4): Config(64, 32, 4, 2),
    (64, 4): Config(64, 32, 4, 2),
    # fp32 (no tensor cores: exact IEEE products): a correctness path, not tuned. Configs
    # whose sm_90 compile shows ptxas's 32-register, 30+ KB-spill fallback are avoided:
    # (256, 4) at M32 N32 w4 s1 with WRITE_LSE gave wrong rows on an H100 (deterministic,
    # any other config right; tests/corpus/prefill_varlen-accuracy-dde7c50d3a.json,
    # scripts/repro_case.py), and (128, 4) at M64 N32 w4 s2 compiles the same way.
    (128, 4): Config(64, 32, 8, 2),
    (256, 4): Config(32, 16, 4, 1),
}

# Decode on Hopper, keyed by (HEAD_DIM_PAD, element bytes); block_m is unused there.
# D64: N32 w2 s3 was best at the seed shape; D128: N64 w4 s3 at the long context; D256
# (sparse seed): N16 w4 s3 (v7: sparse paged 24.4 us against 27.6 at N32, dense sparse
# 22.1 vs 22.2: more, shorter tiles let the pipeline overlap the index -> page -> row
# chain of loads).
DECODE = {
    (16, 2): Config(16, 32, 2, 3),
    (32, 2): Config(16, 32, 2, 3),
    (64, 2): Config(16, 32, 2, 3),
    (128, 2): Config(16, 64, 4, 3),
    (256, 2): Config(16, 16, 4, 3),
    (16, 4): Config(16, 32, 4, 2),
    (32, 4): Config(16, 32, 4, 2),
    (64, 4): Config(16, 32, 4, 2),
    (128, 4): Config(16, 32, 4, 2),
    (256, 4): Config(16, 16, 4, 2),
}

# Paged decode over an fp8 cache (no index lists), keyed like DECODE. Half the bytes per
# K/V row, so a 128-key tile carries what a 64-key fp16 tile does. D128, page 16, q fp16,
# H100, scripts/fp8_probe.py (benchmarks/NOTES.md, session 19): B32 N4096 131.4 us
# against 156.0 at N64 w4 s3 (the fp16 cache 189.2 us: 0.69x instead of 0.82x); B1 N65536
# 77.2 against 75.8 (split); w8 and 4 stages lose at both. Dense fp8 decode keeps DECODE
# (N128 106.4 us against 107.0 at B32: no gain). Sparse and other head dims: not measured.
DECODE_PAGED_FP8 = {
    (128, 2): Config(16, 128, 4, 3),
}
_DECODE_PAGED_FP8_ALL = {**DECODE, **DECODE_PAGED_FP8}

# Prefill's program order. The kernel walks the (batch, head) pairs in chunks of
# bh_per_chunk pairs, each chunk heaviest causal tiles first across its pairs. The host
# picks one of two orders:
#   all pairs in one chunk, when the call carries lengths (padded or packed var-len: they
#     may differ) and the K/V of the whole call fits in PREFILL_CHUNK_BYTES (L2-sized):
#     the long sequences' heavy tiles start first, the short ones fill the tail;
#   else one pair per chunk (each pair's tiles heaviest first, pair after pair: the order
#     before v13), which keeps the fewest pairs' K/V in L2 at a time.
# H200 (60 MB of L2), benchmarks/NOTES.md session 5: padded var-len seed 111.7 -> 103.5 us
# (probe v12), packed seed lengths 0.1084 -> 0.1018 ms (runs v12 -> v13); chunks of
# 40 MB over calls whose K/V does not fit lost: N16384 D128 3661 -> 3742 us (probe v13),
# packed 5 seqs T16384 D128 1.108 -> 1.154 ms (runs v12 -> v13); full-length seed 220.5
# vs 221.4 (probe v12, no gain).
PREFILL_CHUNK_BYTES = 40e6


def prefill_chunk_pairs(total_kv_bytes: float, num_pairs: int, lengths_vary: bool,
                        forced: int | None = None) -> int:
    """(batch, head) pairs per chunk of prefill's program order (see PREFILL_CHUNK_BYTES);
    forced: tuning.prefill_chunk_pairs."""
    if forced is not None:
        return max(1, min(num_pairs, forced))
    if lengths_vary and total_kv_bytes <= PREFILL_CHUNK_BYTES:
        return max(1, num_pairs)
    return 1


# Prefill's query tile per level (see the kernel). Counted from the longest length, level
# t is tile num_m_tiles - 1 - t of every pair: inside a chunk all tiles of a level weigh
# the same, so a chunk runs heaviest first (longest-processing-time order), but with
# lengths the tiles past a short sequence's end (empty programs) run among the first
# levels. Counted from each end (the kernel's tiles_from_end), level t is the t-th tile
# back from the pair's own last valid tile and the tiles past the length come after all of them.
# Rule: from each end only with lengths and one pair per chunk. There both orders keep
# the pair's valid tiles heaviest first, and only the empty tiles move (to the back).
# With many pairs per chunk, from each end breaks the chunk's heaviest-first order.
# H200, probe v16, A B A B (benchmarks/NOTES.md, session 7):
#   seed lengths, one chunk of all pairs: packed 102.2 / 102.2 us from the longest
#     against 105.2 / 105.2 from each end; padded 103.4 / 103.5 against 105.5 / 105.2;
#   packed 5 sequences T16384 Hq32 Hkv8 D128, one pair per chunk: 1140.6 / 1132.9
#     against 1120.4 / 1124.6.
def prefill_tiles_from_end(lengths_vary: bool, pairs_per_chunk: int,
                           forced: bool | None = None) -> bool:
    """Whether prefill counts query tiles from each sequence's end (see above); forced:
    tuning.prefill_tiles_from_end."""
    if forced is not None:
        return forced
    return lengths_vary and pairs_per_chunk == 1


# Programmatic dependent launch (sm_90 and later): decode's merge kernel is launched while
# the split kernel still runs; its programs wait (griddepcontrol.wait) for the split
# kernel's results, so the merge's launch latency hides behind the split kernel's tail.
def pdl(device: torch.device, enabled: bool = True) -> bool:
    """Whether decode launches its merge kernel as a programmatic dependent launch
    (enabled: tuning.pdl)."""
    return (enabled and not interpreting() and torch.version.hip is None
            and cc_major(device) >= 9)


@dataclass(frozen=True)
class SmLimits:
    """What one streaming multiprocessor holds (the CUDA occupancy calculator's inputs)."""
    sms: int
    threads: int = 2048
    registers: int = 65536
    shared_bytes: int = 233472  # Hopper: 228 KB
    blocks: int = 32
    reserved_shared: int = 1024  # per block, reserved by the driver (sm_80 and later)


@functools.cache
def sm_limits(device: torch.device) -> SmLimits:
    props = torch.cuda.get_device_properties(device)
    defaults = SmLimits(sms=props.multi_processor_count)
    return SmLimits(
        sms=props.multi_processor_count,
        threads=getattr(props, "max_threads_per_multi_processor", defaults.threads),
        registers=getattr(props, "regs_per_multiprocessor", defaults.registers),
        shared_bytes=getattr(props, "shared_memory_per_multiprocessor", defaults.shared_bytes))


def programs_per_sm(num_warps: int, registers: int, shared_bytes: int,
                    limits: SmLimits) -> int:
    """How many programs of a kernel one SM runs at once: the least of the thread, register
    (allocated per warp in units of 256) and shared-memory limits, at least 1."""
    regs_per_warp = -(-max(registers, 1) * 32 // 256) * 256
    by_regs = limits.registers // regs_per_warp // num_warps
    by_threads = limits.threads // (32 * num_warps)
    by_shared = limits.shared_bytes // (shared_bytes + limits.reserved_shared)
    return max(1, min(by_regs, by_threads, by_shared, limits.blocks))


# Long sequences (query length >= LONG_PREFILL) at D128, 16-bit: larger tiles amortise
# each program's prologue and epilogue over more key tiles. Sweep 4 (TMA loads):
# M128 N128 w8 s3 3.948 ms vs M64 N64 w4 s3 4.388 at N16384; 1.288 vs 1.273 at N4096.
# Since the vectorised output stores (v10) the long config also wins at N4096: 1.044,
# 1.041, 1.040 ms vs 1.103, 1.108, 1.109 in three sweeps on one H100 (sweep-v10-n4096*),
# so the threshold moved from 8192 to 4096.
LONG_PREFILL = 4096
PREFILL_LONG = {(128, 2): Config(128, 128, 8, 3)}


# Causal prefill through the Gluon kernel (kernels/prefill_sm90.py) on Hopper, where the
# shape allows it (prefill._sm90_gluon_ok). H200, session 8 (benchmarks/NOTES.md): N4096
# D128 fp16 0.989 ms against the Triton kernel's 1.055, N16384 3.38 against 3.77. Measured
# only from LONG_PREFILL on, so the default (tuning.prefill_gluon None) takes it there.


def _pick(table: dict, head_dim_pad: int, dtype: torch.dtype, forced: Config | None) -> Config:
    if forced is not None:
        return forced
    if interpreting():
        return INTERPRETER
    return table[(head_dim_pad, dtype.itemsize)]


def prefill_config(head_dim_pad: int, dtype: torch.dtype, causal: bool,
                   max_q: int = 0, hopper: bool = True, forced: Config | None = None) -> Config:
    """hopper: the GPU has Hopper's 228 KB of shared memory per SM, which the long
    config's M128 N128 x 3 stages needs (other GPUs keep the PREFILL table); forced:
    tuning.prefill_config."""
    del causal  # same table for both today; kept in the key for the sweep
    table = {**PREFILL, **PREFILL_LONG} if max_q >= LONG_PREFILL and hopper else PREFILL
    return _pick(table, head_dim_pad, dtype, forced)


# Paged prefill (kernels/paged_prefill.py): the tile's M side packs query tokens x the
# query heads of one KV head, so its height follows rows = max_seqlen_q x group size:
# decode rows and speculative verification take decode's tile (16 rows), chunks the
# prefill-sized ones. Keyed by (M, HEAD_DIM_PAD, element bytes). D128 fp16, H200
# (benchmarks/NOTES.md, session 12), after the page lookup moved one tile ahead: M16
# decode's N64 w4 s3, 148.4 us at q_len 4 x 32 sequences on 4096 (N128 s2 152.4); M128
# N128 w8 s3, 902.1 us at 8 x 512 new tokens on 4096 cached (s2 987.8; M64 N64 w4 s3
# 1048.4), 1783.5 at a fresh 4 x 4096. Other head dims: the same shapes, not measured.
PAGED_PREFILL = {
    **{(16, d, 2): c for (d, _), c in DECODE.items() if _ == 2},
    **{(16, d, 4): c for (d, _), c in DECODE.items() if _ == 4},
    (64, 16, 2): Config(64, 64, 4, 3), (64, 32, 2): Config(64, 64, 4, 3),
    (64, 64, 2): Config(64, 64, 4, 3), (64, 128, 2): Config(64, 64, 4, 3),
    (64, 256, 2): Config(64, 32, 4, 2),
    (128, 16, 2): Config(128, 128, 8, 3), (128, 32, 2): Config(128, 128, 8, 3),
    (128, 64, 2): Config(128, 128, 8, 3), (128, 128, 2): Config(128, 128, 8, 3),
    (128, 256, 2): Config(64, 32, 4, 2),  # M128 x D256 does not fit: 64 rows
    # fp32 (no tensor cores): a correctness path, at most 64 rows
    **{(m, d, 4): Config(64, 32 if d <= 128 else 16, 4, 2)
       for m in (64, 128) for d in (16, 32, 64, 128, 256)},
}


def paged_prefill_config(head_dim_pad: int, dtype: torch.dtype, rows: int,
                         hopper: bool = True, forced: Config | None = None) -> Config:
    """rows: max_seqlen_q x group size, the M extent one sequence's tile could fill;
    hopper: 228 KB of shared memory per SM, which M128 N128 x 3 stages needs (else at
    most 64 rows); forced: tuning.paged_prefill_config."""
    if forced is not None:
        return forced
    if interpreting():
        return INTERPRETER
    m = 16 if rows <= 16 else 64 if rows <= 64 or not hopper else 128
    return PAGED_PREFILL[(m, head_dim_pad, dtype.itemsize)]


def decode_config(head_dim_pad: int, dtype: torch.dtype, forced: Config | None = None, *,
                  paged_fp8: bool = False) -> Config:
    """forced: tuning.decode_config; paged_fp8: a paged cache of 1-byte (fp8) elements,
    no index lists (DECODE_PAGED_FP8)."""
    return _pick(_DECODE_PAGED_FP8_ALL if paged_fp8 else DECODE, head_dim_pad, dtype, forced)
