"""Compile a kernel variant for sm_90 on this machine (no GPU needed) and report what
decides its occupancy: shared memory, ptxas registers and spills, programs per SM.

    python scripts/sm90_report.py decode  [--head-dim 128] [--paged] [--indices] [--fp8]
                                          [config]
    python scripts/sm90_report.py prefill [--head-dim 64] [--lens | --varlen] [--pointer]
                                          [config]
    python scripts/sm90_report.py prefill-sm90   # the Gluon kernel (kernels/prefill_sm90.py)
    python scripts/sm90_report.py paged-prefill [--head-dim 64] [--fp8] [config]
    config: --block-m BM --block-n BN --warps W --stages S --maxnreg R (each defaults to
            the tuned table's choice for fp16 on Hopper)

Triton compiles to PTX, and the ptxas Triton uses for sm_90 assembles it (-v) for sm_90a.
The figures in kernels/decode.py's split rule and tests/test_decode.py come from this
with triton 3.6.0, the device image's (benchmarks/NOTES.md, session 6): dense decode D128
94 registers, 70 KB, 3 per SM. Other Triton versions give other figures (3.9.0: 76
registers, the same 3 per SM); the kernels query their own at run time.
With --sass the SASS is written to sm90_report.sass (spills: look for LDL/STL in loops).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["TRITON_INTERPRET"] = "0"  # compile for real (conftest-like callers may set 1)

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import get_ptxas  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402
from triton.runtime.jit import mangle_type  # noqa: E402
from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: E402

from attention_kernel_triton.kernels import _config, mods  # noqa: E402

SM90 = GPUTarget("cuda", 90, 128)
H100 = _config.SmLimits(sms=132)
# The attention variants (kernels/mods.py), all off: the kernels' plain build. Sinks (and
# decode's window) are runtime switches, the same build either way; the rest constexprs.
VARIANTS = dict(window=False, softcap=False, sinks=False, alibi=False)


def _variant_consts(window: bool) -> dict:
    """The variants' constexprs of a kernel (window: whether it has HAS_WINDOW)."""
    consts = dict(SOFTCAP=mods.SOFTCAP_FAST if VARIANTS["softcap"] else mods.SOFTCAP_OFF,
                  ALIBI=VARIANTS["alibi"])  # fp16 kernels: the fast tanh
    return {**consts, "HAS_WINDOW": VARIANTS["window"]} if window else consts
_FP32_ARGS = ("qk_scale", "softcap_in", "softcap_out", "alibi_scale")


def _signature(fn, values: dict, consts: dict, source_cls=ASTSource) -> ASTSource:
    """values: sample arguments (tensors, descriptors) whose types name the signature;
    every other non-constexpr argument is an int32 (_FP32_ARGS fp32). source_cls: ASTSource
    for @triton.jit, GluonASTSource for @gluon.jit."""
    missing = [p.name for p in fn.params if p.is_constexpr and p.name not in consts]
    if missing:  # it would compile as a runtime argument: a variant no launch builds
        raise ValueError(f"{fn.__name__}: no value for constexpr(s) {', '.join(missing)}")
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in consts:
            sig[name] = "constexpr"
        elif name in values:
            sig[name] = mangle_type(values[name])
            if isinstance(values[name], torch.Tensor):
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            sig[name] = "fp32" if name in _FP32_ARGS else "i32"
    return source_cls(fn, sig, constexprs={(fn.arg_names.index(k),): v
                                           for k, v in consts.items()}, attrs=attrs)


def _kv_sample(args) -> torch.Tensor:
    """A K/V pointer's type: fp16, or with --fp8 an e4m3fn cache (k_scale / v_scale)."""
    return torch.zeros(16, dtype=torch.float8_e4m3fn if args.fp8 else torch.float16)


def decode_source(args, cfg: _config.Config) -> ASTSource:
    mod = importlib.import_module("attention_kernel_triton.kernels.decode")
    half, i32 = torch.zeros(16, dtype=torch.float16), torch.zeros(16, dtype=torch.int32)
    f32 = torch.zeros(16, dtype=torch.float32)
    kv = _kv_sample(args)
    values = dict(q_ptr=half, k_ptr=kv, v_ptr=kv, block_table_ptr=i32, seq_lens_ptr=i32,
                  indices_ptr=i32, k_scale_ptr=f32, v_scale_ptr=f32, sinks_ptr=f32,
                  alibi_ptr=f32, out_ptr=half, lse_ptr=f32, part_out_ptr=f32, part_lse_ptr=f32)
    consts = dict(IS_PAGED=args.paged, HAS_INDICES=args.indices, HAS_SCALES=args.fp8,
                  BLOCK_H=16, BLOCK_N=cfg.block_n, HEAD_DIM_PAD=args.head_dim, EVEN_D=True,
                  FP32=False, ALIGNED=True, PDL_OK=True, stride_idx_k=1,
                  **_variant_consts(window=False))
    return _signature(mod._decode_kernel, values, consts)


def prefill_source(args, cfg: _config.Config) -> ASTSource:
    mod = importlib.import_module("attention_kernel_triton.kernels.prefill")
    d = args.head_dim
    half = torch.zeros(1, 1, 256, d, dtype=torch.float16)
    use_tma = not args.pointer
    q_desc = TensorDescriptor.from_tensor(half, [1, 1, cfg.block_m, d]) if use_tma else half
    kv_desc = TensorDescriptor.from_tensor(half, [1, 1, cfg.block_n, d]) if use_tma else half
    lens = torch.zeros(2, dtype=torch.int32)
    values = dict(q_ptr=half, k_ptr=half, v_ptr=half, q_desc=q_desc, k_desc=kv_desc,
                  v_desc=kv_desc, out_ptr=half, lse_ptr=torch.zeros(1, dtype=torch.float32),
                  q_lens_ptr=lens, kv_lens_ptr=lens, sinks_ptr=torch.zeros(1, dtype=torch.float32),
                  alibi_ptr=torch.zeros(1, dtype=torch.float32))
    consts = dict(IS_CAUSAL=True, HAS_LENS=args.lens, IS_VARLEN=args.varlen,
                  HEAD_DIM_PAD=d, EVEN_D=True, BLOCK_M=cfg.block_m,
                  BLOCK_N=cfg.block_n, FP32=False, ALIGNED=True, USE_TMA=use_tma,
                  **_variant_consts(window=True))
    return _signature(mod._prefill_kernel, values, consts)


def paged_prefill_source(args, cfg: _config.Config) -> ASTSource:
    mod = importlib.import_module("attention_kernel_triton.kernels.paged_prefill")
    half, i32 = torch.zeros(16, dtype=torch.float16), torch.zeros(16, dtype=torch.int32)
    f32 = torch.zeros(16, dtype=torch.float32)
    kv = _kv_sample(args)
    values = dict(q_ptr=half, k_ptr=kv, v_ptr=kv, block_table_ptr=i32, cu_q_ptr=i32,
                  seq_lens_ptr=i32, k_scale_ptr=f32, v_scale_ptr=f32, sinks_ptr=f32,
                  alibi_ptr=f32, out_ptr=half, lse_ptr=f32, part_out_ptr=f32, part_lse_ptr=f32)
    consts = dict(IS_CAUSAL=True, HAS_SCALES=args.fp8, ONE_TILE=False, BLOCK_M=cfg.block_m,
                  BLOCK_N=cfg.block_n, HEAD_DIM_PAD=args.head_dim, EVEN_D=True, FP32=False,
                  ALIGNED=True, PDL_OK=True, **_variant_consts(window=True))
    return _signature(mod._paged_prefill_kernel, values, consts)


def report(source: ASTSource, cfg: _config.Config, sass: bool = False) -> dict:
    options = {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}
    if cfg.maxnreg is not None:
        options["maxnreg"] = cfg.maxnreg
    compiled = triton.compile(source, target=SM90, options=options)
    result = _ptxas(compiled, cfg.maxnreg, sass)
    result["per_sm"] = _config.programs_per_sm(cfg.num_warps, result["registers"],
                                               result["shared_bytes"], H100)
    return result


def _ptxas(compiled, maxnreg: int | None, sass: bool) -> dict:
    """Assemble the compiled PTX with the ptxas Triton uses for sm_90 (it varies by
    version) and read its figures. wgmma_serialised: ptxas's C7513/C7514 warnings, which
    say it waits for every wgmma at once (registers an in-flight wgmma uses are touched)."""
    ptxas = Path(get_ptxas(90).path)
    with tempfile.TemporaryDirectory() as tmp:
        ptx, cubin = Path(tmp) / "k.ptx", Path(tmp) / "k.cubin"
        ptx.write_text(compiled.asm["ptx"])
        cmd = [str(ptxas), "-arch=sm_90a", "-v", str(ptx), "-o", str(cubin)]
        if maxnreg is not None:
            cmd.insert(1, f"--maxrregcount={maxnreg}")
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        if sass:
            dump = subprocess.run([str(ptxas.with_name("cuobjdump")), "-sass", str(cubin)],
                                  capture_output=True, text=True, check=True).stdout
            Path("sm90_report.sass").write_text(dump)
            Path("sm90_report.ptx").write_text(compiled.asm["ptx"])
    number = lambda pattern: int(re.search(pattern, log).group(1))
    return {"shared_bytes": compiled.metadata.shared,
            "registers": number(r"Used (\d+) registers"),
            "spill_stores": number(r"(\d+) bytes spill stores"),
            "spill_loads": number(r"(\d+) bytes spill loads"),
            "wgmma_serialised": bool(re.search(r"C751[34]", log))}


def prefill_sm90_report(sass: bool = False) -> dict:
    """kernels/prefill_sm90.py (Gluon), as prefill launches it (fp16, D 128, with LSE).
    Registers are the launch's per-thread maximum; the partitions then resize with
    setmaxnreg (loader 24). One program per SM by shared memory."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon._runtime import GluonASTSource
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor as GluonDescriptor

    mod = importlib.import_module("attention_kernel_triton.kernels.prefill_sm90")
    fn = mod._prefill_sm90_kernel
    rows = torch.zeros(4096, 128, dtype=torch.float16)

    def desc(box):
        layout = gl.NVMMASharedLayout.get_default_for([box, 128], gl.float16)
        return GluonDescriptor(rows, [4096, 128], [128, 1], [box, 128], layout)

    values = dict(q_desc=desc(mod.TILE_M // 2), k_desc=desc(mod.TILE_N),
                  v_desc=desc(mod.TILE_N), out_ptr=rows,
                  lse_ptr=torch.zeros(1, dtype=torch.float32),
                  sinks_ptr=torch.zeros(1, dtype=torch.float32))
    consts = dict(BLOCK_M=mod.TILE_M, BLOCK_N=mod.TILE_N, HEAD_DIM=128, STAGES=mod.RING,
                  WRITE_LSE=True, HAS_SINKS=VARIANTS["sinks"], HAS_WINDOW=VARIANTS["window"],
                  SOFTCAP=VARIANTS["softcap"])
    source = _signature(fn, values, consts, source_cls=GluonASTSource)
    return _ptxas(triton.compile(source, target=SM90, options={"num_warps": 4}), None, sass)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=["decode", "prefill", "prefill-sm90", "paged-prefill"])
    ap.add_argument("--head-dim", type=int, default=None)
    ap.add_argument("--paged", action="store_true", help="decode: paged cache")
    ap.add_argument("--indices", action="store_true", help="decode: sparse (index lists)")
    ap.add_argument("--lens", action="store_true", help="prefill: padded var-len")
    ap.add_argument("--varlen", action="store_true", help="prefill: packed var-len")
    ap.add_argument("--pointer", action="store_true", help="prefill: pointer loads, no TMA")
    ap.add_argument("--long", action="store_true", help="prefill: the long-sequence table")
    ap.add_argument("--fp8", action="store_true",
                    help="decode, paged-prefill: e4m3fn K/V with k_scale / v_scale")
    for name in ("block-m", "block-n", "warps", "stages", "maxnreg"):
        ap.add_argument(f"--{name}", type=int, default=None)
    ap.add_argument("--variants", default="",
                    help="comma-separated variant switches to turn on: window, softcap, "
                         "sinks, alibi (kernels/mods.py)")
    ap.add_argument("--sass", action="store_true", help="write sm90_report.sass")
    args = ap.parse_args(argv)
    for name in filter(None, args.variants.split(",")):
        if name not in VARIANTS:
            ap.error(f"--variants: {name!r} is not one of {', '.join(VARIANTS)}")
        VARIANTS[name] = True  # read by the *_source builders below
    if args.family == "prefill-sm90":  # the Gluon kernel: its own fixed tiles
        result = prefill_sm90_report(sass=args.sass)
        print("prefill-sm90 D128 (Gluon): " + ", ".join(f"{k} {v}" for k, v in result.items()))
        return 0
    if args.head_dim is None:
        args.head_dim = 128 if args.family == "decode" else 64
    if args.family == "decode":
        cfg = _config.decode_config(args.head_dim, torch.float16, paged_fp8=args.paged
                                    and args.fp8 and not args.indices)
    elif args.family == "paged-prefill":  # rows: a chunk's (M128 unless --block-m)
        cfg = _config.paged_prefill_config(args.head_dim, torch.float16, 1 << 20)
    else:
        max_q = _config.LONG_PREFILL if args.long else 0
        cfg = _config.prefill_config(args.head_dim, torch.float16, True, max_q)
        if args.pointer:  # the launcher drops the register cap off the TMA path
            cfg = _config.Config(cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages)
    cfg = _config.Config(args.block_m or cfg.block_m, args.block_n or cfg.block_n,
                         args.warps or cfg.num_warps, args.stages or cfg.num_stages,
                         args.maxnreg if args.maxnreg is not None else cfg.maxnreg)
    source = {"decode": decode_source, "prefill": prefill_source,
              "paged-prefill": paged_prefill_source}[args.family](args, cfg)
    result = report(source, cfg, sass=args.sass)
    flags = [f for f in ("paged", "indices", "lens", "varlen", "pointer", "long", "fp8")
             if getattr(args, f)] + ([args.variants] if args.variants else [])
    print(f"{args.family} D{args.head_dim} {' '.join(flags)} {cfg}: " + ", ".join(
        f"{k} {v}" for k, v in result.items()) + f" (of 132 SMs: {132 * result['per_sm']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
