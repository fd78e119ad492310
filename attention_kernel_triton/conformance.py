"""Conformance mode: the property suite run against any attention implementation.

An implementation is described by an :class:`Adapter`: one callable per operation it
implements, each taking *our* arguments (the public functions' names, shapes and
conventions: see DESIGN.md) and mapping them to its own API, plus a :class:`Supports`
declaration of what it implements. The suite draws only cases inside the declaration, and
skips, with the declaration's reason, every property that needs a feature the adapter
does not declare: nothing unsupported is ever counted as a pass.

    import torch.nn.functional as F
    from attention_kernel_triton.conformance import Adapter, Supports

    def prefill(q, k, v, *, causal, sm_scale=None):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=sm_scale,
                                              enable_gqa=True)

    adapter = Adapter("my-sdpa", {"prefill": prefill},
                      Supports(lengths=False, rectangular_causal=False, lse=False, out=False))

    $ python -m pytest tests/test_conformance.py --attention-impl=my_module:adapter

How the suite calls an adapter's function: with exactly the arguments of the case, by
our names (``q, k, v`` and e.g. ``causal``, ``seq_lens``, ``sm_scale``, ``window``;
never ``num_splits``, ``validate`` or other knobs of our kernels), plus ``return_lse=True``
where a property checks the LSE (only if ``Supports.lse``) and ``out=`` where a property
passes a preallocated output (only if ``Supports.out``). It returns the output, or
``(out, lse)`` when ``return_lse=True`` was passed; both in our layouts (out like q; lse
float32 ``[B, Hq, Nq]``, ``[B, Hq]`` for decode, ``[Hq, T]`` for packed queries; natural
log).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from attention_kernel_triton.strategies.cases import DTYPES
from attention_kernel_triton.strategies.cases import FP8_DTYPES as FP8
from attention_kernel_triton.strategies.cases import VARIANT_ARGS as VARIANTS

OPERATIONS = ("prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
              "sparse_paged_decode", "paged_prefill")


@dataclass(frozen=True)
class Supports:
    """What an implementation computes; cases outside it are never drawn, properties that
    need a feature it lacks are skipped with ``notes[feature]`` (or a generic reason).

    dtypes: q/k/v dtypes. head_dims: (smallest, largest) head dim. gqa: Hq a multiple of
    Hkv other than 1 (else MHA only). causal / non_causal: prefill calls with causal=True
    / False. rectangular_causal: causal calls with Nq != Nk (bottom-right aligned, our
    convention); False draws Nq == Nk for every prefill case. lengths: ``seq_lens`` /
    ``kv_seq_lens`` (padded var-len prefill, decode with lengths); False draws full
    sequences only. lse: returns the LSE with ``return_lse=True``. out: fills ``out=``.
    deterministic: two identical calls give the same bits. unaligned_rows: rows stored
    D + 3 elements apart (else row gaps of 0 and 16 only; a head dim that is not a
    multiple of 8 still gives unaligned rows, so an adapter that needs aligned rows pads
    D, as the shipped SDPA ones do). The paged operations' cases always carry lengths
    and (paged_prefill) rectangular causal rows. fp8: K/V cache formats it
    takes (with ``k_scale`` / ``v_scale``). variants: of VARIANTS. group_sizes: the GQA
    groups (Hq / Hkv) it takes, when only some (FlashInfer's CUDA-core decode: 1, 2, 3,
    4 and 8), 1 among them; empty: any (MHA only without gqa)."""

    dtypes: tuple[str, ...] = ("float16", "bfloat16", "float32")
    head_dims: tuple[int, int] = (16, 256)
    gqa: bool = True
    causal: bool = True
    non_causal: bool = True
    rectangular_causal: bool = True
    lengths: bool = True
    lse: bool = True
    out: bool = True
    deterministic: bool = True
    unaligned_rows: bool = True
    fp8: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    group_sizes: tuple[int, ...] = ()
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        bad = [v for v in self.variants if v not in VARIANTS]
        if bad:
            raise ValueError(f"Supports.variants: unknown {bad}; expected a subset of "
                             f"{VARIANTS}")
        bad = [v for v in self.fp8 if v not in FP8]
        if bad:
            raise ValueError(f"Supports.fp8: unknown {bad}; expected a subset of {FP8}")
        lo, hi = self.head_dims
        if not 1 <= lo <= hi:
            raise ValueError(f"Supports.head_dims: expected 1 <= low <= high, got {lo, hi}")
        if not (self.causal or self.non_causal):
            raise ValueError("Supports: causal and non_causal cannot both be False")
        groups = self.group_sizes
        if isinstance(groups, (str, bytes)) or any(type(g) is not int or g < 1 for g in groups) \
                or groups and 1 not in groups or not self.gqa and any(g > 1 for g in groups):
            raise ValueError(f"Supports.group_sizes: expected a tuple of ints >= 1 that holds "
                             f"1 (gqa_equals_mha compares with MHA; only 1 without gqa), got "
                             f"{groups!r}")
        bad = [d for d in self.dtypes if d not in DTYPES]
        if not self.dtypes or bad or isinstance(self.dtypes, str):
            raise ValueError(f"Supports.dtypes: expected a non-empty tuple of {DTYPES} "
                             f"(names), got {self.dtypes!r}")

    def has(self, feature: str) -> bool:
        """A feature a property may need: a boolean field, "fp8", or a variant name."""
        if feature in VARIANTS:
            return feature in self.variants
        if feature == "fp8":
            return bool(self.fp8)
        value = getattr(self, feature)
        if not isinstance(value, bool):
            raise ValueError(f"{feature!r} is not a feature flag of Supports")
        return value

    def why_not(self, feature: str) -> str:
        return self.notes.get(feature, f"not declared ({feature})")


@dataclass(frozen=True)
class Adapter:
    """An implementation under test: ``ops`` maps operation names (OPERATIONS) to
    callables; ``supports`` is one declaration for all, or a dict per operation.
    ``unavailable`` (optional) returns why it cannot run on this machine (a missing
    package, no GPU), or None."""

    name: str
    ops: Mapping[str, Callable]
    supports: Supports | Mapping[str, Supports] = Supports()
    unavailable: Callable[[], str | None] | None = None
    is_ours: bool = False  # our own kernels: the suite may also use their tuning knobs

    def __post_init__(self):
        bad = [op for op in self.ops if op not in OPERATIONS]
        if bad:
            raise ValueError(f"Adapter {self.name!r}: unknown operations {bad}; expected "
                             f"some of {OPERATIONS}")
        if isinstance(self.supports, Mapping):
            missing = [op for op in self.ops if op not in self.supports]
            if missing:
                raise ValueError(f"Adapter {self.name!r}: no Supports for {missing}")

    def supports_for(self, op: str) -> Supports:
        return self.supports[op] if isinstance(self.supports, Mapping) else self.supports

    def why_unavailable(self) -> str | None:
        return self.unavailable() if self.unavailable is not None else None


def load(spec: str) -> Adapter:
    """The adapter named by `spec`: a shipped one by name (``adapters.SHIPPED``), or
    ``package.module:attribute``, or ``path/to/file.py:attribute``."""
    from attention_kernel_triton import adapters

    if spec in adapters.SHIPPED:
        return adapters.SHIPPED[spec]()
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--attention-impl {spec!r}: expected one of "
                         f"{sorted(adapters.SHIPPED)}, 'package.module:attribute' or "
                         "'path/to/file.py:attribute'")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():  # relative paths are from the directory pytest runs in
            raise FileNotFoundError(f"--attention-impl {spec!r}: no file {path.resolve()}")
        loader = importlib.util.spec_from_file_location(path.stem, path)
        if loader is None:
            raise ValueError(f"--attention-impl {spec!r}: cannot load {path}")
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise  # the module exists; something it imports does not
            raise ModuleNotFoundError(
                f"--attention-impl {spec!r}: no module {exc.name!r} (is its directory on "
                f"PYTHONPATH? a file can be given as path/to/file.py:{attr})",
                name=exc.name) from exc
    adapter = getattr(module, attr, None)
    if adapter is None:
        raise AttributeError(f"--attention-impl {spec!r}: {module_name} has no {attr!r}")
    if not isinstance(adapter, Adapter):
        raise TypeError(f"--attention-impl {spec!r}: {attr} is a {type(adapter).__name__}, "
                        "not an attention_kernel_triton.conformance.Adapter")
    return adapter
