"""Conformance mode's harness: an Adapter (attention_kernel_triton.conformance) becomes a
runner per operation (tests/runners.py), a case strategy inside its declaration, and the
table of properties that hold for any implementation, each with the Supports features
it needs. tests/test_conformance.py runs them; tests/conformance_report.py tabulates.

Properties of our kernels' internals (split counts, program orders, TMA vs pointer
loads, validate=False paths) and relations that call a second operation are not in
the table: they test how our kernels work, or need two operations of the adapter.
"""

from __future__ import annotations

from dataclasses import replace

from attention_kernel_triton.conformance import Adapter, Supports, load
from attention_kernel_triton.strategies import cases
from tests import sizes
from tests.runners import RUNNERS

OUR_KNOBS = ("num_splits", "validate")  # never passed to a peer
# Without --attention-impl: torch's math SDPA and eager FlexAttention on the CPU (a few
# seconds); on a GPU the math SDPA only, since compiled FlexAttention compiles every shape
# it is drawn (scripts/gpu_run.sh's conformance step runs every shipped adapter).
DEFAULT_IMPLS = ("sdpa-math",) if sizes.ON_GPU else ("sdpa-math", "flex")

_COMMON = {"accuracy": (), "finite": (), "unread_memory": (), "every_element_written": ("out",),
           "inputs_untouched": (), "deterministic": ("deterministic",),
           "gqa_equals_mha": ("gqa",)}
_BATCHED = {"batch_equals_one_by_one": ()}
_PACKED = {"slack_rows_untouched": ("out",)}
_PAGED = {"page_permutation_bit_identical": ()}
_SPARSE = {"sparse_shuffle_invariant": (), "sparse_per_query_head_equals_per_kv_head": ("gqa",)}
_FP8 = {"fp8_equals_dequantized": ("fp8",)}
_VARIANTS = {"window_beyond_context_bit_identical": ("window",),
             "sinks_neg_inf_bit_identical": ("sinks",),
             "softcap_huge_equals_none": ("softcap",)}

# operation -> {property: the Supports features it needs}
PROPERTIES = {
    "prefill": {**_COMMON, **_BATCHED, **_VARIANTS},
    "prefill_varlen": {**_COMMON, **_PACKED, **_VARIANTS},
    "decode": {**_COMMON, **_BATCHED, **_FP8, **_VARIANTS,
               "decode_window_equals_slice": ("window", "lengths")},
    "paged_decode": {**_COMMON, **_BATCHED, **_PAGED, **_FP8, **_VARIANTS},
    "sparse_decode": {**_COMMON, **_BATCHED, **_SPARSE, **_FP8, **_VARIANTS},
    "sparse_paged_decode": {**_COMMON, **_BATCHED, **_PAGED, **_SPARSE, **_FP8, **_VARIANTS},
    "paged_prefill": {**_COMMON, **_PACKED, **_PAGED, **_FP8, **_VARIANTS},
}

# What the suite found in the shipped peers: (adapter name, operation, property) -> what
# fails. Each has its shrunk case in tests/corpus/conformance/<name>/. test_conformance
# expects these to fail (strict: a peer that is fixed shows as XPASS, which fails the run
# until its entry goes) and does not shrink them again. The property is never loosened.
_READS_MASKED = ("reads K/V rows that its mask excludes: NaN in padding past a sequence's "
                 "length (or in every row of a length-0 sequence) makes the output NaN, "
                 "since a masked probability of 0 times a NaN value is NaN; ours never "
                 "loads those rows")
# torch's cuDNN backend (torch 2.11, an H100) refuses the smallest case (B = Hq = Hkv =
# 1, Nq = Nk = 1, D 16, fp16: "RuntimeError: No available kernel"), so every property
# shrinks to that; it also gives wrong answers without an error on rows D + 3 apart
# (NaN, or errors of 2.45 with zeros in the gaps), which scripts/sdpa_gap_repro.py shows.
_CUDNN_REFUSES = ("refuses the smallest valid case, B = Hq = Hkv = 1, Nq = Nk = 1, D 16, "
                  "fp16 (RuntimeError: No available kernel); silently wrong on rows D + 3 "
                  "apart (scripts/sdpa_gap_repro.py)")
KNOWN_FAILURES = {
    ("sdpa-math", "prefill", "unread_memory"): _READS_MASKED,
    ("sdpa-math", "decode", "unread_memory"): _READS_MASKED,
    ("sdpa-efficient", "prefill", "unread_memory"): _READS_MASKED,
    ("sdpa-efficient", "decode", "unread_memory"): _READS_MASKED,
    **{("sdpa-cudnn", op, prop): _CUDNN_REFUSES for op in ("prefill", "decode")
       for prop in ("accuracy", "finite", "unread_memory", "inputs_untouched", "deterministic",
                    "gqa_equals_mha", "batch_equals_one_by_one")},
    ("flex", "prefill", "unread_memory"): _READS_MASKED + " (eager FlexAttention, the CPU)",
    ("flex", "decode", "unread_memory"): _READS_MASKED + " (eager FlexAttention, the CPU)",
}


def known_failure(ad: Adapter, op: str, prop: str, device) -> str | None:
    """KNOWN_FAILURES' entry for this run (the eager-flex ones on the CPU only)."""
    why = KNOWN_FAILURES.get((ad.name, op, prop))
    if why and "(eager FlexAttention, the CPU)" in why and str(device) != "cpu":
        return None
    return why


_loaded: dict[str, Adapter] = {}


def adapter(spec: str) -> Adapter:
    """load(spec), once per process."""
    if spec not in _loaded:
        _loaded[spec] = load(spec)
    return _loaded[spec]


def runner(ad: Adapter, op: str):
    """The runner of `op` with the adapter's callable: same inputs, oracle and poison as
    ours; the call maps our calling convention to the adapter's (conformance.py)."""
    supports = ad.supports_for(op)
    fn = ad.ops[op]

    def kernel(*, return_lse=False, out=None, **args):
        if not ad.is_ours:
            args = {k: v for k, v in args.items() if k not in OUR_KNOBS}
        if out is not None:
            if not supports.out:  # the table never runs such a property: a harness bug
                raise AssertionError(f"{ad.name} {op}: out= passed, but not declared")
            args["out"] = out
        if return_lse and supports.lse:
            args["return_lse"] = True
        got = fn(**args)
        return (got, None) if return_lse and not supports.lse else got

    return replace(RUNNERS[op], kernel=kernel, impl=ad.name, ours=ad.is_ours,
                   lse=supports.lse)


def skip_reason(ad: Adapter, op: str, prop: str) -> str | None:
    """Why `prop` of `op` cannot run against the adapter here (the declaration's reason),
    or None."""
    why = ad.why_unavailable()
    if why:
        return f"{ad.name}: {why}"
    supports = ad.supports_for(op)
    for feature in PROPERTIES[op][prop]:
        if not supports.has(feature):
            return f"{ad.name} {op}: no {feature}: {supports.why_not(feature)}"
    _, why = strategy(op, supports, fp8_only=prop == "fp8_equals_dequantized")
    return why


def strategy(op: str, supports: Supports, *, fp8_only: bool = False):
    """(strategy, None), the case strategy of `op` at this device's sizes (tests/sizes.py)
    cut to the declaration; or (None, why) when nothing is left to draw."""
    family = {"prefill": "prefill", "prefill_varlen": "prefill",
              "paged_prefill": "paged_prefill"}.get(op, "decode")
    kw = getattr(sizes, family)()
    kw["dtypes"] = tuple(d for d in kw["dtypes"] if d in supports.dtypes
                         and not (fp8_only and d == "float32"))
    kw["min_head_dim"] = max(16, supports.head_dims[0])
    kw["max_head_dim"] = min(kw["max_head_dim"], supports.head_dims[1])
    if not kw["dtypes"] or kw["min_head_dim"] > kw["max_head_dim"]:
        return None, (f"nothing to draw: dtypes {supports.dtypes} and head dims "
                      f"{supports.head_dims} vs this device's {getattr(sizes, family)()}")
    if not supports.gqa:
        kw["max_group"] = 1
    if not supports.unaligned_rows:
        kw["row_gaps"] = cases.ALIGNED_ROW_GAPS
    kw["variants"] = tuple(supports.variants) or False
    if family != "prefill":
        kw["kv_dtypes"] = tuple(supports.fp8) if fp8_only else \
            (None, *(d for d in kw["kv_dtypes"] if d in supports.fp8))
    if family in ("prefill", "paged_prefill"):
        kw["causal"] = None if supports.causal and supports.non_causal else supports.causal
    if family == "prefill":
        if not supports.rectangular_causal:
            kw["same_q_k"] = True
        if op == "prefill_varlen":
            kw["varlen"] = True
        elif not supports.lengths:
            kw["padded"] = False
        return cases.prefill_cases(**kw), None
    if family == "paged_prefill":
        return cases.paged_prefill_cases(**kw), None
    paged, sparse = "paged" in op, "sparse" in op
    if not supports.lengths and not paged:
        kw["with_lens"] = False
    return cases.decode_cases(**kw, paged=paged, sparse=sparse), None
