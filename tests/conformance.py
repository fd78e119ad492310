"""Conformance mode's harness: an Adapter (attention_kernel_triton.conformance) becomes a
description per operation (tests/opinfo.py), a case strategy inside its declaration, and the
table of properties that hold for any implementation, each with the Supports features
it needs. tests/test_conformance.py runs them; tests/conformance_report.py tabulates.

Properties of our kernels' internals (split counts, program orders, TMA vs pointer
loads, validate=False paths) and relations that call a second operation are not in
the table: they test how our kernels work, or need two operations of the adapter.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from attention_kernel_triton.conformance import Adapter, Supports, load
from attention_kernel_triton.strategies import cases
from tests import sizes
from tests.checks import NO_LSE
from tests.opinfo import OPS, SUPPORTS_FEATURES
from tests.properties import DECLARED

OUR_KNOBS = ("num_splits", "validate")  # never passed to a peer
# Without --attention-impl: torch's math SDPA. Not flex: eager FlexAttention (the CPU) hit
# an intermittent TypeError inside torch 2.13's dynamo after many calls (one run in
# three, even with a dynamo reset every 32 calls), which would make CI flaky; compiled
# FlexAttention (a GPU) compiles every shape it is drawn. Run it by name
# (--attention-impl=flex); scripts/gpu_run.sh's conformance step runs every adapter.
DEFAULT_IMPLS = ("sdpa-math",)

# operation -> {property: the Supports features it needs}: the properties of our table
# (tests/properties.py) that apply to the operation and are portable (no knob of our
# kernels, no second operation of ours).
PROPERTIES = {op: {p.name: tuple(n for n in p.needs if n in SUPPORTS_FEATURES)
                   for p in DECLARED.values() if p.portable() and p.applies_to(info)}
              for op, info in OPS.items()}

# What the suite found in the shipped peers: (adapter name, operation, property) ->
# (what fails, the exception type, a regex its message matches). Each has its shrunk case
# in tests/corpus/conformance/<name>/. They apply to the shipped adapters only (loaded by
# name), and only to that failure: test_conformance expects it (strict: a fixed peer
# fails the run until its entry goes; any other failure fails as usual) and does not
# shrink it again. No property is loosened for them.
_READS_MASKED = ("reads K/V rows that its mask excludes: NaN in padding past a sequence's "
                 "length (or in every row of a length-0 sequence) makes the output NaN, "
                 "since a masked probability of 0 times a NaN value is NaN; ours never "
                 "loads those rows", AssertionError, r"poisoned unread memory")
# torch's cuDNN backend (torch 2.11, an H100) refuses the smallest case (B = Hq = Hkv =
# 1, Nq = Nk = 1, D 16, fp16), so every property shrinks to that and stops there: its
# wrong answers on rows D + 3 apart are shown by scripts/sdpa_gap_repro.py instead.
_CUDNN_REFUSES = ("refuses the smallest valid case, B = Hq = Hkv = 1, Nq = Nk = 1, D 16, "
                  "fp16 (RuntimeError: No available kernel)", RuntimeError,
                  r"No available kernel")
KNOWN_FAILURES = {
    ("sdpa-math", "prefill", "unread_memory"): _READS_MASKED,
    ("sdpa-math", "decode", "unread_memory"): _READS_MASKED,
    ("sdpa-efficient", "prefill", "unread_memory"): _READS_MASKED,
    ("sdpa-efficient", "decode", "unread_memory"): _READS_MASKED,
    **{("sdpa-cudnn", op, prop): _CUDNN_REFUSES for op in ("prefill", "decode")
       for prop in ("accuracy", "finite", "unread_memory", "inputs_untouched", "deterministic",
                    "gqa_equals_mha", "batch_equals_one_by_one")},
    ("flex", "prefill", "unread_memory"): (_READS_MASKED[0] + " (eager FlexAttention, the "
                                           "CPU)", *_READS_MASKED[1:]),
    ("flex", "decode", "unread_memory"): (_READS_MASKED[0] + " (eager FlexAttention, the "
                                          "CPU)", *_READS_MASKED[1:]),
    # paged decode through flex runs over the physical cache (adapters.flex): eager, it
    # scores every physical key, those of pages the sequence does not own included
    ("flex", "paged_decode", "unread_memory"): (
        "reads every page of the cache: NaN in a page no sequence owns (or past a "
        "sequence's length) makes the output NaN (eager FlexAttention, the CPU)",
        AssertionError, r"poisoned unread memory"),
    ("flex", "paged_decode", "page_permutation_bit_identical"): (
        "a key's score depends on where its page sits in the cache: moving the one page "
        "of a one-token sequence (B3, P3, lengths 0, 1, 0) changes its LSE by 3.7e-8 "
        "(one float32 ulp; eager FlexAttention, the CPU: one GEMM over the physical "
        "cache)", AssertionError, r"pages permuted"),
    # FlashInfer 0.2.5 (an H100, torch 2.11, nvcc 13.0, session 22): a sequence of length
    # 0 gets a finite LSE (our reading: near its running max's -5e4 start), not -inf
    **{("flashinfer", "paged_decode", prop): (
        "a length-0 sequence's LSE is finite, -34654.5 (-49996 in FlashInfer's base-2 "
        "units: about its -5e4 start for the running max), not -inf: B1 Hq = Hkv = 1 D16 "
        "P1, seq_lens (0,); its output row is within the rule", AssertionError, regex)
       for prop, regex in (("accuracy", r"lse is off the float64 oracle[\s\S]*oracle -inf"),
                           ("finite", r"lse is -inf exactly on the empty rows"))},
}


def known_failure(spec: str, op: str, prop: str, device):
    """KNOWN_FAILURES' entry for this run, or None: shipped adapters by name only (a
    user's adapter that happens to share a name gets none), the eager-flex ones on the
    CPU only."""
    from attention_kernel_triton.adapters import SHIPPED

    entry = KNOWN_FAILURES.get((spec, op, prop)) if spec in SHIPPED else None
    if entry and "(eager FlexAttention, the CPU)" in entry[0] and str(device) != "cpu":
        return None
    return entry


def is_known(entry, exc: BaseException) -> bool:
    """Every failure in exc (an ExceptionGroup when Hypothesis found several) is the
    known one."""
    import re

    group = getattr(exc, "exceptions", None)  # an exception group (3.10: the backport)
    if group is not None:
        return all(is_known(entry, e) for e in group)
    return isinstance(exc, entry[1]) and re.search(entry[2], str(exc)) is not None


_loaded: dict[str, Adapter] = {}


def adapter(spec: str) -> Adapter:
    """load(spec), once per process."""
    if spec not in _loaded:
        _loaded[spec] = load(spec)
    return _loaded[spec]


def op_info(ad: Adapter, op: str):
    """The description of `op` (tests/opinfo.py) with the adapter's callable and
    declaration: same inputs, oracle and poison as ours; the call maps our calling
    convention to the adapter's (conformance.py)."""
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
        if "return_lse" not in args and not isinstance(got, torch.Tensor):
            raise AssertionError(f"{ad.name} {op}() without return_lse returned "
                                 f"{type(got).__name__}, not the output tensor")
        return (got, NO_LSE) if return_lse and not supports.lse else got

    return replace(OPS[op], kernel=kernel, impl=ad.name, ours=ad.is_ours, supports=supports,
                   knobs=OPS[op].knobs if ad.is_ours else frozenset())


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
    any_of = DECLARED[prop].needs_any
    if any_of and not any(map(supports.has, any_of)):
        return f"{ad.name} {op}: none of {', '.join(any_of)} (the property needs one)"
    _, why = strategy(op, supports, fp8_only=DECLARED[prop].draws == "fp8")
    return why


# a case's variant fields -> the VARIANTS name (Supports.variants) each needs
_CASE_VARIANTS = {"window": "window", "softcap": "softcap", "sinks": "sinks",
                  "alibi": "alibi_slopes"}


def outside(supports: Supports, op: str, case) -> str | None:
    """Why a stored case (a corpus entry) lies outside `supports`, or None. strategy()
    never draws such a case; a replay of one (a declaration narrowed after the case was
    kept) is skipped with this reason rather than run against what the adapter says it
    does not compute."""
    why = []
    if case.dtype not in supports.dtypes:
        why.append(f"dtype {case.dtype}")
    lo, hi = supports.head_dims
    if not lo <= case.head_dim <= hi:
        why.append(f"head_dim {case.head_dim} outside {supports.head_dims}")
    if case.group_size > 1 and not supports.gqa:
        why.append("GQA")
    elif supports.group_sizes and case.group_size not in supports.group_sizes:
        why.append(f"GQA group {case.group_size} (takes {supports.group_sizes})")
    if case.layout.row_gap not in cases.ALIGNED_ROW_GAPS and not supports.unaligned_rows:
        why.append(f"rows {case.layout.row_gap} elements apart")
    kv = getattr(case, "kv_dtype", None)
    if kv is not None and kv not in supports.fp8:
        why.append(f"{kv} cache")
    for field, name in _CASE_VARIANTS.items():
        if getattr(case.variants, field) is not None and name not in supports.variants:
            why.append(name)
    causal = getattr(case, "causal", None)
    if causal is True and not supports.causal or causal is False and not supports.non_causal:
        why.append(f"causal={causal}")
    if op in ("prefill", "prefill_varlen"):
        if causal and case.n_q != case.n_k and not supports.rectangular_causal:
            why.append("rectangular causal")
        if op == "prefill" and case.q_lens is not None and not supports.lengths:
            why.append("lengths")
    elif op in ("decode", "sparse_decode") and case.seq_lens is not None \
            and not supports.lengths:
        why.append("lengths")
    return f"outside the declaration: {', '.join(why)}" if why else None


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
    groups = tuple(g for g in supports.group_sizes if g <= kw["max_group"])
    if supports.group_sizes and not groups:
        return None, (f"nothing to draw: GQA groups {supports.group_sizes} vs this device's "
                      f"largest, {kw['max_group']}")
    if groups:
        kw["max_group"] = max(groups)
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
        drawn = cases.prefill_cases(**kw)
    elif family == "paged_prefill":
        drawn = cases.paged_prefill_cases(**kw)
    else:
        paged, sparse = "paged" in op, "sparse" in op
        if not supports.lengths and not paged:
            kw["with_lens"] = False
        drawn = cases.decode_cases(**kw, paged=paged, sparse=sparse)
    if groups:  # the case strategies draw a range of groups; most of it is kept
        drawn = drawn.filter(lambda case: case.group_size in groups)
    return drawn, None
