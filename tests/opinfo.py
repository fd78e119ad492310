"""One description per operation (PyTorch's OpInfo, for attention): what it computes (its
float64 oracle), how its arguments come from a case, what memory it must never read
(poison), its layout, what it supports, and which streams of cases its tests draw.
Which property runs on which operation is decided by one table generated from these
descriptions and from what each property declares it needs (tests/properties.py,
``@prop(needs=...)``; ``python -m tests.properties`` prints it): no test file lists
properties by hand, and no property asks which operation it was given by name or by
sniffing its arguments.

Conformance mode (tests/conformance.py) runs the same descriptions with an adapter's
callable and declaration in place of ours.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

import attention_kernel_triton as kernels
from attention_kernel_triton.conformance import FP8, VARIANTS, Supports
from attention_kernel_triton.kernels._config import nvidia_hopper
from attention_kernel_triton.oracles import reference as oracles
from attention_kernel_triton.strategies import tensors as strategies

# Keyword arguments a kernel takes that its oracle does not.
KERNEL_ONLY = ("num_splits", "max_seqlen_q", "max_seqlen_k")

# What a property may need from an operation: what Supports declares (lse, out,
# deterministic, gqa, lengths, ..., fp8, the variants), its layout, our kernels' own knobs.
SUPPORTS_FEATURES = frozenset({f.name for f in fields(Supports) if f.type == "bool"}
                              | {"fp8", *VARIANTS})
LAYOUT = {
    "batched": "q, out and every per-sequence argument have a batch axis first, so one "
               "sequence can be sliced out",
    "packed": "query rows packed [T, Hq, D] by cu_seqlens_q; rows past the last sequence "
              "belong to none (slack)",
    "paged": "K/V in pages [num_pages, P, Hkv, D] behind a block table",
    "sparse": "each query attends a listed set of token positions (indices)",
}
KNOBS = {  # never an adapter's (conformance mode runs none of the properties needing them)
    "splits": "num_splits: the key list cut into splits merged by their LSE",
    "load_paths": "tuning.override(tma=...): TMA descriptors or pointer loads",
    "program_order": "tuning.override(prefill_chunk_pairs=..., prefill_tiles_from_end=...)",
    "validate": "validate=False: no host-side checks of the index lists",
}
# The streams of cases a test file draws, and the properties each runs besides those that
# draw that stream themselves (Property.draws). "general" runs every property that
# applies and needs no special stream.
STREAMS = {
    "general": None,
    "padded": ("accuracy", "unread_memory"),  # padded var-len prefill drawn every time
    "long_context": ("accuracy", "splits_agree"),  # few long sequences: the heuristic splits
    "fp8": ("accuracy", "finite", "unread_memory"),  # every case an fp8 cache
    "variants": ("accuracy",),  # every case with a window, soft-cap, sinks or ALiBi
    "seeds": ("accuracy", "unread_memory", "every_element_written", "deterministic"),
}


@dataclass(frozen=True)
class OpInfo:
    name: str
    kernel: Callable
    oracle_fn: Callable
    build: Callable  # (case, device) -> kwargs
    poison_fn: Callable  # kwargs -> kwargs with NaN in every element the kernel must not read
    layout: frozenset[str]  # of LAYOUT
    supports: Supports  # what the implementation computes (ours: all the op takes)
    knobs: frozenset[str] = frozenset()  # of KNOBS: our kernels' only
    streams: tuple[str, ...] = ("general", "variants", "seeds")  # of STREAMS: its tests
    dense: str | None = None  # a sparse operation's dense counterpart (same cache, no list)
    impl: str = "triton"  # the implementation (conformance mode: an adapter's name)
    ours: bool = True  # our kernels: properties may use their tuning knobs (kernels.tuning)

    @property
    def lse(self) -> bool:  # returns the LSE (else call() gives checks.NO_LSE)
        return self.supports.lse

    def has(self, feature: str) -> bool:
        """A feature a property may need: a layout fact, one of our knobs, or anything
        Supports declares."""
        if feature in LAYOUT:
            return feature in self.layout
        if feature in KNOBS:
            return feature in self.knobs
        return self.supports.has(feature)

    @property
    def kv_names(self) -> tuple[str, str]:
        return ("k_cache", "v_cache") if "paged" in self.layout else ("k", "v")

    @property
    def kv_head_axis(self) -> int:
        """K/V's head axis: [num_pages, P, Hkv, D] paged; [B, Hkv, N, D] or [T, Hkv, D]."""
        return 2 if "paged" in self.layout else 1

    @property
    def lse_head_axis(self) -> int:
        """The LSE's head axis: [Hq, T] for packed queries, [B, Hq, ...] otherwise."""
        return 0 if "packed" in self.layout else 1

    def key_slots(self, args) -> int:
        """The length of each query's key list: index slots; a table row's capacity;
        the cache's length."""
        if "sparse" in self.layout:
            return args["indices"].shape[-1]
        return self.capacity(args)

    def capacity(self, args) -> int:
        """Tokens one sequence's keys can span: table entries x page size (paged), the
        packed rows (packed K/V [T, Hkv, D]), or N (dense [B, Hkv, N, D])."""
        if "paged" in self.layout:
            return args["block_table"].shape[1] * args["k_cache"].shape[1]
        return args["k"].shape[0 if "packed" in self.layout else 2]

    def inputs(self, case, device) -> dict:
        return self.build(case, device)

    def call(self, args: dict, *, return_lse: bool = True, **extra):
        """(out, lse); lse is None with return_lse=False (the default of the public API,
        a kernel variant of its own)."""
        got = self.kernel(**args, return_lse=return_lse, **extra)
        if not return_lse:
            return got, None
        if self.lse and (not isinstance(got, tuple) or len(got) != 2 or got[1] is None):
            raise AssertionError(f"{self.impl} {self.name}(return_lse=True) returned "
                                 f"{type(got).__name__}, not (out, lse)")
        return got

    def oracle(self, args: dict, dtype=torch.float64):
        return self.oracle_fn(**{k: v for k, v in args.items() if k not in KERNEL_ONLY},
                              dtype=dtype)

    def poison(self, args: dict) -> dict:
        out = self.poison_fn(dict(args))
        for name, fill in GAP_POISON.items():  # same strides, poison in the same gaps
            if name in out:
                out[name] = strategies.relayout_like(out[name], args[name], fill=fill)
        return out


NAN = float("nan")
# What a poisoned copy holds in the storage gaps of the tensor it replaces (row gaps,
# slots between strided elements): NaN in float tensors; in index rows, position 0, a
# valid position (the unpoisoned gaps hold an out-of-range one, which a kernel skips): a
# kernel that reads a gap slot attends one more token, NaN unless a row selects token 0.
# The page table's gap columns point at the all-NaN page (_poison_pages).
GAP_POISON = {"q": NAN, "k": NAN, "v": NAN, "k_cache": NAN, "v_cache": NAN, "indices": 0}


def _nan_where(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Copy of t with NaN where mask (broadcast) holds; fp8 too (torch has no fp8
    masked_fill; both fp8 formats encode NaN)."""
    return torch.where(mask, torch.full((), NAN, dtype=t.dtype, device=t.device), t)


def _nan_past(t: torch.Tensor, lens: torch.Tensor, seq_axis: int) -> torch.Tensor:
    """Copy of t [B, ...] with positions >= lens[b] along seq_axis set to NaN."""
    pos_shape = [1] * t.dim()
    pos_shape[seq_axis] = -1
    lim_shape = [1] * t.dim()
    lim_shape[0] = -1
    mask = torch.arange(t.shape[seq_axis], device=t.device).view(pos_shape) \
        >= lens.long().view(lim_shape)
    return _nan_where(t, mask)


def _poison_prefill(a):
    if "seq_lens" in a:
        kv = a.get("kv_seq_lens", a["seq_lens"])
        a["q"] = _nan_past(a["q"], a["seq_lens"], 2)
        a["k"] = _nan_past(a["k"], kv, 2)
        a["v"] = _nan_past(a["v"], kv, 2)
    return a


def _poison_varlen(a):
    for name, cu in (("q", a["cu_seqlens_q"]), ("k", a.get("cu_seqlens_k", a["cu_seqlens_q"])),
                     ("v", a.get("cu_seqlens_k", a["cu_seqlens_q"]))):
        t = a[name].clone()
        t[int(cu[-1]):] = NAN
        a[name] = t
    return a


def _poison_decode(a):
    if "seq_lens" in a:
        a["k"] = _nan_past(a["k"], a["seq_lens"], 2)
        a["v"] = _nan_past(a["v"], a["seq_lens"], 2)
    return a


def _selected(indices: torch.Tensor, num_kv_heads: int, n: int) -> torch.Tensor:
    """bool [B, Hkv, n]: token t of KV head h is listed by some index row of h."""
    b, h_idx, _ = indices.shape
    group = h_idx // num_kv_heads
    sel = torch.zeros((b, h_idx, n + 1), dtype=torch.bool, device=indices.device)
    idx = torch.where(indices >= 0, indices.long(), torch.full_like(indices.long(), n))
    sel.scatter_(2, idx, True)
    return sel[:, :, :n].view(b, num_kv_heads, group, n).any(2)


def _poison_sparse(a):
    keep = _selected(a["indices"], a["k"].shape[1], a["k"].shape[2])
    for name in ("k", "v"):
        a[name] = _nan_where(a[name], ~keep.unsqueeze(-1))
    return a


def _poison_pages(a, token_used):
    """Cache rows no used token maps to -> NaN; table entries the kernel must not read ->
    an extra all-NaN page. token_used: bool [B, Hkv, capacity] (logical tokens read)."""
    table, kc = a["block_table"], a["k_cache"]
    num_pages, p, hkv, d = kc.shape
    cap = table.shape[1] * p
    t = torch.arange(cap, device=kc.device)
    page = table[:, t // p].long()  # [B, cap]
    used_rows = torch.zeros((num_pages + 1, p, hkv), dtype=torch.bool, device=kc.device)
    b_idx, t_idx = torch.nonzero(token_used.any(1), as_tuple=True)  # tokens read by any head
    for h in range(hkv):  # rows read by head h
        bh, th = torch.nonzero(token_used[:, h], as_tuple=True)
        used_rows[page[bh, th], th % p, h] = True
    entry_read = torch.zeros(table.shape, dtype=torch.bool, device=kc.device)
    entry_read[b_idx, t_idx // p] = True
    nan_page = num_pages  # appended below
    a["block_table"] = strategies.relayout_like(  # table columns past a row's end: too
        torch.where(entry_read, table, torch.full_like(table, nan_page)), table, fill=nan_page)
    for name in ("k_cache", "v_cache"):
        c = torch.cat([a[name], torch.full((1, p, hkv, d), NAN, dtype=kc.dtype,
                                           device=kc.device)])
        a[name] = _nan_where(c, ~used_rows.unsqueeze(-1))
    return a


def _poison_paged(a):
    table, kc = a["block_table"], a["k_cache"]
    cap = table.shape[1] * kc.shape[1]
    used = torch.arange(cap, device=kc.device)[None, :] < a["seq_lens"].long()[:, None]
    return _poison_pages(a, used.unsqueeze(1).expand(-1, kc.shape[2], -1))


def _poison_sparse_paged(a):
    table, kc = a["block_table"], a["k_cache"]
    cap = table.shape[1] * kc.shape[1]
    return _poison_pages(a, _selected(a["indices"], kc.shape[2], cap))


def _poison_paged_prefill(a):
    """NaN in packed q rows past cu_seqlens_q[-1], in cache rows no context token maps
    to, and (an all-NaN page) in table entries past each sequence's last page."""
    q = a["q"].clone()
    q[int(a["cu_seqlens_q"][-1]):] = NAN
    a["q"] = q
    return _poison_paged(a)


_CONTRACT = dict(variants=VARIANTS)  # ours: every option of the public API
_16_BIT_KV = Supports(**_CONTRACT)
_FP8_KV = Supports(fp8=FP8, **_CONTRACT)
_DECODE_LAYOUT = frozenset({"batched"})
_DECODE_KNOBS = frozenset({"splits"})
_PREFILL_KNOBS = frozenset({"load_paths", "program_order"})

_ALL_STREAMS = ("general", "fp8", "variants", "seeds")

PREFILL = OpInfo("prefill", kernels.prefill, oracles.prefill_ref, strategies.prefill_inputs,
                 _poison_prefill, frozenset({"batched"}), _16_BIT_KV, _PREFILL_KNOBS,
                 streams=("general", "padded", "variants", "seeds"))
PREFILL_VARLEN = OpInfo("prefill_varlen", kernels.prefill_varlen, oracles.prefill_varlen_ref,
                        strategies.prefill_varlen_inputs, _poison_varlen,
                        frozenset({"packed"}), _16_BIT_KV, _PREFILL_KNOBS)
DECODE = OpInfo("decode", kernels.decode, oracles.decode_ref, strategies.decode_inputs,
                _poison_decode, _DECODE_LAYOUT, _FP8_KV, _DECODE_KNOBS,
                streams=("general", "long_context", "fp8", "variants", "seeds"))
PAGED_DECODE = OpInfo("paged_decode", kernels.paged_decode, oracles.paged_decode_ref,
                      strategies.decode_inputs, _poison_paged, _DECODE_LAYOUT | {"paged"},
                      _FP8_KV, _DECODE_KNOBS, streams=_ALL_STREAMS)
SPARSE_DECODE = OpInfo("sparse_decode", kernels.sparse_decode, oracles.sparse_decode_ref,
                       strategies.decode_inputs, _poison_sparse, _DECODE_LAYOUT | {"sparse"},
                       _FP8_KV, _DECODE_KNOBS | {"validate"}, streams=_ALL_STREAMS,
                       dense="decode")
SPARSE_PAGED_DECODE = OpInfo("sparse_paged_decode", kernels.sparse_paged_decode,
                             oracles.sparse_paged_decode_ref, strategies.decode_inputs,
                             _poison_sparse_paged, _DECODE_LAYOUT | {"paged", "sparse"},
                             _FP8_KV, _DECODE_KNOBS | {"validate"}, streams=_ALL_STREAMS,
                             dense="paged_decode")
PAGED_PREFILL = OpInfo("paged_prefill", kernels.paged_prefill, oracles.paged_prefill_ref,
                       strategies.paged_prefill_inputs, _poison_paged_prefill,
                       frozenset({"packed", "paged"}), _FP8_KV, _DECODE_KNOBS,
                       streams=("general", "fp8", "variants"))

OPS = {o.name: o for o in (PREFILL, PREFILL_VARLEN, DECODE, PAGED_DECODE, SPARSE_DECODE,
                           SPARSE_PAGED_DECODE, PAGED_PREFILL)}

# The Gluon Hopper prefill (kernels/prefill_sm90.py) described as prefill's narrower path:
# no knob of the Triton kernel (load paths, program orders), causal and square only, no
# lengths, D 128; of the variants sinks, a window and a soft-cap. tests/test_gpu.py runs
# the property table on it; a failure it finds is kept in the corpus with path "gluon"
# and replayed through forced_gluon (tests/test_corpus.py).
GLUON_PREFILL = replace(
    PREFILL, knobs=frozenset(), streams=("general", "variants"),
    supports=Supports(dtypes=("float16", "bfloat16"), head_dims=(128, 128), non_causal=False,
                      rectangular_causal=False, lengths=False, unaligned_rows=False,
                      variants=("sinks", "window", "softcap")))


def gluon_hopper() -> bool:
    """Whether this machine runs the Gluon Hopper prefill: the dispatcher's own hardware
    check (kernels/_config.py nvidia_hopper) on the current GPU."""
    return torch.cuda.is_available() and nvidia_hopper(torch.device("cuda"))


@contextlib.contextmanager
def forced_gluon():
    """prefill calls take the Gluon kernel wherever it can run them (tuning.prefill_gluon)."""
    from attention_kernel_triton.kernels import tuning

    with tuning.override(prefill_gluon=True):
        yield
