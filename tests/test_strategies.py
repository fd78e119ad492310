"""The case strategies check their bounds when they are built (strategies/cases.py), as
Hypothesis's own strategies do: a bad bound is an InvalidArgument naming it at the call,
never a failing example at the first draw. CPU only, nothing is drawn for the errors.
Also the cases' JSON forms (the corpus files)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis.errors import InvalidArgument
from hypothesis.strategies import SearchStrategy

from attention_kernel_triton.strategies.cases import (
    DecodeCase,
    Fp8Cache,
    IndexSet,
    Layout,
    PagedPrefillCase,
    PageTable,
    PrefillCase,
    Variants,
    case_from_dict,
    decode_cases,
    head_dims,
    page_sizes,
    paged_prefill_cases,
    prefill_cases,
)

STRATEGIES = [pytest.param(prefill_cases, id="prefill"), pytest.param(decode_cases, id="decode"),
              pytest.param(paged_prefill_cases, id="paged_prefill")]
COMMON_BAD = [  # (arguments, the message's start)
    (dict(min_batch=5, max_batch=3), "min_batch=5 > max_batch=3"),
    (dict(min_batch=-1), "min_batch must be >= 0, got -1"),
    (dict(max_kv_heads=0), "max_kv_heads must be >= 1, got 0"),
    (dict(max_group=0), "max_group must be >= 1, got 0"),
    (dict(min_head_dim=64, max_head_dim=32), "min_head_dim=64 > max_head_dim=32"),
    (dict(min_head_dim=0, max_head_dim=8), "min_head_dim must be >= 1, got 0"),
    (dict(max_batch=2.5), "max_batch must be an integer, got 2.5"),
    (dict(max_group=True), "max_group must be an integer, got True"),
    (dict(dtypes="float16"), "dtypes must be a non-empty tuple of names, got 'float16'"),
    (dict(dtypes=()), "dtypes must be a non-empty tuple of names, got ()"),
    (dict(dtypes=("float16", "fp8")), "dtypes holds 'fp8': each must be one of"),
    (dict(bogus=1), "unexpected keyword argument 'bogus'"),
]
OWN_BAD = {
    prefill_cases: [(dict(max_seq=0), "max_seq must be >= 1, got 0")],
    decode_cases: [(dict(max_ctx=0), "max_ctx must be >= 1, got 0"),
                   (dict(max_page_size=0), "max_page_size must be >= 1, got 0"),
                   (dict(max_splits=0), "max_splits must be >= 1, got 0"),
                   (dict(max_indices=0), "max_indices must be >= 1, got 0"),
                   (dict(kv_dtypes=("float8_e4m3",)), "kv_dtypes holds 'float8_e4m3'"),
                   (dict(long_context=True, min_batch=3, max_batch=4),
                    "long_context draws at most 2 sequences; min_batch=3")],
    paged_prefill_cases: [(dict(max_q=0), "max_q must be >= 1, got 0"),
                          (dict(max_ctx=-1), "max_ctx must be >= 1, got -1"),
                          (dict(kv_dtypes=(None, "e5m2")), "kv_dtypes holds 'e5m2'")],
}


def _cases(strategy):
    return [pytest.param(strategy, kw, msg, id=msg.split(" ")[0] + "-" + strategy.__name__)
            for kw, msg in COMMON_BAD + OWN_BAD[strategy]]


@pytest.mark.parametrize(("strategy", "kwargs", "message"),
                         [p for s in OWN_BAD for p in _cases(s)])
def test_bad_bounds_raise_when_built(strategy, kwargs, message):
    with pytest.raises(InvalidArgument) as info:
        strategy(**kwargs)  # built, never drawn
    assert message in str(info.value)


def test_page_sizes_bound():
    with pytest.raises(InvalidArgument, match="max_page_size must be >= 1, got 0"):
        page_sizes(max_page_size=0)


@pytest.mark.parametrize("strategy", [p.values[0] for p in STRATEGIES],
                         ids=[p.id for p in STRATEGIES])
def test_valid_bounds_build_a_strategy(strategy):
    assert isinstance(strategy(), SearchStrategy)
    assert isinstance(strategy(min_batch=2, max_batch=2, max_kv_heads=1, max_group=1,
                               dtypes=["float32"]), SearchStrategy)


@settings(max_examples=20, database=None)
@given(case=prefill_cases(min_batch=2, max_batch=2, max_kv_heads=1, max_group=3,
                          min_head_dim=24, max_head_dim=24, max_seq=5, dtypes=("float32",)))
def test_drawn_prefill_cases_keep_the_bounds(case):
    assert isinstance(case, PrefillCase)
    assert case.batch == 2 and case.num_kv_heads == 1 and 1 <= case.group_size <= 3
    assert case.head_dim == 24 and case.dtype == "float32" and case.n_q <= 5


@settings(max_examples=20, database=None)
@given(case=decode_cases(max_batch=2, max_ctx=9, paged=True, long_context=True,
                         dtypes=("float16",), kv_dtypes=("float8_e5m2",)))
def test_drawn_decode_cases_keep_the_bounds(case):
    assert isinstance(case, DecodeCase) and case.batch <= 2 and case.n_ctx >= 1
    assert case.kv_dtype == "float8_e5m2" and case.page_size is not None


@settings(max_examples=20, database=None)
@given(case=paged_prefill_cases(max_batch=3, max_ctx=7, max_q=2, dtypes=("float16",)))
def test_drawn_paged_prefill_cases_keep_the_bounds(case):
    assert isinstance(case, PagedPrefillCase) and case.batch <= 3
    assert all(q <= min(2, s) for q, s in zip(case.q_lens, case.seq_lens, strict=True))
    assert case.kv_dtype is None


_GROUPED = DecodeCase(batch=2, num_kv_heads=1, group_size=2, head_dim=16, n_ctx=8,
                      dtype="float16", seq_lens=(8, 3), scale=1.0, seed=5,
                      layout=Layout(q_transposed=True, row_gap=3),
                      pages=PageTable(4, shared_pages=1, tail="valid"),
                      indices=IndexSet("sorted", 5, index_step=2),
                      fp8=Fp8Cache("float8_e5m2", kv_scale="head"),
                      variants=Variants(window=(3, -1), softcap=5.0))


def test_cases_round_trip_through_json():
    """A case written to a corpus file (nested groups) reads back equal, tuples and all."""
    assert case_from_dict(json.loads(json.dumps(_GROUPED.to_dict()))) == _GROUPED


def test_cases_read_the_flat_corpus_form():
    """Corpus format 1 (every field at the top level, before the groups) reads into the
    groups; an optional group whose key field is None is absent; an unknown field raises
    rather than being dropped."""
    flat = {"type": "DecodeCase", "batch": 2, "num_kv_heads": 1, "group_size": 2,
            "head_dim": 16, "n_ctx": 8, "dtype": "float16", "seq_lens": [8, 3], "scale": 1.0,
            "seed": 5, "q_transposed": True, "row_gap": 3, "page_size": 4,
            "shared_pages": 1, "tail": "valid", "index_kind": "sorted", "num_indices": 5,
            "index_step": 2, "kv_dtype": "float8_e5m2", "kv_scale": "head",
            "window": [3, -1], "softcap": 5.0, "alibi": None}
    assert case_from_dict(flat) == _GROUPED
    dense = {**flat, "page_size": None, "index_kind": None, "kv_dtype": None}
    case = case_from_dict(dense)
    assert case.pages is None and case.indices is None and case.fp8 is None
    assert case.page_size is None and case.kv_dtype is None
    with pytest.raises(ValueError, match="no fields.*'row_gapp'"):
        case_from_dict({**flat, "row_gapp": 3})
    with pytest.raises(ValueError, match="needs a page_size"):
        case_from_dict({"type": "PagedPrefillCase", "batch": 1, "num_kv_heads": 1,
                        "group_size": 1, "head_dim": 16, "n_ctx": 4, "dtype": "float16",
                        "seq_lens": [4], "q_lens": [1], "causal": True, "scale": 1.0,
                        "seed": 0, "page_size": None})


def test_prefill_case_takes_no_q_transposed():
    """Prefill lays q out with `transposed`: a q_transposed there would be ignored."""
    with pytest.raises(ValueError, match="no q_transposed"):
        PrefillCase(batch=1, num_kv_heads=1, group_size=1, head_dim=16, n_q=1, n_k=1,
                    dtype="float16", causal=True, q_lens=None, kv_lens=None, scale=1.0,
                    seed=0, layout=Layout(q_transposed=True))


@pytest.mark.parametrize("bounds", [(17, 23), (32, 32), (17, 17)])
def test_head_dims_in_a_range_with_no_listed_dim(bounds):
    """A head-dim range that holds none of the listed dims (an adapter declaring D 32
    only) still draws, inside it; it used to fail at draw time (sampled_from of nothing)."""
    lo, hi = bounds

    @settings(max_examples=20, database=None)
    @given(head_dims(min_head_dim=lo, max_head_dim=hi))
    def draws(d):
        assert lo <= d <= hi

    draws()
