"""Kernel variants: what a call compiles (tests/compile_record.py, tests/precompile.py).

Switches that only change a kernel's prologue or epilogue (LSE, lengths, sinks, the
split count, a decode window, the program order) are runtime arguments: a call that
differs only in them must reuse the variant compiled for the others. Under the
interpreter nothing compiles, so the variant is the key Triton would compile for
(compile_record._interpreter_key: constexprs, specialisation of the other arguments,
launch options).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from triton.runtime.interpreter import InterpretedFunction

import attention_kernel_triton as akt
from attention_kernel_triton import tuning
from tests import compile_record, precompile

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def variants(monkeypatch):
    """{kernel name: set of variant keys} of the launches made while the fixture is live;
    the kernels still run. Interpreter only: on a GPU, Triton's hook sees compiles, not
    launches, and a worker has compiled most variants before (test_record_then_count and
    `tests.precompile --count` cover the GPU's recording)."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("launch keys are read from the interpreter (see the fixture's doc)")
    seen = {}
    run = InterpretedFunction.run

    def spy(self, *args, grid, warmup, **kwargs):
        key = compile_record._interpreter_key(self.fn, self.kwargs, args, kwargs)
        seen.setdefault(key["name"], set()).add(json.dumps(key, sort_keys=True))
        return run(self, *args, grid=grid, warmup=warmup, **kwargs)

    monkeypatch.setattr(InterpretedFunction, "run", spy)
    return seen


def _decode_inputs(device, batch=2, hq=4, hkv=2, n=24, d=16):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(batch, hq, d, generator=g).half().to(device)
    k = torch.randn(batch, hkv, n, d, generator=g).half().to(device)
    v = torch.randn(batch, hkv, n, d, generator=g).half().to(device)
    return q, k, v


def test_decode_runtime_switches_share_one_variant(device, variants):
    # 40 keys: the interpreter's default split count is 3 (tiles of 16); the merge's tile
    # (decode.merge_tile) is 16 for it and for the explicit 2, 4 and 9 below
    q, k, v = _decode_inputs(device, n=40)
    lens = torch.tensor([5, 40], dtype=torch.int32, device=device)
    sinks = torch.zeros(q.shape[1], device=device)
    calls = [dict(), dict(return_lse=True), dict(seq_lens=lens), dict(sinks=sinks),
             dict(window=(7, 0)), dict(num_splits=1), dict(num_splits=2), dict(num_splits=9),
             dict(num_splits=4, return_lse=True, seq_lens=lens, sinks=sinks, window=(3, 0))]
    for kw in calls:
        akt.decode(q, k, v, **kw)
    assert len(variants["_decode_kernel"]) == 1, sorted(variants["_decode_kernel"])
    # with or without the LSE, any split count from 2 to 16
    assert len(variants["_combine_kernel"]) == 1, sorted(variants["_combine_kernel"])


def test_decode_loop_switches_are_variants(device, variants):
    """Soft-cap and ALiBi change the key loop: each is its own variant (the check above
    would pass vacuously if the spy saw no constexpr at all)."""
    q, k, v = _decode_inputs(device)
    akt.decode(q, k, v)
    akt.decode(q, k, v, softcap=5.0)
    akt.decode(q, k, v, alibi_slopes=torch.full((q.shape[1],), 0.5, device=device))
    assert len(variants["_decode_kernel"]) == 3


def test_prefill_runtime_switches_share_one_variant(device, variants):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 2, 20, 16, generator=g).half().to(device) for _ in range(3))
    sinks = torch.zeros(2, device=device)
    akt.prefill(q, k, v, causal=True)
    akt.prefill(q, k, v, causal=True, return_lse=True)
    akt.prefill(q, k, v, causal=True, sinks=sinks)
    for order in (False, True):
        with tuning.override(prefill_tiles_from_end=order, prefill_3d_grid=order):
            akt.prefill(q, k, v, causal=True)
    assert len(variants["_prefill_kernel"]) == 1, sorted(variants["_prefill_kernel"])


def test_record_then_count(tmp_path):
    """A recording run (KERNEL_RECORD_DIR) writes one row per launch and runs nothing;
    --count tallies it per kernel."""
    env = {**os.environ, "KERNEL_RECORD_DIR": str(tmp_path), "HYPOTHESIS_MAX_EXAMPLES": "3"}
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--hypothesis-seed=0", "tests/test_decode.py::test_decode"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = precompile._load(str(tmp_path))
    assert rows and {r["name"] for r in rows} >= {"_decode_kernel"}
    text = precompile.count(str(tmp_path))
    assert "_decode_kernel:" in text and "distinct variants" in text
    fewer = precompile.count(str(tmp_path), without=("c:HEAD_DIM_PAD",))
    n = lambda t: int(t.split(" distinct")[0])  # noqa: E731
    assert n(fewer) <= n(text)


def test_precompile_wants_a_pinned_seed():
    with pytest.raises(SystemExit):
        precompile.main(["--", "tests/test_decode.py"])
