"""Conformance mode: the properties of tests/conformance.py's table, run against the
implementations named by --attention-impl (default: conformance.DEFAULT_IMPLS), each
case drawn inside the adapter's declaration; and the adapter's corpus replayed.

    python -m pytest tests/test_conformance.py --attention-impl=sdpa-math
    python -m pytest tests/test_conformance.py --attention-impl=my_pkg.my_mod:adapter
"""

import dataclasses
import json
import os

import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from attention_kernel_triton.strategies.cases import case_from_dict
from tests import conformance, sizes
from tests.corpus_io import FORMAT, conformance_dir, gpu_only_reason
from tests.properties import check


def _specs(config) -> list[str]:
    from attention_kernel_triton.adapters import SHIPPED

    given_ = config.getoption("attention_impl") or list(conformance.DEFAULT_IMPLS)
    return [s for g in given_ for s in (SHIPPED if g == "all" else [g])]


def pytest_generate_tests(metafunc):
    specs = _specs(metafunc.config)
    if "prop" in metafunc.fixturenames:
        params = [pytest.param(spec, op, prop, id=f"{conformance.adapter(spec).name}-{op}-{prop}")
                  for spec in specs for op in conformance.adapter(spec).ops
                  for prop in conformance.PROPERTIES[op]]
        metafunc.parametrize(("spec", "op", "prop"), params)
    elif "path" in metafunc.fixturenames:
        params = [pytest.param(spec, path, id=f"{conformance.adapter(spec).name}-{path.stem}")
                  for spec in specs
                  for path in sorted(conformance_dir(conformance.adapter(spec).name)
                                     .glob("*.json"))]
        metafunc.parametrize(("spec", "path"), params)


def _run_expecting(known, fn):
    """fn(); with a known failure (tests/conformance.py KNOWN_FAILURES), xfail when it
    fails with exactly that, fail when it passes (strict) or fails otherwise."""
    if not known:
        return fn()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - sorted below
        if conformance.is_known(known, exc):
            pytest.xfail(f"known: {known[0]}")
        raise
    pytest.fail(f"known failure no longer fails (remove it from KNOWN_FAILURES): {known[0]}")


def test_conformance(spec, op, prop, device, record_property):
    ad = conformance.adapter(spec)
    reason = conformance.skip_reason(ad, op, prop)
    if reason:
        pytest.skip(reason)
    supports = ad.supports_for(op)
    cases, _ = conformance.strategy(op, supports,
                                    fp8_only=conformance.DECLARED[prop].draws == "fp8")
    info = conformance.op_info(ad, op)
    drawn = []
    # a known failure's shrunk case is in the corpus already (test_replay): find it, do
    # not shrink it again
    known = conformance.known_failure(spec, op, prop, device)
    phases = [p for p in Phase if p != Phase.shrink] if known else list(Phase)

    @settings(phases=phases)
    @given(data=st.data())
    def run(data):
        case = data.draw(cases, label="case")
        drawn.append(case)
        check(op, prop, case, device, op=info, impl_spec=spec)

    # one Hypothesis database key per (implementation, operation, property)
    run.hypothesis.inner_test._hypothesis_internal_add_digest = \
        f"{spec}|{op}|{prop}".encode()
    try:
        _run_expecting(known, run)
    finally:
        record_property("examples", len(drawn))


def test_replay(spec, path, device):
    """The adapter's kept failures (tests/corpus/conformance/<name>/): each must pass once
    the implementation is fixed; until then it fails with the same report."""
    ad = conformance.adapter(spec)
    e = json.loads(path.read_text())
    assert e["format"] == FORMAT, f"{path.name}: corpus format {e['format']} != {FORMAT}"
    case = case_from_dict(e["case"])
    why = gpu_only_reason(case) if ad.is_ours else None  # the interpreter's limits
    if why and not torch.cuda.is_available():
        pytest.skip(f"needs a CUDA device ({why})")
    reason = conformance.skip_reason(ad, e["kernel"], e["property"]) \
        or conformance.outside(ad.supports_for(e["kernel"]), e["kernel"], case)
    if reason:
        pytest.skip(f"{path.name}: {reason}")
    known = conformance.known_failure(spec, e["kernel"], e["property"], device)
    info = conformance.op_info(ad, e["kernel"])
    _run_expecting(known, lambda: check(e["kernel"], e["property"], case, device,
                                        op=info, impl_spec=spec))


def test_ours_through_the_adapter_path(device):
    """Our kernels as a conformance adapter (adapters.ours, "triton") give the bits of the
    suite's own descriptions: the adapter call path adds nothing and loses no argument."""
    from attention_kernel_triton.strategies.cases import (
        DecodeCase,
        Fp8Cache,
        Layout,
        PageTable,
        PrefillCase,
        Variants,
    )
    from tests.opinfo import OPS

    ours = conformance.adapter("triton")
    prefill = PrefillCase(batch=2, num_kv_heads=1, group_size=2, head_dim=16, n_q=9, n_k=13,
                          dtype="float16", causal=True, q_lens=(9, 4), kv_lens=(13, 6),
                          scale=3.0, slack_rows=0, seed=1, layout=Layout(transposed=True),
                          variants=Variants(window=(5, 0), softcap=20.0, sinks="random",
                                            alibi="geometric"))
    decode = DecodeCase(batch=2, num_kv_heads=2, group_size=3, head_dim=32, n_ctx=24,
                        dtype="float16", seq_lens=(24, 7), scale=1.0, seed=2, num_splits=3,
                        pages=PageTable(4), fp8=Fp8Cache("float8_e4m3fn", kv_scale="head"),
                        variants=Variants(window=(9, -1)))
    for op, case in (("prefill", prefill), ("paged_decode", decode)):
        args = OPS[op].inputs(case, device)
        out, lse = conformance.op_info(ours, op).call(args)
        ref, ref_lse = OPS[op].call(args)
        assert torch.equal(out, ref) and torch.equal(lse, ref_lse), op


def test_flex_paged_decode_is_accurate(device):
    """The flex adapter's paged decode (a mask_mod over the physical cache through the
    inverse page table: adapters.flex) on one case that uses every part of the mapping:
    pages shared between sequences, a length-0 sequence, garbage table tails, ids offset
    in a cache with spare pages, a window, a soft-cap and ALiBi. CI runs no flex by
    default (README: eager flex in torch 2.13's dynamo), so this case keeps the mapping
    tested; the accuracy property and its rule are the suite's."""
    from attention_kernel_triton.strategies.cases import DecodeCase, PageTable, Variants

    case = DecodeCase(batch=3, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=20,
                      dtype="float16", seq_lens=(20, 0, 11), scale=3.0, seed=4,
                      pages=PageTable(4, extra_pages=3, shared_pages=2, tail="garbage",
                                      page_id_offset=2),
                      variants=Variants(window=(6, -1), softcap=20.0, alibi="geometric"))
    flex = conformance.op_info(conformance.adapter("flex"), "paged_decode")
    check("paged_decode", "accuracy", case, device, op=flex, impl_spec="flex")


def test_flashinfer_page_form():
    """The FlashInfer adapter's page-table conversion (it runs on a GPU with flashinfer
    installed only): each sequence's first ceil(len / P) entries in order, indptr their
    running count, last_page_len the tokens in the last page; garbage past them unread."""
    from attention_kernel_triton.adapters import _flashinfer_pages

    table = torch.tensor([[5, 2, 9, -1], [7, 1, 3, 3], [4, 8, 6, 2**31 - 1]],
                         dtype=torch.int32)
    lens = torch.tensor([9, 12, 0], dtype=torch.int32)
    indptr, indices, last = _flashinfer_pages(table, lens, 4)
    assert indptr.tolist() == [0, 3, 6, 6]
    assert indices.tolist() == [5, 2, 9, 7, 1, 3]
    assert last.tolist() == [1, 4, 0]
    assert indptr.dtype == indices.dtype == last.dtype == torch.int32


def test_flashinfer_row_major():
    """The FlashInfer adapter hands K and V over with row-major strides in every dimension:
    a head-major V cache with one KV head is "contiguous" to PyTorch, and `.contiguous()`
    keeps its size-1 dimension's stride, which FlashInfer 0.2.5 rejects ("k/v strides must
    be identical"); a tensor already row-major is passed as it is, not copied."""
    from attention_kernel_triton.adapters import _flashinfer_prepare, _row_major

    k = torch.randn(3, 4, 1, 8)  # [pages, P, Hkv, D]
    v = torch.randn(3, 1, 4, 8).transpose(1, 2)  # stored [pages, Hkv, P, D]
    assert v.is_contiguous() and v.contiguous().stride() != k.stride()
    got = _row_major(v)
    assert got.stride() == k.stride() and torch.equal(got, v)
    assert _row_major(k) is k
    # what the adapter hands FlashInfer (head dim 64, a built one: no padding copy)
    k = torch.randn(3, 4, 1, 64)
    v = torch.randn(3, 1, 4, 64).transpose(1, 2)
    assert k.stride() != v.stride()
    q = torch.randn(2, 3, 64)
    _, (k2, v2), *_ = _flashinfer_prepare(
        q, k, v, torch.tensor([[0, 1], [2, 0]], dtype=torch.int32),
        torch.tensor([5, 3], dtype=torch.int32), None, None, None, {})
    assert k2.stride() == v2.stride() and torch.equal(v2, v) and torch.equal(k2, k)


README_EXAMPLE = "<!-- conformance example: tests/test_conformance.py runs it -->"


def test_readme_example_runs(tmp_path):
    """The README's adapter example (a kernel author's first ten lines) runs through
    conformance mode from the command line and passes prefill's accuracy property."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    assert README_EXAMPLE in text, "README.md lost its conformance example"
    block = text.split(README_EXAMPLE, 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 10, "the example is meant to fit in 10 lines"
    path = tmp_path / "my_adapter.py"
    path.write_text(block)
    # the README's command: its test ids and its option, the adapter file put in tmp_path
    shell = text.split(README_EXAMPLE, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    words = shell.replace("\\\n", " ").split()
    assert words[:3] == ["python", "-m", "pytest"], shell
    assert "--attention-impl=my_adapter.py:adapter" in words, shell
    ids = [w for w in words if w.startswith("tests/")]
    assert ids, shell
    cmd = [sys.executable, "-m", "pytest", *ids, "-q", "-p", "no:cacheprovider",
           f"--attention-impl={path}:adapter", "-W", "ignore"]
    run = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HYPOTHESIS_MAX_EXAMPLES": "5",
                              # on the CPU everywhere: on an H100 the example's default SDPA
                              # dispatch picks cuDNN, which fails (README, conformance mode)
                              "CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout, run.stdout[-2000:]


def _sdpa_prefill(q, k, v, *, causal=True, sm_scale=None, return_lse=False):
    """A correct square-causal prefill for the harness tests below (math SDPA)."""
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal,
                                         scale=sm_scale, enable_gqa=True).to(q.dtype)
    return (out, None) if return_lse else out


SQUARE = dict(lengths=False, rectangular_causal=False, out=False)


def _case(**over):
    from dataclasses import replace

    from attention_kernel_triton.strategies.cases import PrefillCase

    base = PrefillCase(batch=2, num_kv_heads=2, group_size=2, head_dim=16, n_q=7, n_k=7,
                       dtype="float32", causal=True, q_lens=None, kv_lens=None, scale=1.0,
                       slack_rows=0, seed=3)
    return replace(base, **over)


def test_declaration_errors():
    """Bad declarations and specs fail when they are made, naming what is wrong."""
    from attention_kernel_triton.conformance import Adapter, Supports, load

    with pytest.raises(ValueError, match="Supports.variants"):
        Supports(variants=("windows",))
    with pytest.raises(ValueError, match="Supports.fp8"):
        Supports(fp8=("float8",))
    with pytest.raises(ValueError, match="head_dims"):
        Supports(head_dims=(64, 32))
    with pytest.raises(ValueError, match="causal"):
        Supports(causal=False, non_causal=False)
    for groups in ((0, 1), (1, "2"), "12", (2, 4)):
        with pytest.raises(ValueError, match="Supports.group_sizes"):
            Supports(group_sizes=groups)
    with pytest.raises(ValueError, match="Supports.group_sizes"):
        Supports(gqa=False, group_sizes=(1, 2))
    with pytest.raises(ValueError, match="unknown operations"):
        Adapter("x", {"attention": _sdpa_prefill})
    with pytest.raises(ValueError, match="no Supports for"):
        Adapter("x", {"prefill": _sdpa_prefill}, {"decode": Supports()})
    with pytest.raises(ValueError, match="expected one of"):
        load("no-such-adapter")
    with pytest.raises(TypeError, match="not an attention_kernel_triton.conformance.Adapter"):
        load("json:dumps")
    # a spec that names nothing: the option, the spec and where it looked (review)
    with pytest.raises(ModuleNotFoundError, match=r"--attention-impl 'no_such_pkg.mod:x': no "
                                                  r"module 'no_such_pkg' \(is its directory on "
                                                  r"PYTHONPATH"):
        load("no_such_pkg.mod:x")
    with pytest.raises(AttributeError, match=r"--attention-impl 'json:nosuch': json has no "):
        load("json:nosuch")
    with pytest.raises(FileNotFoundError, match=r"--attention-impl 'missing\.py:adapter': no "
                                                r"file /"):
        load("missing.py:adapter")


def test_undeclared_feature_is_skipped_with_its_reason():
    from attention_kernel_triton.conformance import Adapter, Supports

    ad = Adapter("x", {"prefill": _sdpa_prefill},
                 Supports(**SQUARE, gqa=False, notes={"gqa": "heads must match"}))
    assert conformance.skip_reason(ad, "prefill", "gqa_equals_mha") == \
        "x prefill: no gqa: heads must match"
    assert conformance.skip_reason(ad, "prefill", "every_element_written") == \
        "x prefill: no out: not declared (out)"
    assert conformance.skip_reason(ad, "prefill", "accuracy") is None
    late = Adapter("y", {"prefill": _sdpa_prefill}, Supports(), unavailable=lambda: "no GPU")
    assert conformance.skip_reason(late, "prefill", "accuracy") == "y: no GPU"


def test_harness_catches_a_wrong_adapter(device, monkeypatch):
    """Conformance mode can fail: an adapter that ignores `causal` fails accuracy; one that
    declares an LSE and returns none fails with that message; a correct one passes."""
    from attention_kernel_triton.conformance import Adapter, Supports
    from tests import checks
    from tests.properties import check as run_check

    # planted failures: kept out of the run's worst-error-ratio report
    monkeypatch.setattr(checks, "_record_ratio", lambda *a, **k: None)

    def ignores_causal(q, k, v, *, causal=True, sm_scale=None, return_lse=False):
        return _sdpa_prefill(q, k, v, causal=False, sm_scale=sm_scale, return_lse=return_lse)

    good = Adapter("good", {"prefill": _sdpa_prefill}, Supports(**SQUARE, lse=False))
    bad = Adapter("bad", {"prefill": ignores_causal}, Supports(**SQUARE, lse=False))
    no_lse = Adapter("no-lse", {"prefill": _sdpa_prefill}, Supports(**SQUARE))
    case = _case()
    run_check("prefill", "accuracy", case, device, op=conformance.op_info(good, "prefill"))
    with pytest.raises(AssertionError, match="off the float64 oracle"):
        run_check("prefill", "accuracy", case, device, op=conformance.op_info(bad, "prefill"))
    with pytest.raises(AssertionError, match=r"returned .*not \(out, lse\)"):
        run_check("prefill", "accuracy", case, device,
                  op=conformance.op_info(no_lse, "prefill"))

    def returns_fp32(q, k, v, **kw):  # right values, wrong dtype: "out like q" (review)
        return _sdpa_prefill(q, k, v, **kw).float()

    def always_a_pair(q, k, v, *, return_lse=False, **kw):  # (out, lse) whatever was asked
        return _sdpa_prefill(q, k, v, return_lse=True, **kw)

    pair = Adapter("pair", {"prefill": always_a_pair}, Supports(**SQUARE, lse=False))
    with pytest.raises(AssertionError, match=r"pair prefill\(\) without return_lse returned "
                                             r"tuple, not the output"):
        run_check("prefill", "accuracy", case, device, op=conformance.op_info(pair, "prefill"))
    fp32_out = Adapter("fp32-out", {"prefill": returns_fp32}, Supports(**SQUARE, lse=False))
    with pytest.raises(AssertionError, match=r"dtype torch\.float32, expected torch\.float16"):
        run_check("prefill", "accuracy", _case(dtype="float16"), device,
                  op=conformance.op_info(fp32_out, "prefill"))


def test_strategy_stays_inside_the_declaration():
    """Every case drawn for a narrow declaration is inside it."""
    from hypothesis import given, settings

    from attention_kernel_triton.conformance import Supports
    from attention_kernel_triton.strategies.cases import Variants

    narrow = Supports(dtypes=("float16",), head_dims=(32, 64), gqa=False, non_causal=False,
                      rectangular_causal=False, lengths=False, unaligned_rows=False)
    cases, why = conformance.strategy("prefill", narrow)
    assert why is None

    @settings(max_examples=30, database=None)
    @given(case=cases)
    def inside(case):
        assert case.dtype == "float16" and 32 <= case.head_dim <= 64
        assert case.group_size == 1 and case.causal and case.n_q == case.n_k
        assert case.q_lens is None and case.kv_lens is None
        assert case.layout.row_gap in (0, 16) and case.variants == Variants()
        assert conformance.outside(narrow, "prefill", case) is None  # the replay's check

    inside()
    none_left, why = conformance.strategy("prefill", Supports(dtypes=("bfloat16",)))
    assert none_left is None if not sizes.ON_GPU else why is None


def test_group_sizes_declaration():
    """An adapter that takes only some GQA groups (FlashInfer's decode: 1, 2, 3, 4, 8; group
    5 crashed its process on the GPU) is drawn only those, at every size the strategy
    reaches, and a kept case with another group is outside its declaration."""
    from hypothesis import find, settings
    from hypothesis.errors import NoSuchExample

    from attention_kernel_triton import adapters
    from attention_kernel_triton.conformance import Supports
    from attention_kernel_triton.strategies.cases import DecodeCase

    some = Supports(group_sizes=(1, 3))
    drawn, why = conformance.strategy("paged_decode", some)
    assert why is None
    quick = settings(max_examples=60, database=None)
    with pytest.raises(NoSuchExample):
        find(drawn, lambda case: case.group_size not in (1, 3), settings=quick)
    assert find(drawn, lambda case: case.group_size == 3, settings=quick).group_size == 3
    none_left, why = conformance.strategy("decode", Supports(group_sizes=(1, 64)))
    assert why is None and none_left is not None  # 64 is past every device's sizes: 1 left
    dec = DecodeCase(batch=1, num_kv_heads=1, group_size=2, head_dim=32, n_ctx=8,
                     dtype="float16", seq_lens=(5,), scale=1.0, seed=2)
    assert conformance.outside(some, "decode", dec) == \
        "outside the declaration: GQA group 2 (takes (1, 3))"
    assert conformance.outside(some, "decode", dataclasses.replace(dec, group_size=3)) is None
    fi = adapters.flashinfer()
    assert fi.supports_for("paged_decode").group_sizes == (1, 2, 3, 4, 8)
    assert fi.supports_for("paged_prefill").group_sizes == ()


def test_replay_checks_the_declaration():
    """A kept case that a narrowed declaration excludes is named as outside it, field by
    field (test_replay skips it with that reason instead of running it)."""
    from attention_kernel_triton.conformance import Supports
    from attention_kernel_triton.strategies.cases import (
        DecodeCase,
        Fp8Cache,
        Layout,
        PrefillCase,
        Variants,
    )

    narrow = Supports(dtypes=("float16",), head_dims=(32, 64), gqa=False, non_causal=False,
                      rectangular_causal=False, lengths=False, unaligned_rows=False)
    wide = PrefillCase(batch=2, num_kv_heads=1, group_size=2, head_dim=128, n_q=9, n_k=13,
                       dtype="float32", causal=True, q_lens=(9, 4), kv_lens=(13, 6),
                       scale=1.0, slack_rows=0, seed=1, layout=Layout(row_gap=3),
                       variants=Variants(window=(5, 0), alibi="geometric"))
    why = conformance.outside(narrow, "prefill", wide)
    for part in ("dtype float32", "head_dim 128", "GQA", "rows 3 elements apart", "window",
                 "alibi_slopes", "rectangular causal", "lengths"):
        assert part in why, (part, why)
    assert conformance.outside(Supports(variants=("window", "alibi_slopes")), "prefill",
                               wide) is None
    assert "causal=False" in conformance.outside(
        narrow, "prefill", dataclasses.replace(wide, causal=False))
    dec = DecodeCase(batch=1, num_kv_heads=1, group_size=1, head_dim=32, n_ctx=8,
                     dtype="float16", seq_lens=(5,), scale=1.0, seed=2,
                     fp8=Fp8Cache("float8_e4m3fn"))
    assert conformance.outside(narrow, "decode", dec) == \
        "outside the declaration: float8_e4m3fn cache, lengths"


def test_known_failures_are_narrow(device):
    """A known failure applies to the shipped adapter loaded by its name only, and only to
    its own exception: any other failure of the same cell fails as usual."""
    entry = conformance.known_failure("sdpa-math", "prefill", "unread_memory", "cpu")
    assert entry is not None
    assert conformance.known_failure("my_pkg.mod:adapter", "prefill", "unread_memory",
                                     "cpu") is None
    assert conformance.known_failure("sdpa-math", "prefill", "accuracy", "cpu") is None
    assert conformance.is_known(entry, AssertionError("out (poisoned unread memory): ..."))
    assert not conformance.is_known(entry, AssertionError("out is off the float64 oracle"))
    assert not conformance.is_known(entry, TypeError("poisoned unread memory"))
    class Group(Exception):  # what Hypothesis raises for several distinct failures
        def __init__(self, excs):
            super().__init__("group")
            self.exceptions = excs

    assert conformance.is_known(entry, Group([AssertionError("poisoned unread memory")] * 2))
    assert not conformance.is_known(entry, Group([AssertionError("poisoned unread memory"),
                                                  RuntimeError("CUDA error")]))


def test_a_crashing_case_is_kept(tmp_path, monkeypatch):
    """A case that kills its worker reaches no pytest hook: the check's in-flight record
    (CONFORMANCE_INFLIGHT) names it, and the report keeps it in the adapter's corpus and
    in the crashed cell (the message is xdist's, as a FlashInfer segfault gave it)."""
    from attention_kernel_triton.strategies.cases import DecodeCase
    from tests import conformance_report, corpus_io

    node = "tests/test_conformance.py::test_conformance[peer-decode-finite]"
    case = DecodeCase(batch=1, num_kv_heads=1, group_size=3, head_dim=16, n_ctx=5,
                      dtype="float16", seq_lens=None, scale=1.0, seed=4, num_splits=None)
    monkeypatch.setenv("CONFORMANCE_INFLIGHT", str(tmp_path / "inflight"))
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw6")
    monkeypatch.setenv("PYTEST_CURRENT_TEST", node + " (call)")
    monkeypatch.setattr(corpus_io, "CORPUS_DIR", tmp_path / "corpus")
    with corpus_io.recording("decode", "finite", case, "cpu", impl=("peer", "pkg.mod:peer")):
        pass  # the crash would come here
    cells = {"decode/finite": {"status": "FAIL", "message": f"failed on setup with \"worker "
                               f"'gw6' crashed while running '{node}'\""},
             "decode/accuracy": {"status": "FAIL", "message": "worker 'gw2' crashed while "
                                 "running 'another test'"}}
    conformance_report._keep_crashes(cells, tmp_path / "inflight", died=False)
    kept = list((tmp_path / "corpus" / "conformance" / "peer").glob("*.json"))
    assert len(kept) == 1 and cells["decode/finite"]["corpus"] == str(kept[0])
    e = json.loads(kept[0].read_text())
    assert case_from_dict(e["case"]) == case and e["impl_spec"] == "pkg.mod:peer"
    assert "process died" in e["error"] and "--attention-impl=pkg.mod:peer" in \
        cells["decode/finite"]["replay"]
    assert "corpus" not in cells["decode/accuracy"]  # no record for that worker's test


def test_a_failing_cell_reaches_the_junit_xml_with_its_case(tmp_path, monkeypatch):
    """The shrunk case and replay line of a failure go on the item's user_properties:
    pytest's JUnit writer (which tests/conformance_report.py reads) takes them from the
    teardown report, built from the item's list; the call report holds a copy, and
    properties added to it alone never reached the XML (session 23 review)."""
    from types import SimpleNamespace

    from tests import corpus_io

    e = {"impl": "buggy", "impl_spec": "pkg.mod:adapter", "op": "prefill",
         "property": "accuracy"}
    monkeypatch.setattr(corpus_io, "write", lambda entry: tmp_path / "prefill-accuracy-x.json")
    item = SimpleNamespace(nodeid="tests/test_conformance.py::t[x]", user_properties=[])
    report = SimpleNamespace(when="call", failed=True, sections=[],
                             user_properties=list(item.user_properties))
    monkeypatch.setitem(corpus_io._pending, item.nodeid, e)
    hook = corpus_io.pytest_runtest_makereport(item, None)
    next(hook)
    with pytest.raises(StopIteration):
        hook.send(SimpleNamespace(get_result=lambda: report))
    names = [name for name, _ in item.user_properties]
    assert names == ["corpus", "replay"], item.user_properties
    assert "--attention-impl=pkg.mod:adapter -k prefill-accuracy-x" in item.user_properties[1][1]
