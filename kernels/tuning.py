"""The one public tuning surface: every launch choice a caller may pin, in one place.

    from attention_kernel_triton import tuning

    with tuning.override(tma=False):                     # prefill without TMA loads
        ...
    with tuning.override(decode_config=tuning.Config(16, 32, 4, 2)):
        ...
    tuning.current()                                     # what applies here and now

Each field is ``None`` (or its documented default) for the tuned choice, which is what
the kernels measured fastest (benchmarks/NOTES.md). An override changes how a call is
launched, never what it computes: the tests hold every position of every switch to the
same result (bit for bit where the order of the sums is unchanged: program order, 3-D
grids, load paths; within the accuracy rule for configs).

Thread-safe: the settings live in one ``contextvars.ContextVar``, so an override inside
one thread or asyncio task leaves every other alone, and a new thread starts from the
defaults. Overrides nest; leaving a ``with`` block restores what was there. The settings
are read when a call is launched (inside the custom op under ``torch.compile``), so a
compiled function follows the override active when it runs. A CUDA graph does not: its
replays repeat the launches recorded at capture (``torch.cuda.graph``, or
``torch.compile(mode="reduce-overhead")``), whatever override is active at replay.

Importing this module loads no kernel (``use_interpreter()`` still works after it).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import contextlib
import contextvars
import dataclasses
from dataclasses import dataclass

__all__ = ["Config", "Tuning", "current", "override"]


@dataclass(frozen=True)
class Config:
    block_m: int  # query rows per tile (prefill); unused by decode (tile = the query group)
    block_n: int  # keys per tile
    num_warps: int
    num_stages: int
    # ptxas register cap per thread (None: the compiler's choice). A cap that lets one
    # more program fit on an SM can pay for itself (see PREFILL's D64 entry). Prefill
    # applies it on the TMA path only, where it was measured: the pointer path needs
    # ~210 registers at D64 and would spill.
    maxnreg: int | None = None

    def launch_options(self) -> dict:
        """The launch keywords of this config (maxnreg only when set)."""
        opts = {"num_warps": self.num_warps, "num_stages": self.num_stages}
        if self.maxnreg is not None:
            opts["maxnreg"] = self.maxnreg
        return opts


@dataclass(frozen=True)
class Tuning:
    # Pin the launch config of a kernel family (tile sizes, warps, stages, register cap);
    # None: the tuned table of kernels/_config.py, picked by head dim and dtype.
    prefill_config: Config | None = None
    decode_config: Config | None = None
    paged_prefill_config: Config | None = None
    # Prefill loads through TMA descriptors: None = the tuned default (TMA wherever the
    # layout allows; padded var-len as padded_tma says), True = wherever the layout allows,
    # False = never (pointer loads).
    tma: bool | None = None
    # The tuned default for padded var-len (seq_lens on [B, H, N, D]) when tma is None.
    # Seed lengths on an H100 (benchmarks/NOTES.md, v7 A/B): 0.169 ms with TMA, 0.205 ms
    # with pointer loads (v6's kernel, two key loops: 0.271 with TMA, 0.181 with
    # pointers); run v9: 0.157 ms.
    padded_tma: bool = True
    # (batch, head) pairs per chunk of prefill's program order (None: the rule of
    # _config.prefill_chunk_pairs: all pairs when lengths vary and K/V fits in L2, else 1).
    prefill_chunk_pairs: int | None = None
    # Prefill counts query tiles from each sequence's end (True) or from the longest
    # length (False); None: from each end only with lengths and one pair per chunk.
    prefill_tiles_from_end: bool | None = None
    # Prefill's two common program orders on 3-D grids, whose coordinates come straight
    # from the program ids (prefill._grid), instead of three runtime integer divisions
    # (~120 instructions) ahead of the first load. H200, probe v19-grid, A B A B: full
    # seed 218.9 -> 213.7 us, padded seed 98.7 -> 93.7, packed seed 100.7 -> 95.7, N4096
    # D128 (Triton) 1053 -> 1045.
    prefill_3d_grid: bool = True
    # The Gluon Hopper prefill (kernels/prefill_sm90.py): None = from LONG_PREFILL query
    # rows on, where it was measured faster; True = every shape it supports; False = never.
    prefill_gluon: bool | None = None
    # Decode's merge kernel as a programmatic dependent launch on sm_90+ (its launch hides
    # behind the split kernel's tail).
    pdl: bool = True

    def __post_init__(self):
        for name in ("prefill_config", "decode_config", "paged_prefill_config"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Config):
                raise TypeError(f"{name} must be a tuning.Config or None, got "
                                f"{type(value).__name__}")
        for name in ("tma", "prefill_tiles_from_end", "prefill_gluon"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise TypeError(f"{name} must be True, False or None, got {value!r}")
        for name in ("padded_tma", "prefill_3d_grid", "pdl"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        pairs = self.prefill_chunk_pairs
        if pairs is not None and (isinstance(pairs, bool) or not isinstance(pairs, int)
                                  or pairs < 1):
            raise ValueError(f"prefill_chunk_pairs must be an int >= 1 or None, got {pairs!r}")


_current: contextvars.ContextVar[Tuning] = contextvars.ContextVar(
    "attention_kernel_triton_tuning", default=Tuning())  # noqa: B039 (frozen: immutable)


def current() -> Tuning:
    """The settings that apply to a call launched here and now."""
    return _current.get()


@contextlib.contextmanager
def override(**changes):
    """Change some settings inside a block (this thread / task only); unknown names are a
    TypeError naming them, bad values a TypeError / ValueError from Tuning."""
    known = {f.name for f in dataclasses.fields(Tuning)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown tuning settings {unknown}; known: {sorted(known)}")
    token = _current.set(dataclasses.replace(_current.get(), **changes))
    try:
        yield current()
    finally:
        _current.reset(token)
