"""The repository's offline tools keep working as the kernels change."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["decode"], ["prefill", "--lens"],
                                  ["paged-prefill", "--fp8"]],
                         ids=["decode", "padded-prefill", "paged-prefill-fp8"])
def test_sm90_report_compiles_for_hopper(args):
    """scripts/sm90_report.py compiles a kernel variant for sm_90 without a GPU and reports
    registers, shared memory and programs per SM (1 to 32): the decode split kernel,
    prefill's padded var-len variant and paged prefill on an fp8 cache (every constexpr of
    the kernel given: a new one left out would compile as a runtime argument, a variant
    the GPU never runs)."""
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "sm90_report.py"), *args],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r"shared_bytes (\d+), registers (\d+), .* per_sm (\d+)", run.stdout)
    assert found, run.stdout
    shared, registers, per_sm = (int(x) for x in found.groups())
    assert shared > 0 and 0 < registers <= 255 and 1 <= per_sm <= 32


_SM80 = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("r", "scripts/sm90_report.py")
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
from triton.backends.compiler import GPUTarget
m.SM90 = GPUTarget("cuda", 80, 32)  # triton.compile assembles for sm_80 (ptxas)
signature = m._signature
m._signature = lambda fn, values, consts, source_cls=m.ASTSource: signature(
    fn, values, {**consts, "PDL_OK": False}, source_cls)  # what pdl() says below sm_90
m.report = lambda source, cfg, sass=False: {
    "cubin_bytes": len(m.triton.compile(source, target=m.SM90).asm["cubin"]), "per_sm": 1}
m.main([sys.argv[1]])
"""


@pytest.mark.parametrize("family", ["decode", "paged-prefill"])
def test_split_kernels_compile_below_sm90(family):
    """The split kernels compile for sm_80 (A100): their programmatic-dependent-launch
    signal (griddepcontrol, sm_90+) sits behind the per-device constexpr PDL_OK. Behind a
    runtime flag alone it was in every build, and ptxas rejects it below sm_90."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, "-c", _SM80, family], capture_output=True,
                         text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert re.search(r"cubin_bytes [1-9]\d*", run.stdout), run.stdout


_SOFTCAP_MODES = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from attention_kernel_triton.kernels import _jit, mods

@triton.jit
def scores(x_ptr, SOFTCAP: tl.constexpr):
    o = tl.arange(0, 16)
    s = tl.load(x_ptr + o[:, None] * 16 + o[None, :])
    s = _jit.modded_scores(s, o, o, o.to(tl.float32), 0.5, 2.0, 1.0, SOFTCAP, True)
    tl.store(x_ptr + o[:, None] * 16 + o[None, :], s)

for mode in (mods.SOFTCAP_FP32, mods.SOFTCAP_FAST):
    src = ASTSource(scores, signature={"x_ptr": "*fp32", "SOFTCAP": "constexpr"},
                    constexprs={"SOFTCAP": mode})
    ptx = triton.compile(src, target=GPUTarget("cuda", 90, 128)).asm["ptx"]
    print(mode, "tanh.approx.f32" in ptx)
"""


def test_softcap_tanh_modes_compile_for_hopper(tmp_path):
    """Both soft-cap tanh helpers compile for sm_90, and only the fast one emits the
    hardware tanh. The CPU suite runs the kernels under the interpreter, which accepts
    code the compiler rejects (session 19: a tl.PropagateNan held in a local variable ran
    on the CPU and failed every soft-cap compile on the GPU)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = tmp_path / "softcap_modes.py"  # @triton.jit needs its source in a file
    script.write_text(_SOFTCAP_MODES)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    run = subprocess.run([sys.executable, str(script)], capture_output=True,
                         text=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["1", "False", "2", "True"], run.stdout


def test_junit_report_names_unfinished_and_failed_tests(tmp_path):
    """scripts/junit_report.py (what scripts/gpu_run.sh prints after a GPU run): outcomes
    by kind, and the collected tests that a run stopped at its limit never reported (the
    XML of an interrupted run also holds a test case without a name: not a test)."""
    junit = tmp_path / "j.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase file="tests/test_a.py" name="test_x[accuracy]" time="3.5"/>'
        '<testcase file="tests/test_a.py" name="test_y" time="1.0"><failure/></testcase>'
        '<testcase file="tests/test_b.py" name="test_z" time="0.1"><skipped/></testcase>'
        '<testcase classname="" time="0.0"/>'
        '</testsuite></testsuites>')
    ids = tmp_path / "ids.txt"
    ids.write_text("tests/test_a.py::test_x[accuracy]\ntests/test_a.py::test_y\n"
                   "tests/test_b.py::test_z\ntests/test_b.py::test_w[finite]\n"
                   "\n4 tests collected\n")
    owed = tmp_path / "owed.txt"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "junit_report.py"), str(junit),
                          "--collected", str(ids), "--owed", str(owed)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert owed.read_text() == "tests/test_b.py::test_w[finite]\n"  # gpu_run.sh TESTS_FROM
    out = run.stdout
    assert "outcomes: 1 failed, 1 passed, 1 skipped" in out
    assert "failed or errored:\n  tests/test_a.py::test_y" in out
    assert out.rstrip().endswith("collected 4, reported 3, not finished 1:\n"
                                 "  tests/test_b.py::test_w[finite]")
    assert re.search(r"4\.5\s+tests/test_a\.py", out)  # seconds summed per file


@pytest.mark.parametrize("cell", [("paged_prefill", "softcap", "1", "40", "2", "base"),
                                  ("paged_prefill", "window", "2", "16", "1", "empty_seq")])
def test_flashinfer_crash_repro_cell_checks_its_calls(cell):
    """scripts/flashinfer_crash_repro.py's cell (its case, the adapter call, a second call
    on the first sequence, the float64 comparison; a shape with an empty sequence), run
    on our own adapter under the interpreter: ok. FlashInfer itself needs CUDA; without
    it a cell says why."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    script = str(ROOT / "scripts" / "flashinfer_crash_repro.py")
    run = subprocess.run([sys.executable, script, "one", *cell, "triton"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "ok", run.stdout
    import torch

    if not torch.cuda.is_available():
        run = subprocess.run([sys.executable, script, "one", *cell], env=env,
                             capture_output=True, text=True, timeout=300)
        assert run.stdout.strip().startswith("unavailable: needs a CUDA device"), run.stdout


def test_every_mutant_quotes_its_source_once():
    """tests/mutants.py plants each bug by replacing one exact snippet: a snippet the
    source no longer holds (a "stale" mutant, skipped by the mutation run) tests nothing.
    Session 26 found softcap_on_raw_scores stale since 0f6135a reworded its line."""
    from tests.mutants import MUTANTS, snippet_count

    counts = {m.name: snippet_count(m) for m in MUTANTS}
    assert {n: c for n, c in counts.items() if c != 1} == {}
    assert len({m.name for m in MUTANTS}) == len(MUTANTS), "two mutants share a name"
