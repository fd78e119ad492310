"""The suite's properties, each a plain function `(op, case, device)`.

Hypothesis tests (tests/test_*.py) draw cases and call `check(kernel, property, case,
device)`; the corpus replay calls the same function with a stored case. A property
failure is recorded (tests/corpus_io.py) so that the shrunk case lands in tests/corpus/.

Numbers refer to DESIGN.md's list: 1 accuracy, 2 finite, 3 unread memory,
4 every element written, 5 inputs untouched, 6 metamorphic relations, 7 deterministic.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

import attention_kernel_triton as kernels
from attention_kernel_triton.strategies.cases import VARIANT_ARGS as VARIANTS
from attention_kernel_triton.strategies.tensors import relayout_like
from tests import compile_record, corpus_io
from tests.checks import (
    K_LOWP,
    NO_LSE,
    TOL,
    _abs_err,
    assert_close_pair,
    assert_close_to_oracle,
    assert_finite,
    assert_same_bits,
    finite_abs_max,
)
from tests.opinfo import KNOBS, LAYOUT, OPS, STREAMS, SUPPORTS_FEATURES


@dataclass(frozen=True)
class Property:
    """A property and what it needs. needs: features the operation must have (OpInfo.has:
    layout, our knobs, anything Supports declares). draws: the stream of cases it needs
    (opinfo.STREAMS: "fp8", "variants"), None for any case. calls: other operations of
    ours it compares against (a relation between two of our functions: never run against
    another implementation). ops: the operations it is written for, when it reads
    arguments only they take (None: every operation with its needs). needs_any: at least
    one of these features (a relation about inputs of which any one will do)."""

    fn: Callable
    needs: tuple[str, ...] = ()
    draws: str | None = None
    calls: tuple[str, ...] = ()
    ops: tuple[str, ...] | None = None
    needs_any: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.fn.__name__

    def applies_to(self, op) -> bool:
        return ((self.ops is None or op.name in self.ops) and all(map(op.has, self.needs))
                and (not self.needs_any or any(map(op.has, self.needs_any))))

    def portable(self) -> bool:
        """Runs against any implementation: no knob of ours, no second operation."""
        return not self.calls and not set(self.needs) & set(KNOBS)


PROPERTIES: dict[str, Callable] = {}  # name -> fn (what check() and the corpus call)
DECLARED: dict[str, Property] = {}  # name -> its declaration


def prop(fn=None, *, needs=(), draws=None, calls=(), ops=None, needs_any=()):
    """Register a property: ``@prop`` or ``@prop(needs=(...), ...)`` (see Property)."""
    def register(f):
        for n in (*needs, *needs_any):
            if n not in LAYOUT and n not in KNOBS and n not in SUPPORTS_FEATURES:
                raise ValueError(f"@prop {f.__name__}: unknown need {n!r}")
        if draws is not None and draws not in STREAMS:
            raise ValueError(f"@prop {f.__name__}: unknown stream {draws!r}")
        DECLARED[f.__name__] = Property(f, tuple(needs), draws, tuple(calls),
                                        None if ops is None else tuple(ops), tuple(needs_any))
        PROPERTIES[f.__name__] = f
        return f
    return register(fn) if fn is not None else register


def properties(op, stream: str = "general") -> list[str]:
    """The properties of operation `op` (a name, or an OpInfo such as a narrower path of
    one) on a stream of cases (opinfo.STREAMS): every property that applies, for
    "general" those that draw nothing special; for another stream its own list plus the
    properties that draw it."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {list(STREAMS)}")
    info, focus = OPS[op] if isinstance(op, str) else op, STREAMS[stream]
    if stream not in info.streams:
        raise ValueError(f"{info.name} has no {stream!r} stream of cases (OpInfo.streams: "
                         f"{info.streams})")
    return [p.name for p in DECLARED.values() if p.applies_to(info) and (
        p.draws is None if focus is None else p.name in focus or p.draws == stream)]


def table() -> str:
    """Markdown: property x operation, which stream runs it ("general", "fp8", ...)."""
    ops = list(OPS)
    rows = ["| property | needs | " + " | ".join(ops) + " |",
            "|---|---|" + "---|" * len(ops)]
    for p in DECLARED.values():
        cells = [", ".join(s for s in OPS[o].streams if p.name in properties(o, s)) or "-"
                 for o in ops]
        needs = "; ".join(filter(None, (", ".join(p.needs),
                                        p.needs_any and "one of " + " / ".join(p.needs_any),
                                        p.calls and "calls " + ", ".join(p.calls))))
        rows.append(f"| {p.name} | {needs or '-'} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def check(kernel: str, name: str, case, device, *, op=None, impl_spec=None,
          path: str | None = None) -> None:
    """Run property `name` of `kernel` on `case`, recording a failure for the corpus.
    Conformance mode passes another implementation's op and its --attention-impl
    spec (tests/conformance.py); its failures go to that adapter's corpus folder.
    path: the kernel path a caller forced ("gluon": tests/opinfo.py forced_gluon with
    GLUON_PREFILL), kept with a failure so that its replay forces it too."""
    impl = None
    if impl_spec is not None or (op is not None and not op.ours):
        # another implementation's failure: never into our corpus (test_corpus.py replays
        # that against our kernels)
        impl = (op.impl, impl_spec or op.impl)
    if compile_record.recording():  # no kernel runs: outputs are garbage, failures moot
        with contextlib.suppress(Exception):
            PROPERTIES[name](op or OPS[kernel], case, device)
        return
    with corpus_io.recording(kernel, name, case, device, impl, path):
        PROPERTIES[name](op or OPS[kernel], case, device)


def with_examples(cases):
    """Hypothesis's @example for each of `cases` (a list kept beside the test)."""
    from hypothesis import example

    def wrap(fn):
        for c in reversed(cases):
            fn = example(case=c)(fn)
        return fn
    return wrap


def _restrict(op, args, out, lse):
    """Elements the kernel does not define (packed rows past the last sequence) are set
    to the oracle's convention (0, -inf) so whole tensors can be compared."""
    if not op.has("packed"):
        return out, lse
    end = int(args["cu_seqlens_q"][-1])
    out = out.clone()
    out[end:] = 0
    if lse is not None and lse is not NO_LSE:
        lse = lse.clone()
        lse[:, end:] = float("-inf")
    return out, lse


def _bounds(op, args) -> tuple[float, float]:
    """The accuracy rule's bounds for this input, (outputs, LSE): used by relations
    between two runs of a kernel that may legitimately round differently. The LSE bound
    scales with the oracle's largest finite |LSE| (as the rule's magnitude does), never
    with a kernel's own result."""
    ref, ref_lse = op.oracle(args)
    low, _ = op.oracle(args, dtype=args["q"].dtype)
    bound = 2 * (TOL[args["q"].dtype] + K_LOWP * finite_abs_max(_abs_err(low, ref)))
    return bound, bound * max(1.0, finite_abs_max(ref_lse))


def _bound(op, args) -> float:
    return _bounds(op, args)[0]




def _scales(args) -> dict:
    """The call's fp8 scales (k_scale / v_scale), to pass on to a related call."""
    return {k: args[k] for k in ("k_scale", "v_scale") if k in args}


def _variants(args) -> dict:
    """The call's variant options, to pass on to a related call."""
    return {k: args[k] for k in VARIANTS if k in args}


def _heads_twice(args) -> dict:
    """Per-query-head options (sinks, ALiBi slopes) of a call whose query heads are each
    repeated twice."""
    return {k: args[k].repeat_interleave(2) for k in ("sinks", "alibi_slopes") if k in args}


def _dequantized(op, args) -> dict:
    """The same call on 16-bit caches (q's dtype) holding an fp8 cache's real values,
    stored x scale, rounded once, and no scales: what a function without fp8 support (or
    the fp8 relation below) runs. Any other call is returned as it is."""
    from attention_kernel_triton.oracles.reference import dequantize

    new = {k: v for k, v in args.items() if k not in ("k_scale", "v_scale")}
    for name, scale_name in zip(op.kv_names, ("k_scale", "v_scale"), strict=True):
        new[name] = relayout_like(dequantize(args[name], args.get(scale_name),
                                             op.kv_head_axis).to(args["q"].dtype), args[name])
    return new


# --- 1, 2: accuracy and finiteness -------------------------------------------------------

@prop
def accuracy(op, case, device):
    args = op.inputs(case, device)
    out, lse = _restrict(op, args, *op.call(args))
    ref_out, ref_lse = op.oracle(args)
    low_out, low_lse = op.oracle(args, dtype=args["q"].dtype)
    dtype = args["q"].dtype
    max_logit = finite_abs_max(ref_lse)  # ~ the largest logit
    assert_close_to_oracle("out", out, ref_out, low_out, dtype, case=case,
                           max_logit=max_logit)
    assert_close_to_oracle("lse", lse, ref_lse, low_lse, dtype, case=case, lse=True)
    if dtype != torch.float32:
        # Every kernel computes the LSE in fp32 from its fp16/bf16 inputs, so it also meets
        # the rule with the formula run in fp32 on the same inputs as ref_lowp (the fp16
        # logsumexp above allows ~0.3 nats at logits ~30; this allows ~1e-4).
        _, lse32 = op.oracle(args, dtype=torch.float32)
        assert_close_to_oracle("lse (fp32 rule)", lse, ref_lse, lse32, torch.float32,
                               case=case, lse=True, max_logit=max_logit)
    # The public default, return_lse=False, compiles without the LSE stores: same rule.
    out, _ = _restrict(op, args, *op.call(args, return_lse=False))
    assert_close_to_oracle("out (return_lse=False)", out, ref_out, low_out, dtype, case=case,
                           max_logit=max_logit)


@prop
def finite(op, case, device):
    args = op.inputs(case, device)
    out, lse = _restrict(op, args, *op.call(args))
    _, ref_lse = op.oracle(args)
    assert_finite("out", out, case=case)
    assert_finite("lse", lse, case=case, allow_neg_inf=ref_lse == float("-inf"))
    if lse is NO_LSE:  # an implementation without LSE (conformance mode)
        return
    empty_ok = (lse == float("-inf")) == (ref_lse == float("-inf"))
    if not bool(empty_ok.all()):
        where = [tuple(i) for i in (~empty_ok).nonzero()[:5].tolist()]
        raise AssertionError(f"lse is -inf exactly on the empty rows: mismatch at {where}"
                             f"\ncase: {case}")


# --- 3, 4, 5, 7: memory and call contract -----------------------------------------------

@prop(needs=("deterministic",))
def unread_memory(op, case, device):
    """NaN in padding, unused pages, table slots past the end, unselected tokens: the
    output must not change by a single bit. Prefill: with TMA wherever the layout allows
    it and with pointer loads forced (the default is one of the two per layout)."""
    from attention_kernel_triton.kernels import tuning

    args = op.inputs(case, device)
    poisoned = op.poison(args)
    modes = (True, False) if op.has("load_paths") else (None,)
    for mode in modes:
        with tuning.override(tma=mode) if mode is not None else contextlib.nullcontext():
            out, lse = _restrict(op, args, *op.call(args))
            out_p, lse_p = _restrict(op, args, *op.call(poisoned))
        where = {None: "", True: ", TMA where allowed", False: ", pointer loads"}[mode]
        assert_same_bits(f"out (poisoned unread memory{where})", out_p, out, case=case)
        assert_same_bits(f"lse (poisoned unread memory{where})", lse_p, lse, case=case)


def _storage(t: torch.Tensor) -> torch.Tensor:
    """Every element of t's storage, as a flat tensor of t's dtype (a view)."""
    return torch.empty(0, dtype=t.dtype, device=t.device).set_(t.untyped_storage())


def _call_into_nan_out(op, args, case):
    """Call with out= pre-filled with NaN: fresh and contiguous, or (case.layout.out_like_q)
    with q's strides and NaN gaps (a transposed storage, rows with a gap, ...). Checks that the
    call returns that tensor and leaves every storage element outside the view (the gaps)
    bit-identical. Returns (out, lse)."""
    like = args["q"]
    out = torch.full(like.shape, float("nan"), dtype=like.dtype, device=like.device)
    if case.layout.out_like_q:
        out = relayout_like(out, like)
    store = _storage(out)
    outside = torch.ones(store.shape, dtype=torch.bool, device=store.device)
    outside.as_strided(out.shape, out.stride(), out.storage_offset()).fill_(False)
    before = store[outside]  # a copy
    got, lse = op.call(args, out=out)
    if got is not out:
        raise AssertionError(f"the kernel did not return the out= tensor\ncase: {case}")
    assert_same_bits(f"out= storage outside the view (strides {tuple(out.stride())})",
                     store[outside], before, case=case)
    return got, lse


@prop(needs=("out",))
def every_element_written(op, case, device):
    args = op.inputs(case, device)
    got, lse = _restrict(op, args, *_call_into_nan_out(op, args, case))
    assert_finite("out (pre-filled with NaN)", got, case=case)


@prop(needs=("packed", "out"))
def slack_rows_untouched(op, case, device):
    """Packed query rows past cu_seqlens_q[-1] belong to no sequence: out= keeps its
    values there bit for bit (prefill_varlen, paged_prefill; split calls too)."""
    args = op.inputs(case, device)
    end = int(args["cu_seqlens_q"][-1])
    for splits in ((None, 3) if op.has("splits") else (None,)):
        out = torch.full_like(args["q"], 7.0)
        extra = {} if splits is None else {"num_splits": splits}
        got, _ = op.call({**args, **extra}, out=out)
        assert_same_bits(f"out rows past cu_seqlens_q[-1] (num_splits={splits})", got[end:],
                         torch.full_like(got[end:], 7.0), case=case)


@prop
def inputs_untouched(op, case, device):
    """Every input is bit-identical after the call: its whole storage, the gaps that its
    view hides included."""
    args = op.inputs(case, device)
    before = {k: _storage(v).clone() for k, v in args.items() if isinstance(v, torch.Tensor)}
    op.call(args)
    for k, v in before.items():
        assert_same_bits(f"input {k} (its whole storage) after the call", _storage(args[k]),
                         v, case=case)


@prop(needs=("deterministic",))
def deterministic(op, case, device):
    args = op.inputs(case, device)
    out1, lse1 = op.call(args)
    out2, lse2 = op.call(args)
    out1, lse1 = _restrict(op, args, out1, lse1)
    out2, lse2 = _restrict(op, args, out2, lse2)
    assert_same_bits("out (second call)", out2, out1, case=case)
    assert_same_bits("lse (second call)", lse2, lse1, case=case)


# --- 6: metamorphic relations -----------------------------------------------------------

@prop(needs=("gqa",))
def gqa_equals_mha(op, case, device):
    """GQA equals MHA on repeat-interleaved K/V. A group-1 case is MHA already (repeating
    K/V once changes nothing), so there the relation runs the other way: each query head
    repeated twice is a GQA call with groups of 2 whose output is MHA's, each head twice
    (the query head -> KV head map h // group, with a group the case did not draw)."""
    args = op.inputs(case, device)
    group = case.group_size
    bound, lse_bound = _bounds(op, args)
    lse_heads = op.lse_head_axis
    if group == 1:
        # heads are dim 1 of q and out in every layout; index rows (H_idx = Hkv = Hq here)
        # stay per KV head
        twice = {**args, "q": args["q"].repeat_interleave(2, 1), **_heads_twice(args)}
        out, lse = _restrict(op, args, *op.call(args))
        out_gqa, lse_gqa = _restrict(op, twice, *op.call(twice))
        assert_close_pair("each query head twice (groups of 2) vs MHA", out_gqa,
                          out.repeat_interleave(2, 1), bound, case=case)
        assert_close_pair("lse, each query head twice (groups of 2) vs MHA", lse_gqa,
                          NO_LSE if lse is NO_LSE else lse.repeat_interleave(2, lse_heads),
                          lse_bound, case=case)
        return
    mha = {**args, **{name: args[name].repeat_interleave(group, op.kv_head_axis)
                      for name in op.kv_names}}
    if op.has("sparse") and args["indices"].shape[1] != case.num_q_heads:
        mha["indices"] = args["indices"].repeat_interleave(group, 1)
    for name, scale in _scales(args).items():  # fp8: a per-KV-head scale follows its head
        mha[name] = scale.repeat_interleave(group) if scale.numel() > 1 else scale
    out, lse = _restrict(op, args, *op.call(args))
    out_mha, lse_mha = _restrict(op, args, *op.call(mha))
    assert_close_pair("GQA vs MHA on repeated K/V", out, out_mha, bound, case=case)
    assert_close_pair("lse, GQA vs MHA on repeated K/V", lse, lse_mha, lse_bound, case=case)


@prop(needs=("batched",))
def batch_equals_one_by_one(op, case, device):
    """Each sequence of a batch, run alone, gives its rows of the batched output."""
    args = op.inputs(case, device)
    out, _ = op.call(args)
    bound = _bound(op, args)
    per_b = ("q", "k", "v", "seq_lens", "kv_seq_lens", "block_table", "indices")
    for b in range(case.batch):
        one = {k: (v[b:b + 1] if k in per_b and isinstance(v, torch.Tensor) else v)
               for k, v in args.items()}
        out_b, _ = op.call(one)
        assert_close_pair(f"sequence {b} alone vs in the batch", out_b, out[b:b + 1], bound,
                          case=case)


def _split_counts(op, args) -> tuple[int, ...]:
    """splits_agree's split counts. On a GPU 2, 3, 7 and 64 (the paged default's cap).
    Under the interpreter a call costs programs x splits (64 splits took 3/4 of the
    property's CPU time), so one count does there what 7 and 64 did: 2, the basic merge;
    3, uneven splits (three tiles, the last one partial; or two tiles and an empty split);
    and the smallest count past both 16 and the key list's tiles (17 at the CPU's sizes):
    splits that see no key (LSE -inf, weight 0 in the merge), and a merge wider than 16
    (SPLITS_PAD 32, its lanes past num_splits masked)."""
    from attention_kernel_triton.kernels._config import INTERPRETER, interpreting

    if not interpreting():
        return (2, 3, 7, 64)
    tiles = -(-op.key_slots(args) // INTERPRETER.block_n)  # every kernel's tile there
    return (2, 3, max(17, tiles + 1))


@prop(needs=("splits",))
def splits_agree(op, case, device):
    """Any split count gives the same result within tolerance (empty splits included;
    the counts: _split_counts)."""
    args = {k: v for k, v in op.inputs(case, device).items() if k != "num_splits"}
    bound, lse_bound = _bounds(op, args)
    base, base_lse = _restrict(op, args, *op.call(args, num_splits=1))
    for n in _split_counts(op, args):
        out, lse = _restrict(op, args, *op.call(args, num_splits=n))
        assert_close_pair(f"num_splits={n} vs 1", out, base, bound, case=case)
        assert_close_pair(f"lse num_splits={n} vs 1", lse, base_lse, lse_bound, case=case)


@prop(needs=("load_paths",))
def load_paths_agree(op, case, device):
    """Prefill through TMA descriptors (where the layout allows them) equals prefill with
    pointer loads forced, within the accuracy rule's bound."""
    from attention_kernel_triton.kernels import tuning

    args = op.inputs(case, device)
    bound, lse_bound = _bounds(op, args)
    with tuning.override(tma=True):
        out, lse = _restrict(op, args, *op.call(args))
    with tuning.override(tma=False):
        ref, ref_lse = _restrict(op, args, *op.call(args))
    assert_close_pair("TMA vs pointer loads", out, ref, bound, case=case)
    assert_close_pair("lse, TMA vs pointer loads", lse, ref_lse, lse_bound, case=case)


def _orders_agree(op, case, device, from_end: bool):
    """Prefill's program order (pairs of batch and head per chunk, see
    tuning.prefill_chunk_pairs; query tiles counted from the longest length or from each
    sequence's end, tuning.prefill_tiles_from_end) moves work between programs' start
    times, never between programs: every order gives the bits of one pair per chunk, tiles
    from the longest. Chunks of pairs - 1 leave a short last chunk whenever there are 3
    pairs or more; outputs start as NaN, so a tile that one order skips cannot pass on
    memory another call left behind. Each order compiles its own kernel variant: the two
    properties below split the orders, so that xdist can run them side by side."""
    from attention_kernel_triton.kernels import tuning

    args = op.inputs(case, device)
    pairs_total = case.batch * case.num_kv_heads * case.group_size

    def run(pairs, tiles_from_end):
        with tuning.override(prefill_chunk_pairs=pairs, prefill_tiles_from_end=tiles_from_end):
            return _restrict(op, args, *_call_into_nan_out(op, args, case))

    ref, ref_lse = run(1, False)
    short_last = max(1, pairs_total - 1)
    chunkings = {1, short_last, 1 << 30} if from_end else {2, 3, short_last, 1 << 30}
    start = "each end" if from_end else "the longest"
    for pairs in sorted(chunkings):
        what = f"{pairs} pairs per chunk, tiles from {start}"
        out, lse = run(pairs, from_end)
        assert_same_bits(f"out ({what})", out, ref, case=case)
        assert_same_bits(f"lse ({what})", lse, ref_lse, case=case)


@prop(needs=("program_order",))
def program_order_agrees(op, case, device):
    """Query tiles counted from the longest length: 2, 3, pairs - 1 and all pairs per
    chunk give the bits of one pair per chunk."""
    _orders_agree(op, case, device, from_end=False)


@prop(needs=("program_order",))
def program_order_from_end_agrees(op, case, device):
    """Query tiles counted from each sequence's end: 1, pairs - 1 and all pairs per chunk
    give the bits of one pair per chunk, tiles from the longest."""
    _orders_agree(op, case, device, from_end=True)


def _permute_pages(args, seed):
    """Move page i to perm[i] (caches) and rewrite the table: same logical content."""
    g = torch.Generator().manual_seed(seed)
    kc = args["k_cache"]
    num_pages = kc.shape[0]
    if num_pages == 0:
        return dict(args)
    perm = torch.randperm(num_pages, generator=g).to(kc.device)
    new = dict(args)
    for name in ("k_cache", "v_cache"):
        c = relayout_like(torch.empty_like(args[name]), args[name])  # same strides and gaps
        c[perm] = args[name]
        new[name] = c
    t = args["block_table"]
    in_range = (t >= 0) & (t < num_pages)
    new["block_table"] = torch.where(in_range, perm[t.clamp(0, num_pages - 1).long()].to(
        torch.int32), t)
    return new


@prop(needs=("paged", "deterministic"))
def page_permutation_bit_identical(op, case, device):
    args = op.inputs(case, device)
    out, lse = _restrict(op, args, *op.call(args))
    out_p, lse_p = _restrict(op, args, *op.call(_permute_pages(args, case.seed + 1)))
    assert_same_bits("out (pages permuted)", out_p, out, case=case)
    assert_same_bits("lse (pages permuted)", lse_p, lse, case=case)


@prop(needs=("fp8",), draws="fp8")
def fp8_equals_dequantized(op, case, device):
    """An fp8 cache with its scales equals the same call on a 16-bit cache (q's dtype)
    holding the dequantised values, stored x scale, within the accuracy rule's bound (whose
    low-precision reference runs on those values: what fp8 storage lost is in both)."""
    if getattr(case, "kv_dtype", None) is None:
        raise ValueError(f"fp8_equals_dequantized needs an fp8 case (kv_dtype), got {case}")
    args = op.inputs(case, device)
    bound, lse_bound = _bounds(op, args)
    out, lse = _restrict(op, args, *op.call(args))
    real = _dequantized(op, args)
    out16, lse16 = _restrict(op, real, *op.call(real))
    assert_close_pair("fp8 cache vs its dequantised values in q's dtype", out, out16, bound,
                      case=case)
    assert_close_pair("lse, fp8 cache vs its dequantised values in q's dtype", lse, lse16,
                      lse_bound, case=case)


@prop(ops=("decode",), calls=("prefill",))
def decode_equals_prefill_last_row(op, case, device):
    """decode(q) == the last (only) query row of causal prefill on the same cache."""
    args = op.inputs(case, device)
    out, _ = op.call(args)
    q = args["q"] if args["q"].dim() == 4 else args["q"].unsqueeze(2)
    b, n = q.shape[0], args["k"].shape[2]
    lens = args.get("seq_lens", torch.full((b,), n, dtype=torch.int32, device=device))
    dense = _dequantized(op, args)  # prefill takes no fp8 cache
    pre = kernels.prefill(q, dense["k"], dense["v"], causal=True,
                          seq_lens=torch.ones_like(lens), kv_seq_lens=lens,
                          sm_scale=args.get("sm_scale"), **_variants(args))
    assert_close_pair("decode vs prefill's last row", out.reshape(pre.shape), pre,
                      _bound(op, args), case=case)


@prop(ops=("decode",), calls=("paged_decode",))
def paged_one_page_per_sequence_equals_decode(op, case, device):
    """A dense cache laid out as one page per sequence (page size N) through
    paged_decode equals decode."""
    args = op.inputs(case, device)  # a dense decode case
    out, _ = op.call(args)
    b, n = args["k"].shape[0], args["k"].shape[2]
    lens = args.get("seq_lens", torch.full((b,), n, dtype=torch.int32, device=device))
    table = torch.arange(b, dtype=torch.int32, device=device).view(b, 1)
    k, v = args["k"], args["v"]
    if n == 0:  # a page holds at least one token: one slot per sequence, never read (NaN)
        k = torch.full((*k.shape[:2], 1, k.shape[3]), float("nan"), dtype=k.dtype,
                       device=device)
        v = k.clone()
    out_p = kernels.paged_decode(args["q"], k.transpose(1, 2), v.transpose(1, 2),
                                 table, lens, num_splits=args.get("num_splits"),
                                 sm_scale=args.get("sm_scale"), **_scales(args),
                                 **_variants(args))
    assert_close_pair("paged (one page per sequence) vs decode", out_p, out,
                      _bound(op, args), case=case)


def _all_positions(lens, n, h_idx):
    pos = torch.arange(n, device=lens.device, dtype=torch.int32)
    rows = torch.where(pos[None, :] < lens[:, None], pos[None, :], -1)  # [B, n]
    return rows[:, None, :].expand(-1, h_idx, -1).contiguous()


@prop(needs=("sparse",), calls=("decode", "paged_decode"))
def sparse_every_index_equals_dense(op, case, device):
    """Selecting every valid position in order equals decode / paged_decode."""
    args = op.inputs(case, device)
    n = op.capacity(args)
    lens = args.get("seq_lens")
    if lens is None:
        lens = torch.full((case.batch,), n, dtype=torch.int32, device=device)
    dense = {k: v for k, v in args.items() if k != "indices"}
    out_dense, _ = OPS[op.dense].call(dense)
    every = {**args, "indices": _all_positions(lens, n, args["indices"].shape[1])}
    out, _ = op.call(every)
    assert_close_pair("every position selected vs dense", out, out_dense,
                      _bound(op, dense | {"indices": every["indices"]}), case=case)


@prop(needs=("sparse", "validate"))
def sparse_unvalidated_out_of_range_skipped(op, case, device):
    """With validate=False, index entries outside [0, seq_len) are skipped, never read
    (kernels/api.py, sparse_decode): past the length, past the cache's capacity, below -1.
    The output
    equals, bit for bit, the same call with -1 in those slots, with NaN in every K/V row
    and table entry that the valid indices do not reach."""
    args = op.inputs(case, device)
    idx = args["indices"]
    if idx.numel() == 0:
        return
    b = idx.shape[0]
    cap = op.capacity(args)
    lens = (args["seq_lens"].long() if args.get("seq_lens") is not None
            else torch.full((b,), cap, device=device)).view(b, 1, 1)
    g = torch.Generator().manual_seed(case.seed + 3)
    pick = (torch.rand(idx.shape, generator=g) < 0.4).to(device)
    kind = torch.randint(0, 5, idx.shape, generator=g).to(device)
    wild = torch.stack([lens, lens + 5, torch.full_like(lens, cap), torch.full_like(lens, -2),
                        torch.full_like(lens, -(2**31))]).expand(5, *idx.shape)
    wild = wild.gather(0, kind.unsqueeze(0)).squeeze(0).to(torch.int32)
    poisoned = op.poison(args)
    out, lse = op.call({**poisoned, "indices": torch.where(pick, -1, idx)}, validate=False)
    out_w, lse_w = op.call({**poisoned, "indices": torch.where(pick, wild, idx)},
                               validate=False)
    assert_same_bits("out (out-of-range indices, validate=False)", out_w, out, case=case)
    assert_same_bits("lse (out-of-range indices, validate=False)", lse_w, lse, case=case)


@prop(needs=("sparse",))
def sparse_shuffle_invariant(op, case, device):
    args = op.inputs(case, device)
    out, _ = op.call(args)
    g = torch.Generator().manual_seed(case.seed + 2)
    idx = args["indices"]
    perm = torch.randperm(idx.shape[2], generator=g).to(idx.device)
    out_s, _ = op.call({**args, "indices": idx[:, :, perm].contiguous()})
    assert_close_pair("shuffled index rows", out_s, out, _bound(op, args), case=case)


@prop(needs=("sparse", "gqa"))
def sparse_per_query_head_equals_per_kv_head(op, case, device):
    """Per-query-head rows that repeat their KV head's row equal the per-KV-head form. At
    group 1 the two forms are one tensor, so there each query head is repeated twice
    (groups of 2) first."""
    args = op.inputs(case, device)
    idx = args["indices"]
    if idx.shape[1] == case.num_q_heads and case.group_size > 1:
        idx = idx[:, ::case.group_size].contiguous()  # make it per-KV-head first
    if case.group_size == 1:
        args = {**args, "q": args["q"].repeat_interleave(2, 1), **_heads_twice(args)}
    num_q_heads = args["q"].shape[1]
    kv_form = {**args, "indices": idx}
    q_form = {**args, "indices": idx.repeat_interleave(num_q_heads // idx.shape[1], 1)}
    out_kv, _ = op.call(kv_form)
    out_q, _ = op.call(q_form)
    assert_close_pair("per-query-head rows vs per-KV-head rows", out_q, out_kv,
                      _bound(op, kv_form), case=case)


@prop(ops=("sparse_decode",), calls=("sparse_paged_decode",))
def sparse_dense_equals_paged(op, case, device):
    """The same logical cache, dense and paged (page size 3, pages shuffled)."""
    args = op.inputs(case, device)  # a sparse_decode (dense) case
    out, _ = op.call(args)
    k, v = args["k"], args["v"]
    b, hkv, n, d = k.shape
    p = 3
    pages = -(-n // p)
    g = torch.Generator().manual_seed(case.seed + 3)
    perm = torch.randperm(b * pages, generator=g).to(device)

    def to_pages(t):
        padded = torch.zeros((b, hkv, pages * p, d), dtype=t.dtype, device=device)
        padded[:, :, :n] = t
        logical = padded.view(b, hkv, pages, p, d).permute(0, 2, 3, 1, 4).reshape(
            b * pages, p, hkv, d)
        cache = torch.empty_like(logical)
        cache[perm] = logical
        return cache

    table = perm.view(b, pages).to(torch.int32)
    lens = args.get("seq_lens", torch.full((b,), n, dtype=torch.int32, device=device))
    out_p = kernels.sparse_paged_decode(args["q"], to_pages(k), to_pages(v), table, lens,
                                        args["indices"], num_splits=args.get("num_splits"),
                                        sm_scale=args.get("sm_scale"), **_scales(args),
                                        **_variants(args))
    assert_close_pair("paged vs dense sparse decode", out_p, out, _bound(op, args),
                      case=case)


@prop(ops=("prefill_varlen",), calls=("prefill",))
def varlen_equals_padded(op, case, device):
    """prefill_varlen on packed rows equals prefill on the same rows, padded."""
    args = op.inputs(case, device)
    out, _ = op.call(args)
    cu_q = args["cu_seqlens_q"].tolist()
    cu_k = args.get("cu_seqlens_k", args["cu_seqlens_q"]).tolist()
    b = len(cu_q) - 1
    n_q = max(cu_q[i + 1] - cu_q[i] for i in range(b))
    n_k = max(1, max(cu_k[i + 1] - cu_k[i] for i in range(b)))

    def pad(t, cu, n):
        dense = torch.zeros((b, n, t.shape[1], t.shape[2]), dtype=t.dtype, device=device)
        for i in range(b):
            dense[i, :cu[i + 1] - cu[i]] = t[cu[i]:cu[i + 1]]
        return dense.transpose(1, 2)

    q_lens = torch.tensor([cu_q[i + 1] - cu_q[i] for i in range(b)], dtype=torch.int32,
                          device=device)
    k_lens = torch.tensor([cu_k[i + 1] - cu_k[i] for i in range(b)], dtype=torch.int32,
                          device=device)
    padded = kernels.prefill(pad(args["q"], cu_q, max(n_q, 1)), pad(args["k"], cu_k, n_k),
                             pad(args["v"], cu_k, n_k), causal=args["causal"],
                             seq_lens=q_lens, kv_seq_lens=k_lens, sm_scale=args.get("sm_scale"),
                             **_variants(args))
    bound = _bound(op, args)
    for i in range(b):
        rows = out[cu_q[i]:cu_q[i + 1]]
        assert_close_pair(f"sequence {i}: varlen vs padded", rows,
                          padded[i, :, :cu_q[i + 1] - cu_q[i]].transpose(0, 1), bound,
                          case=case)


# --- paged prefill's relations ------------------------------------------------------------

def _i32(values, device) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.int32, device=device)


def _sequences(args) -> list[tuple[int, int, int]]:
    """(first packed row, q_len, seq_len) of each sequence of a paged prefill call."""
    cu, lens = args["cu_seqlens_q"].tolist(), args["seq_lens"].tolist()
    return [(cu[b], cu[b + 1] - cu[b], lens[b]) for b in range(len(lens))]


def _paged_prefill_of(args, rows: list[list[int]], q_lens, seq_lens, device) -> dict:
    """A paged prefill call on the same cache and table whose sequence b takes the packed
    q rows rows[b] (its new tokens) and context length seq_lens[b]."""
    order = [r for rs in rows for r in rs]
    q = args["q"][torch.tensor(order, dtype=torch.long, device=device)] if order \
        else args["q"][:0]
    cu = [0]
    for n in q_lens:
        cu.append(cu[-1] + n)
    return {**args, "q": q, "cu_seqlens_q": _i32(cu, device),
            "seq_lens": _i32(seq_lens, device), "max_seqlen_q": max(q_lens, default=0)}


@prop(ops=("paged_prefill",))
def paged_prefill_one_by_one(op, case, device):
    """Each sequence alone (its query rows, table row and length) gives its rows of the
    batched output."""
    args = op.inputs(case, device)
    out, _ = op.call(args)
    bound = _bound(op, args)
    for b, (q0, q_len, seq_len) in enumerate(_sequences(args)):
        one = _paged_prefill_of(args, [list(range(q0, q0 + q_len))], [q_len], [seq_len],
                                device)
        one["block_table"] = args["block_table"][b:b + 1]
        out_b, _ = op.call(one)
        assert_close_pair(f"sequence {b} alone vs in the batch", out_b, out[q0:q0 + q_len],
                          bound, case=case)


@prop(ops=("paged_prefill",), needs=("lse",))
def paged_prefill_chunked_equals_whole(op, case, device):
    """Chunked prefill: each sequence's new tokens cut into up to three chunks, chunk c of
    every sequence in call c against the context filled so far (seq_len - q_len + the
    chunk's end; non-causal, the whole context), equal one call over all of them within
    the accuracy bound."""
    args = op.inputs(case, device)
    if not args["causal"]:
        # Non-causal, a chunk's queries sit at the end of the whole context, not where
        # they sit among all new tokens: their aligned positions move, so the relation
        # holds without the options that read positions (window, ALiBi) only.
        args = {k: v for k, v in args.items() if k not in ("window", "alibi_slopes")}
    out, lse = op.call(args)
    bound, lse_bound = _bounds(op, args)
    g = torch.Generator().manual_seed(case.seed + 5)
    seqs = _sequences(args)
    cuts = []  # per sequence: chunk edges 0 = e0 <= e1 <= e2 <= e3 = q_len
    for _, q_len, _ in seqs:
        inner = sorted(torch.randint(0, q_len + 1, (2,), generator=g).tolist())
        cuts.append([0, *inner, q_len])
    for c in range(3):
        rows = [list(range(q0 + e[c], q0 + e[c + 1]))
                for (q0, _, _), e in zip(seqs, cuts, strict=True)]
        # non-causal: every chunk sees the whole context (a split of the queries only)
        lens = [seq_len - q_len + e[c + 1] if args["causal"] else seq_len
                for (_, q_len, seq_len), e in zip(seqs, cuts, strict=True)]
        call = _paged_prefill_of(args, rows, [len(r) for r in rows], lens, device)
        out_c, lse_c = op.call(call)
        at = [r for rs in rows for r in rs]
        if not at:
            continue
        idx = torch.tensor(at, dtype=torch.long, device=device)
        assert_close_pair(f"chunk {c} vs the whole prefill", out_c, out[idx], bound, case=case)
        assert_close_pair(f"lse, chunk {c} vs the whole prefill", lse_c, lse[:, idx],
                          lse_bound, case=case)


@prop(ops=("paged_prefill",), calls=("paged_decode",))
def paged_prefill_single_token_equals_paged_decode(op, case, device):
    """Every sequence's last new token alone (q_len 1, same context) equals paged_decode
    on the same cache, table and lengths."""
    args = op.inputs(case, device)
    keep = [(b, q0 + q_len - 1) for b, (q0, q_len, _) in enumerate(_sequences(args))
            if q_len > 0]
    if not keep:
        return
    bs = torch.tensor([b for b, _ in keep], dtype=torch.long, device=device)
    rows = [[r] for _, r in keep]
    lens = args["seq_lens"][bs]
    call = _paged_prefill_of(args, rows, [1] * len(keep), lens.tolist(), device)
    call["block_table"] = args["block_table"][bs]
    out, lse = op.call(call)
    dec, dec_lse = kernels.paged_decode(call["q"], args["k_cache"], args["v_cache"],
                                        call["block_table"], lens, sm_scale=args.get("sm_scale"),
                                        return_lse=True, **_scales(args), **_variants(args))
    bound, lse_bound = _bounds(op, call)
    assert_close_pair("q_len 1 vs paged_decode", out, dec, bound, case=case)
    assert_close_pair("lse, q_len 1 vs paged_decode", lse.t(), dec_lse, lse_bound, case=case)


@prop(ops=("paged_prefill",), calls=("prefill_varlen",))
def paged_prefill_equals_varlen(op, case, device):
    """Equals prefill_varlen on each context gathered into packed dense K/V (keys aligned
    bottom-right there too), within the accuracy bound."""
    from attention_kernel_triton.oracles.reference import paged_gather

    args = op.inputs(case, device)
    out, lse = _restrict(op, args, *op.call(args))
    seqs = _sequences(args)
    ks, vs, cu_k = [], [], [0]
    real = _dequantized(op, args)  # prefill_varlen takes no fp8 cache
    for b, (_, _, seq_len) in enumerate(seqs):
        for name, acc in (("k_cache", ks), ("v_cache", vs)):
            dense = paged_gather(real[name], args["block_table"][b:b + 1],
                                 args["seq_lens"][b:b + 1])  # [1, Hkv, seq_len, D]
            acc.append(dense[0].transpose(0, 1))
        cu_k.append(cu_k[-1] + seq_len)
    hkv, d = args["k_cache"].shape[2:]
    k = torch.cat(ks) if ks else real["k_cache"].new_zeros((0, hkv, d))
    v = torch.cat(vs) if vs else real["v_cache"].new_zeros((0, hkv, d))
    ref, ref_lse = kernels.prefill_varlen(
        args["q"], k, v, args["cu_seqlens_q"], _i32(cu_k, device),
        max_seqlen_q=args["max_seqlen_q"], causal=args.get("causal", True),
        sm_scale=args.get("sm_scale"), return_lse=True, **_variants(args))
    ref, ref_lse = _restrict(op, args, ref, ref_lse)
    bound, lse_bound = _bounds(op, args)
    assert_close_pair("paged prefill vs prefill_varlen on the gathered context", out, ref,
                      bound, case=case)
    assert_close_pair("lse, paged prefill vs prefill_varlen on the gathered context", lse,
                      ref_lse, lse_bound, case=case)


# --- the variants' relations (kernels/mods.py) -------------------------------------------

def _extent(op, args) -> int:
    """A length past every position of the call (each tensor's extent on every axis but
    the head dim, and the cache's capacity): a window side this wide bounds nothing."""
    n = op.capacity(args)
    for name in ("q", *op.kv_names):
        n = max(n, *args[name].shape[:-1])
    return n


def _without(args, *names) -> dict:
    return {k: v for k, v in args.items() if k not in names}


@prop(needs=("window", "deterministic"), draws="variants")
def window_beyond_context_bit_identical(op, case, device):
    """A window wider than every sequence on both sides gives the bits of no window (both
    calls take the same kernel: the Gluon Hopper prefill takes a window too)."""
    args = _without(op.inputs(case, device), "window")
    reach = _extent(op, args)
    out, lse = _restrict(op, args, *op.call(args))
    out_w, lse_w = _restrict(op, args, *op.call({**args, "window": (reach, reach)}))
    assert_same_bits(f"out, window ({reach}, {reach}) vs none", out_w, out, case=case)
    assert_same_bits(f"lse, window ({reach}, {reach}) vs none", lse_w, lse, case=case)


@prop(needs=("sinks", "deterministic"), draws="variants")
def sinks_neg_inf_bit_identical(op, case, device):
    """Sinks of -inf (exp(-inf) = 0 in every denominator) give the bits of no sinks."""
    args = _without(op.inputs(case, device), "sinks")
    none = torch.full((case.num_q_heads,), float("-inf"), dtype=torch.float32, device=device)
    out, lse = _restrict(op, args, *op.call(args))
    out_s, lse_s = _restrict(op, args, *op.call({**args, "sinks": none}))
    assert_same_bits("out, sinks -inf vs none", out_s, out, case=case)
    assert_same_bits("lse, sinks -inf vs none", lse_s, lse, case=case)


@prop(needs=("deterministic",), needs_any=("sinks", "alibi_slopes", "fp8"), draws="variants")
def head_vectors_strided_bit_identical(op, case, device):
    """Per-head vectors (sinks, ALiBi slopes, per-KV-head fp8 scales) passed as strided
    views, every other element of a tensor twice as long with NaN between, give the bits
    of the same values contiguous. (Found in session 17: the kernels read head h's sink and
    slope at ptr + h, so a strided view silently gave other heads' values.)"""
    args = op.inputs(case, device)
    vectors = {k: args[k] for k in ("sinks", "alibi_slopes", *_scales(args))
               if k in args and args[k].dim() == 1}
    if not vectors:  # nothing per head in this case
        return
    strided = {}
    for name, t in vectors.items():
        wide = torch.full((2 * t.numel(),), float("nan"), dtype=t.dtype, device=t.device)
        wide[::2] = t
        strided[name] = wide[::2]
    out, lse = _restrict(op, args, *op.call(args))
    out_s, lse_s = _restrict(op, args, *op.call({**args, **strided}))
    names = ", ".join(strided)
    assert_same_bits(f"out, strided {names} vs contiguous", out_s, out, case=case)
    assert_same_bits(f"lse, strided {names} vs contiguous", lse_s, lse, case=case)


# c tanh(x / c) = x - x^3 / (3 c^2) + ...: at c = HUGE_SOFTCAP a logit of 1000 moves by 3e-5.
HUGE_SOFTCAP = 1e5


@prop(needs=("softcap",), draws="variants")
def softcap_huge_equals_none(op, case, device):
    """A soft-cap far above every logit changes nothing beyond the accuracy rule."""
    args = _without(op.inputs(case, device), "softcap")
    bound, lse_bound = _bounds(op, args)
    # at cap c a logit s moves by ~s^3 / (3 c^2): a cap 1000x the largest |logit| (~ the
    # oracle's largest |LSE|) moves it by 3e-7 s, far inside the rule's LOGIT_EPS term.
    # fp16 / bf16 kernels take the hardware tanh (kernels/mods.py SOFTCAP_FAST), relative
    # error ~2^-11: a logit s moves by up to ~5e-4 s, the rounding of a 16-bit logit; the
    # bound's low-precision term (the oracle run in the input dtype) carries as much.
    cap = max(HUGE_SOFTCAP, 1e3 * finite_abs_max(op.oracle(args)[1]))
    out, lse = _restrict(op, args, *op.call(args))
    out_c, lse_c = _restrict(op, args, *op.call({**args, "softcap": cap}))
    assert_close_pair(f"softcap {cap:g} vs none", out_c, out, bound, case=case)
    assert_close_pair(f"lse, softcap {cap:g} vs none", lse_c, lse, lse_bound, case=case)


@prop(ops=("decode",), needs=("window", "lengths"), draws="variants")
def decode_window_equals_slice(op, case, device):
    """Dense decode with a window (left side drawn, or 1/3 of the cache) equals decode
    without one over each sequence's window slice of the cache, moved to the front (ALiBi
    reads distances, which the move keeps)."""
    args = op.inputs(case, device)
    k, v = args["k"], args["v"]
    b, n = k.shape[0], k.shape[2]
    left = args.get("window", (-1, -1))[0]
    if left < 0:
        left = n // 3
        args = {**args, "window": (left, -1)}
    out, lse = op.call(args)
    lens = args["seq_lens"].tolist() if "seq_lens" in args else [n] * b
    starts = [max(0, length - 1 - left) for length in lens]
    k_s, v_s = torch.zeros_like(k), torch.zeros_like(v)
    for i, (s0, length) in enumerate(zip(starts, lens, strict=True)):
        k_s[i, :, :length - s0] = k[i, :, s0:length]
        v_s[i, :, :length - s0] = v[i, :, s0:length]
    sliced = {**_without(args, "window"), "k": k_s, "v": v_s,
              "seq_lens": _i32([length - s0 for s0, length in zip(starts, lens, strict=True)],
                               device)}
    out_s, lse_s = op.call(sliced)
    bound, lse_bound = _bounds(op, args)
    assert_close_pair("decode with a window vs decode over the window's slice", out, out_s,
                      bound, case=case)
    assert_close_pair("lse, decode with a window vs over the slice", lse, lse_s, lse_bound,
                      case=case)


if __name__ == "__main__":
    print(table())
