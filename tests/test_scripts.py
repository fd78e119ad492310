"""The repository's offline tools keep working as the kernels change."""

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
