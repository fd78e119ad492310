"""The attention variants' benchmark cases (benchmarks/cases.py, ``variant_cases``): their
selection with --variants, and tiny problems of each kind run through the benchmark
runner with a fake timer: "ours" with the variant and the plain rows all pass their fp64
checks. On CPU the kernels run under Triton's interpreter (conftest sets it)."""

import time

import pytest
import torch

from benchmarks import cases, runner

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_variant_selection():
    every = cases.select_cases(cases.FAMILIES, quick=False)
    only = cases.select_cases(cases.FAMILIES, quick=False, variants="only")
    none = cases.select_cases(cases.FAMILIES, quick=False, variants="none")
    assert only and all(c.variant for c, _ in only)
    assert all(c.variant is None for c, _ in none)
    assert len(only) + len(none) == len(every)
    assert {c.variant for c, _ in only} >= {"window", "softcap", "sinks"}
    with pytest.raises(ValueError, match="variants must be one of"):
        cases.select_cases(cases.FAMILIES, quick=False, variants="some")


class _NoTimer:
    def eager(self, fn):
        fn()
        return 1.0

    def graph(self, graph):
        return 1.0


TINY = {  # name -> (family, a tiny problem, the impls it has)
    "prefill-window": ("prefill", lambda: cases._variant_prefill_case(
        1, 4, 2, 48, 32, {"window": (9, 0)}, flex_window=9), {"flex"}),
    "prefill-sinks": ("prefill", lambda: cases._variant_prefill_case(
        2, 4, 2, 40, 32, lambda: {"sinks": torch.linspace(-1, 3, 4, device=DEVICE),
                                  "softcap": 5.0}), {"ours-triton"}),
    "decode-window": ("decode", lambda: cases._variant_decode_case(
        2, 4, 2, 64, 32, {"window": (15, -1)}, window_peer_n=16), {"ours-N16"}),
    "decode-alibi": ("decode", lambda: cases._variant_decode_case(
        2, 4, 2, 40, 32, lambda: {"alibi_slopes": torch.tensor(
            cases._alibi(4), device=DEVICE)}), set()),
}


@pytest.mark.parametrize("name", list(TINY))
def test_tiny_variant_problem_passes_its_checks(monkeypatch, name):
    family, build, extra = TINY[name]
    monkeypatch.setattr(cases, "DEVICE", DEVICE)
    monkeypatch.setattr(runner, "host_time_ms", lambda fn, calls=20: 0.0)
    case = cases.Case(family, "tiny", (torch.float16,), build(), variant=name)
    opts = runner.RunOptions(timer=_NoTimer(), deadline=time.monotonic() + 1e9,
                             log=lambda _: None, skip_impls={"flex"} if DEVICE == "cpu"
                             else set())
    records = {r["impl"]: r for r in runner.run_case(case, torch.float16, opts, {})}
    plain = {"ours-plain", "ours-plain-triton"} if family == "prefill" else {"ours-plain"}
    assert set(records) >= {"ours"} | plain | (extra - {"flex"})
    for rec in records.values():
        if rec["impl"] == "flex" and DEVICE == "cpu":
            continue
        assert rec["status"] == "ok", (rec["impl"], rec["status"], rec["note"])
        assert rec["max_err"] <= rec["tolerance"] and "fp64 oracle" in rec["checked_against"]
