"""The fp8-KV benchmark cases (benchmarks/cases.py, ``fp8_cases``): their selection with
--kv, absolute (ms) targets in the report, and tiny fp8 problems of each family run
through the benchmark runner with a fake timer: "ours" on the fp8 cache and ours on the
fp16 cache it came from both pass their fp64 checks. On CPU the kernels run under
Triton's interpreter (conftest sets it)."""

import time

import pytest
import torch

from benchmarks import cases, runner
from benchmarks.cases import Target
from benchmarks.report import targets_table

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_kv_selection():
    every = cases.select_cases(cases.FAMILIES, quick=False)
    fp8 = cases.select_cases(cases.FAMILIES, quick=False, kv="fp8")
    plain = cases.select_cases(cases.FAMILIES, quick=False, kv="plain")
    assert fp8 and all(c.kv_dtype in cases.FP8_NAMES for c, _ in fp8)
    assert all(c.kv_dtype is None for c, _ in plain)
    assert len(fp8) + len(plain) == len(every)
    assert {c.family for c, _ in fp8} == {"decode", "paged_decode", "sparse_decode",
                                          "paged_prefill"}
    assert all(t.peers == ("ours-fp16",) or t.absolute for c, _ in fp8 for t in c.targets)
    with pytest.raises(ValueError, match="kv must be one of"):
        cases.select_cases(cases.FAMILIES, quick=False, kv="fp4")


def _rec(impl, ms, again=None):
    return {"kernel": "sparse_decode", "case": "c", "dtype": "fp16", "impl": impl,
            "status": "ok", "ms": ms, "ms_again": again}


@pytest.mark.parametrize(("ms", "again", "met"), [(0.010, 0.0105, "yes"),
                                                   (0.010, 0.012, "borderline"),
                                                   (0.012, None, "no")])
def test_absolute_target_reads_ours_own_time(ms, again, met):
    targets = {("sparse_decode", "c"): (Target.at_most_ms(0.011, "at most 11 us"),
                                        Target(("ours-fp16",), 0.6, "0.6x fp16"))}
    records = [_rec("ours", ms, again), _rec("ours-fp16", 0.020)]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in targets_table(records, "sparse_decode", targets).splitlines()[2:]]
    assert rows[0][2:] == ["at most 11 us", f"{ms:.4g}", "its own time",
                           f"{ms:.4g}" + ("" if again is None else f" (again {again:.4g})"),
                           "≤ 0.011 ms", met]
    assert rows[1][5] == f"{ms / 0.020:.3f}" + ("" if again is None
                                                  else f" (again {again / 0.020:.3f})")


class _NoTimer:
    def eager(self, fn):
        fn()
        return 1.0


TINY = {  # family -> a tiny fp8 problem of it
    "decode": lambda kv: cases.decode_case(2, 4, 2, 40, 32, kv_dtype=kv),
    "paged_decode": lambda kv: cases.paged_case(2, 4, 2, 32, 4, lengths=(37, 9), kv_dtype=kv),
    "sparse_decode": lambda kv: cases.sparse_case(2, 4, 2, 200, 32, keep=0.1, kv_dtype=kv),
    "paged_prefill": lambda kv: cases.paged_prefill_case(
        [cases.SeqGroup(2, 5, 37), cases.SeqGroup(1, 1, 9)], 4, 2, 32, 4, kv_dtype=kv),
}


@pytest.mark.parametrize("kv_dtype", [torch.float8_e4m3fn, torch.float8_e5m2],
                         ids=["e4m3", "e5m2"])
@pytest.mark.parametrize("family", list(TINY))
def test_tiny_fp8_problem_passes_its_checks(monkeypatch, family, kv_dtype):
    monkeypatch.setattr(cases, "DEVICE", DEVICE)
    monkeypatch.setattr(runner, "host_time_ms", lambda fn, calls=20: 0.0)
    case = cases.Case(family, "tiny", (torch.float16,), TINY[family](kv_dtype),
                      kv_dtype=kv_dtype)
    opts = runner.RunOptions(timer=_NoTimer(), deadline=time.monotonic() + 1e9,
                             log=lambda _: None)
    records = {r["impl"]: r for r in runner.run_case(case, torch.float16, opts, {})}
    expected = {"ours", "ours-fp16"} | ({"sdpa-cudnn"} if family == "decode" else set())
    assert set(records) == expected
    for name in ("ours", "ours-fp16"):
        rec = records[name]
        assert rec["status"] == "ok", (name, rec["status"], rec["note"])
        assert rec["max_err"] <= rec["tolerance"] and "fp64 oracle" in rec["checked_against"]
    assert "fp8" in records["ours"]["note"]
    # bytes: an fp8 element is one byte, the fp16 source's two
    assert records["ours"]["gbps"] == pytest.approx(records["ours-fp16"]["gbps"] / 2)
