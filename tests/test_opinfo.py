"""The descriptions (tests/opinfo.py) and the table they generate with the properties'
declarations (tests/properties.py): what runs where. CPU only, no kernel runs."""

import re
from pathlib import Path

import pytest

from tests import conformance
from tests.opinfo import KNOBS, LAYOUT, OPS, STREAMS
from tests.properties import DECLARED, PROPERTIES, Property, prop, properties, table


def test_every_property_runs_somewhere():
    """No declared property is an orphan: some operation runs it on one of its streams."""
    ran = {p for op in OPS.values() for s in op.streams for p in properties(op.name, s)}
    assert ran == set(DECLARED) == set(PROPERTIES)


@pytest.mark.parametrize("op", list(OPS))
def test_every_applicable_property_runs(op):
    """What applies to an operation runs on one of the streams its tests draw."""
    info = OPS[op]
    ran = {p for s in info.streams for p in properties(op, s)}
    assert ran == {p.name for p in DECLARED.values() if p.applies_to(info)}


def test_streams_and_needs_are_checked():
    with pytest.raises(ValueError, match="decode has no 'padded' stream"):
        properties("decode", "padded")
    with pytest.raises(ValueError, match="unknown stream 'bogus'"):
        properties("decode", "bogus")
    with pytest.raises(ValueError, match="unknown need 'paged_cache'"):
        prop(needs=("paged_cache",))(lambda op, case, device: None)
    with pytest.raises(ValueError, match="unknown stream 'fp16'"):
        prop(draws="fp16")(lambda op, case, device: None)
    assert "<lambda>" not in DECLARED


def test_needs_decide():
    """A property runs where the operation has what it needs (layout, knob, Supports
    feature) and on the operations it is written for."""
    def fn(op, case, device):
        pass
    paged = Property(fn, needs=("paged",))
    assert [o for o in OPS if paged.applies_to(OPS[o])] == \
        ["paged_decode", "sparse_paged_decode", "paged_prefill"]
    assert [o for o in OPS if Property(fn, needs=("splits", "sparse")).applies_to(OPS[o])] \
        == ["sparse_decode", "sparse_paged_decode"]
    assert [o for o in OPS if Property(fn, needs=("fp8",)).applies_to(OPS[o])] == \
        ["decode", "paged_decode", "sparse_decode", "sparse_paged_decode", "paged_prefill"]
    assert [o for o in OPS if Property(fn, ops=("decode",)).applies_to(OPS[o])] == ["decode"]
    assert not Property(fn, needs=("splits",)).portable()
    assert not Property(fn, calls=("prefill",)).portable()
    assert Property(fn, needs=("lse", "paged")).portable()


def test_conformance_table_is_the_portable_part():
    """conformance.PROPERTIES comes from the same declarations: what runs against another
    implementation is every portable property that applies, with the Supports features
    it needs. Pinned for two operations (the hand-written table it replaced, plus paged
    prefill's two self-relations, portable and so now in it, and the strided head vectors
    relation of session 17)."""
    variants = {"window_beyond_context_bit_identical": ("window", "deterministic"),
                "sinks_neg_inf_bit_identical": ("sinks", "deterministic"),
                "softcap_huge_equals_none": ("softcap",),
                "head_vectors_strided_bit_identical": ("deterministic",)}
    common = {"accuracy": (), "finite": (), "unread_memory": ("deterministic",),
              "every_element_written": ("out",), "inputs_untouched": (),
              "deterministic": ("deterministic",), "gqa_equals_mha": ("gqa",)}
    assert conformance.PROPERTIES["decode"] == {
        **common, "batch_equals_one_by_one": (), "fp8_equals_dequantized": ("fp8",),
        **variants, "decode_window_equals_slice": ("window", "lengths")}
    assert conformance.PROPERTIES["paged_prefill"] == {
        **common, "slack_rows_untouched": ("out",),
        "page_permutation_bit_identical": ("deterministic",),
        "paged_prefill_one_by_one": (), "paged_prefill_chunked_equals_whole": ("lse",),
        "fp8_equals_dequantized": ("fp8",), **variants}
    for op, props in conformance.PROPERTIES.items():
        assert all(DECLARED[p].portable() for p in props), op


def test_properties_ask_the_description():
    """No property asks which operation it was given by name or by sniffing its layout
    keys: layout facts come from the description (OpInfo.has, kv_names, capacity, ...)."""
    src = Path(__file__).with_name("properties.py").read_text()
    sniff = re.compile(r'op\.name\s*(==|!=|\.startswith)|"(cu_seqlens_q|block_table|k_cache|'
                       r'indices)" (not )?in args')
    assert not [m.group(0) for m in sniff.finditer(src)]


def test_table_names_every_property_and_operation():
    text = table()
    assert all(f"| {name} |" in text for name in DECLARED)
    assert all(op in text.splitlines()[0] for op in OPS)
    assert set(LAYOUT).isdisjoint(KNOBS) and "general" in STREAMS


def test_readme_table_is_current():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start = readme.index("<!-- property table: python -m tests.properties -->\n")
    end = readme.index("\n<!-- end of property table -->")
    assert readme[start:end].split("\n", 1)[1] == table(), \
        "README's property table is stale: paste `python -m tests.properties` into it"
