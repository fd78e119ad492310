"""The paged_prefill benchmark family (benchmarks/cases.py, peers.py, report.py): its
cases, its FLOP count, its targets table, and every implementation of a tiny case run
through the benchmark runner (a fake timer: nothing is timed). On CPU the kernels run
under Triton's interpreter (conftest sets it); on a GPU, on the GPU."""

import time

import pytest
import torch

from benchmarks import cases, peers, runner
from benchmarks.cases import SeqGroup, Target, paged_prefill_case, paged_prefill_flops
from benchmarks.report import render_markdown, summary_table, targets_table

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
OURS = ("ours", "ours-dense-varlen", "ours-decode+varlen", "ours-paged-decode-1step")


def test_family_is_registered_with_five_cases():
    assert "paged_prefill" in cases.FAMILIES
    assert cases.FUNCTION["paged_prefill"] == "paged_prefill"
    assert "paged_prefill" in cases.COMPUTE_BOUND
    family = [c for c in cases.all_cases()
              if c.family == "paged_prefill" and c.kv_dtype is None]  # fp8: test_bench_fp8
    assert len(family) == 5
    assert all(c.dtypes == (torch.float16, torch.bfloat16) for c in family)
    assert sum(c.quick for c in family) == 1
    assert all(c.targets for c in family)
    names = {"ours-dense-varlen", "ours-decode+varlen", "ours-paged-decode-1step",
             "gather+sdpa-cudnn", "gather+sdpa-flash"}
    assert {p for c in family for t in c.targets for p in t.peers} <= names
    chosen = cases.select_cases(("paged_prefill",), quick=True)
    assert [(c.name.split(":")[0], d) for c, d in chosen] == [("chunked", torch.float16)]


def test_flops_count_the_keys_each_row_attends():
    hq, d = 2, 8
    # fresh prefill of L: rows see 1..L keys
    assert paged_prefill_flops([5], [5], hq, d) == 4 * hq * d * (5 * 6 / 2)
    # one decode row sees its whole context; 2 new tokens on 3 of context see 4 and 5
    assert paged_prefill_flops([1, 2], [7, 5], hq, d) == 4 * hq * d * (7 + 4 + 5)


def _rec(impl, ms, *, case="c", status="ok", again=None):
    return {"kernel": "paged_prefill", "case": case, "dtype": "fp16", "impl": impl,
            "status": status, "ms": ms, "eager_ms": ms, "graph_ms": None, "host_ms": None,
            "timing": "eager", "ms_again": again, "tflops": 1.0, "gbps": 2.0,
            "pct_ceiling": None, "speedup": None, "max_err": 0.0, "note": ""}


def test_targets_table_reads_ours_over_the_fastest_named_peer():
    targets = {("paged_prefill", "c"): (
        Target(("ours-dense-varlen",), 1.10, "near dense"),
        Target(("gather+sdpa-cudnn", "gather+sdpa-flash"), 0.5, "2x sdpa"),
        Target(("ours-paged-decode-1step",), 1.5, "decode"))}
    records = [_rec("ours", 1.0, again=1.2), _rec("ours-dense-varlen", 1.0),
               _rec("gather+sdpa-cudnn", 3.0), _rec("gather+sdpa-flash", 2.5),
               _rec("ours-paged-decode-1step", None, status="wrong")]
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in targets_table(records, "paged_prefill", targets).splitlines()[2:]]
    assert rows[0][2:] == ["near dense", "1", "ours-dense-varlen 1", "1.000 (again 1.200)",
                           "≤ 1.1", "borderline"]
    assert rows[1][4:] == ["gather+sdpa-flash 2.5", "0.400 (again 0.480)", "≤ 0.5", "yes"]
    assert rows[2][4:] == ["ours-paged-decode-1step: wrong", "—", "≤ 1.5", "—"]
    # the summary table is unchanged: ours' own variants are not peers
    summary = summary_table(records, "paged_prefill").splitlines()[2]
    assert "2.50× (gather+sdpa-flash)" in summary


def test_markdown_has_targets_only_where_cases_have_them():
    meta = {"card": "X", "date": "2026-11-29", "torch": "t", "triton": "3", "ceilings": {}}
    name = next(c.name for c in cases.all_cases() if c.family == "paged_prefill")
    text = render_markdown(meta, [_rec("ours", 1.0, case=name),
                                  _rec("ours-dense-varlen", 0.95, case=name)])
    assert "Targets:" in text and "within 1.15x of ours-dense-varlen" in text
    assert "| GB/s |" in text  # the paged_prefill details give both throughputs
    prefill = {**_rec("ours", 1.0), "kernel": "prefill"}
    assert "Targets:" not in render_markdown(meta, [prefill])


class _NoTimer:
    def eager(self, fn):
        fn()
        return 1.0


TINY = [  # (groups, flags): mixed with partial pages, speculative, fresh
    ([SeqGroup(2, 1, 20), SeqGroup(2, 5, 37)], dict(parts=True)),
    ([SeqGroup(3, 4, 19)], dict(decode_step=True)),
    ([SeqGroup(2, 9, 9)], {}),
]


@pytest.fixture
def tiny_device(monkeypatch):
    from torch.nn.attention.flex_attention import flex_attention

    monkeypatch.setattr(cases, "DEVICE", DEVICE)
    monkeypatch.setattr(peers, "_FLEX", flex_attention)  # eager: no compile in the suite
    monkeypatch.setattr(runner, "host_time_ms", lambda fn, calls=20: 0.0)


@pytest.mark.parametrize("groups,flags", TINY, ids=["mixed", "spec", "fresh"])
def test_every_implementation_of_a_tiny_case_passes_its_check(tiny_device, groups, flags):
    import attention_kernel_triton as kernels

    case = cases.Case("paged_prefill", "tiny", (torch.float16,),
                      paged_prefill_case(groups, 4, 2, 32, 4, **flags))
    opts = runner.RunOptions(timer=_NoTimer(), deadline=time.monotonic() + 1e9,
                             log=lambda _: None)
    records = {r["impl"]: r for r in runner.run_case(case, torch.float16, opts, {})}
    expected = {"ours", "ours-dense-varlen", "gather+sdpa-cudnn", "gather+sdpa-flash",
                "flex", "flashinfer"}
    expected |= {"ours-decode+varlen"} if flags.get("parts") else set()
    expected |= {"ours-paged-decode-1step"} if flags.get("decode_step") else set()
    assert set(records) == expected
    for name, rec in records.items():
        if name == "ours" and not hasattr(kernels, "paged_prefill"):
            continue
        allowed = {"ok"} if name in OURS or name == "flex" else {"ok", "refused", "skipped"}
        assert rec["status"] in allowed, (name, rec["status"], rec["note"])
        if rec["status"] == "ok":
            assert rec["max_err"] <= rec["tolerance"]
            assert "fp64 oracle" in rec["checked_against"]


@pytest.mark.parametrize("kind", ["bool", "bias", "lower_right"])
def test_gather_then_sdpa_masks_are_bottom_right(tiny_device, kind):
    groups = [SeqGroup(2, 1, 13), SeqGroup(2, 6, 17), SeqGroup(1, 5, 5)]
    gen = torch.Generator(device=DEVICE).manual_seed(3)
    q_lens = [g.q_len for g in groups for _ in range(g.count)]
    seq_lens = [g.seq_len for g in groups for _ in range(g.count)]
    q = torch.randn(sum(q_lens), 4, 32, generator=gen, device=DEVICE, dtype=torch.float32)
    kv = cases.make_paged(gen, seq_lens, 2, 32, 4, torch.float32)
    cu = torch.tensor([0, *torch.tensor(q_lens).cumsum(0).tolist()], dtype=torch.int32,
                      device=DEVICE)
    args = (q, kv.k_cache, kv.v_cache, kv.block_table, cu, kv.seq_lens)
    ref, _ = cases._paged_prefill_ref(*args)  # the fp64 oracle
    out = cases.paged_sdpa(None, q, kv, groups, 4, 32, mask_kind=kind)()
    assert (out.double() - ref).abs().max().item() < 1e-4
