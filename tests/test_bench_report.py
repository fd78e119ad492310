"""The benchmark report (benchmarks/report.py) renders what the records hold; CPU only."""

from benchmarks.report import render_markdown, summary_table


def _rec(impl, ms, *, again=None, status="ok", case="c", timing="eager"):
    return {"kernel": "prefill", "case": case, "dtype": "fp16", "impl": impl,
            "status": status, "ms": ms, "eager_ms": ms, "graph_ms": None, "host_ms": None,
            "timing": timing, "ms_again": again, "tflops": None, "gbps": None,
            "pct_ceiling": None, "speedup": None, "max_err": 0.0, "note": ""}


def test_summary_shows_best_peer_and_second_timing():
    records = [_rec("ours", 2.0, again=2.1), _rec("sdpa-cudnn", 1.6), _rec("flex", 3.0)]
    table = summary_table(records, "prefill")
    header, _, row = table.splitlines()
    assert header.endswith("| ours vs best peer | ours again ms |")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["c", "fp16", "2", "1.6", "3"]
    assert cells[5] == "0.80× (sdpa-cudnn)"
    assert cells[6] == "2.1 (+5.0%)"


def test_summary_without_a_second_timing_or_peers():
    records = [_rec("ours", 1.0), _rec("flex", None, status="wrong")]
    row = summary_table(records, "prefill").splitlines()[2]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:] == ["1", "wrong", "—", "—"]


def test_markdown_explains_the_second_timing():
    meta = {"card": "X", "date": "2026-11-29", "torch": "t", "triton": "3", "ceilings": {}}
    text = render_markdown(meta, [_rec("ours", 1.0, again=0.99)])
    assert "`ours again`" in text and "0.99 (-1.0%)" in text
