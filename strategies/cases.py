"""Hypothesis strategies that draw attention test cases as frozen dataclasses.

A case holds only structure (shapes, dtype, lengths, page size, flags) and an integer
`seed`; tensors, page tables and index sets are built from the seed with a
`torch.Generator` on the CPU (strategies/tensors.py), so a case is small, serialises to
JSON, and reproduces bit-identically on CPU and GPU. Tables and index sets are built
directly (permutations, masks), never by filtering.

Every strategy takes keyword-only `min_*`/`max_*` bounds, checked when the strategy is
built (as Hypothesis's own strategies do): bad bounds raise ``InvalidArgument`` at the
call, naming the argument, not at the first draw.
Draws are biased toward edges: lengths 0, 1, the maximum and tile/page boundaries +-1,
page size 1, non-power-of-two heads, groups and head dims, large logits.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import functools
import inspect
from dataclasses import asdict, dataclass, fields

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

DTYPES = ("float16", "bfloat16", "float32")
HEAD_DIMS = (16, 24, 40, 64, 80, 96, 128, 160, 192, 256)
# Tile sizes used by the kernels (interpreter 16; GPU 16..128): +-1 around each.
BOUNDARIES = (15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129)
SCALES = (1.0, 3.0, 10.0, 30.0, 100.0)  # multiplies q: logits scale with it
# fp8 KV caches (decode functions, paged_prefill; q fp16 / bf16): the format, how the
# scale is given ("tensor": one fp32 scale, shape []; "head": one per KV head; "none": no
# scale argument, i.e. scale 1) and how it fits the values ("amax": amax / the format's
# max; "saturate": an eighth of that, so the largest values clip to the max;
# "subnormal": the largest value lands on the smallest normal, the rest below it).
FP8_DTYPES = ("float8_e4m3fn", "float8_e5m2")
KV_SCALES = ("tensor", "head", "none")
SCALE_FITS = ("amax", "saturate", "subnormal")
# Attention variants (kernels/mods.py), drawn by every case strategy with variants=True:
# sinks per query head built from the case's seed ("random": N(0, 3); "neg_inf": every
# sink -inf, i.e. none; "large": +20, above every logit the scales draw; "mixed": each
# head one of those), ALiBi slopes ("geometric": the ALiBi paper's series for Hq heads;
# "random": U(0, 1)).
SINK_KINDS = ("random", "neg_inf", "large", "mixed")
ALIBI_KINDS = ("geometric", "random")
VARIANT_ARGS = ("window", "softcap", "sinks", "alibi_slopes")  # the functions' keywords


def _check_int(arg: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{arg} must be an integer, got {value!r}")


def _check_bounds(**bounds):
    """Each (min_<name>, max_<name>) pair: integers with 0 <= min <= max."""
    for name, (lo, hi) in bounds.items():
        _check_int(f"min_{name}", lo)
        _check_int(f"max_{name}", hi)
        if lo > hi:
            raise InvalidArgument(f"min_{name}={lo} > max_{name}={hi}")
        if lo < 0:
            raise InvalidArgument(f"min_{name} must be >= 0, got {lo}")


def _check_at_least(**maxima):
    """Each (max_<name>, floor): an integer >= floor (a bound with no min_ argument)."""
    for name, (value, floor) in maxima.items():
        _check_int(f"max_{name}", value)
        if value < floor:
            raise InvalidArgument(f"max_{name} must be >= {floor}, got {value}")


def _check_names(arg: str, given, allowed, *, none_ok: bool = False):
    """`given`: a non-empty tuple or list of names from `allowed` (None too if none_ok)."""
    if isinstance(given, str) or not isinstance(given, (tuple, list)) or not given:
        raise InvalidArgument(f"{arg} must be a non-empty tuple of names, got {given!r}")
    for name in given:
        if not ((none_ok and name is None) or name in allowed):
            raise InvalidArgument(f"{arg} holds {name!r}: each must be "
                                  f"{'None or ' if none_ok else ''}one of {allowed}")


def _checked_when_built(check):
    """Decorate an @st.composite strategy so that `check(**every argument, defaults
    filled in)` runs when the strategy is built (hypothesis.extra.numpy's style) rather
    than inside the first draw, where a bad bound would surface as a failing example."""
    def wrap(composite):
        signature = inspect.signature(composite)

        @functools.wraps(composite)
        def build(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise InvalidArgument(f"{composite.__name__}: {exc}") from None
            bound.apply_defaults()
            check(**bound.arguments)
            return composite(*args, **kwargs)
        return build
    return wrap


def _check_common(*, min_batch, max_batch, max_kv_heads, max_group, min_head_dim,
                  max_head_dim, dtypes, variants=False, row_gaps=None, **_):
    """Bounds every case strategy shares: batch, heads, group, head dim, dtypes; and
    `variants`: False (no variant fields), True (drawn, none in half the cases),
    "always" (variant_fields), or a tuple of VARIANT_ARGS (only those drawn, as True)."""
    if isinstance(variants, tuple):
        _check_names("variants", variants, VARIANT_ARGS)
    elif variants not in (False, True, "always"):
        raise InvalidArgument(f"variants must be False, True, 'always' or a tuple of "
                              f"{VARIANT_ARGS}, got {variants!r}")
    _check_bounds(batch=(min_batch, max_batch), head_dim=(min_head_dim, max_head_dim))
    _check_at_least(kv_heads=(max_kv_heads, 1), group=(max_group, 1))
    if min_head_dim < 1:
        raise InvalidArgument(f"min_head_dim must be >= 1, got {min_head_dim}")
    _check_names("dtypes", dtypes, DTYPES)
    if row_gaps is not None:
        if isinstance(row_gaps, str) or not isinstance(row_gaps, (tuple, list)) or not row_gaps:
            raise InvalidArgument(f"row_gaps must be a non-empty tuple, got {row_gaps!r}")
        for gap in row_gaps:
            _check_int("row_gaps[i]", gap)
            if gap < 0:
                raise InvalidArgument(f"row_gaps holds {gap}: each must be >= 0")


def _check_prefill(*, max_seq, **kw):
    _check_common(**kw)
    _check_at_least(seq=(max_seq, 1))


def _check_decode(*, max_ctx, max_page_size, max_splits, max_indices, kv_dtypes,
                  long_context, min_batch, **kw):
    _check_common(min_batch=min_batch, **kw)
    _check_at_least(ctx=(max_ctx, 1), page_size=(max_page_size, 1), splits=(max_splits, 1),
                    indices=(max_indices, 1))
    _check_names("kv_dtypes", kv_dtypes, FP8_DTYPES, none_ok=True)
    if long_context and min_batch > 2:
        raise InvalidArgument(f"long_context draws at most 2 sequences; min_batch="
                              f"{min_batch}")


def _check_paged_prefill(*, max_ctx, max_q, max_page_size, max_splits, kv_dtypes, **kw):
    _check_common(**kw)
    _check_at_least(ctx=(max_ctx, 1), q=(max_q, 1), page_size=(max_page_size, 1),
                    splits=(max_splits, 1))
    _check_names("kv_dtypes", kv_dtypes, FP8_DTYPES, none_ok=True)


def lengths(max_len: int, *, min_len: int = 0) -> st.SearchStrategy[int]:
    """A length in [min_len, max_len], biased toward the edges."""
    edges = sorted({x for x in (0, 1, 2, max_len - 1, max_len, *BOUNDARIES)
                    if min_len <= x <= max_len})
    return st.one_of(st.sampled_from(edges), st.integers(min_len, max_len))


def head_dims(*, min_head_dim: int = 16, max_head_dim: int = 256):
    _check_bounds(head_dim=(min_head_dim, max_head_dim))
    listed = [d for d in HEAD_DIMS if min_head_dim <= d <= max_head_dim]
    anywhere = st.integers(min_head_dim, max_head_dim)  # a range may hold no listed dim
    return st.one_of(st.sampled_from(listed), anywhere) if listed else anywhere


def group_sizes(*, max_group: int):
    """Query heads per KV head: 1 (MHA), powers of two and odd ratios (3, 5, ...)."""
    return st.one_of(st.sampled_from([g for g in (1, 2, 3, 4, 5, 8) if g <= max_group]),
                     st.integers(1, max_group))


def page_sizes(*, max_page_size: int):
    """Tokens per cache page: 1, 3, 16, 64, 256 (those allowed) or any in between."""
    _check_at_least(page_size=(max_page_size, 1))
    listed = [p for p in (1, 3, 16, 64, 256) if p <= max_page_size]
    return st.one_of(st.sampled_from(listed), st.integers(1, max_page_size))


def context_lengths(n_ctx: int, *, page_size: int | None = None):
    """A sequence's length in [0, n_ctx]; paged, also the page edges P - 1, P, P + 1, 2P."""
    one_len = lengths(n_ctx)
    if page_size is None:
        return one_len
    edge = [x for x in (page_size - 1, page_size, page_size + 1, 2 * page_size)
            if 0 <= x <= n_ctx]
    return st.one_of(one_len, st.sampled_from(edge)) if edge else one_len


@st.composite
def page_tables(draw, *, page_size: int, shared):
    """A PageTable of `page_size`; `shared` draws `shared_pages`."""
    return PageTable(page_size=page_size, extra_pages=draw(st.sampled_from((0, 1, 5))),
                     shared_pages=draw(shared),
                     tail=draw(st.sampled_from(("garbage", "valid"))),
                     page_id_offset=draw(st.sampled_from((0, 0, 7))),
                     table_gap=draw(st.sampled_from(ROW_GAPS)))


def scales():
    return st.one_of(st.just(1.0), st.sampled_from(SCALES))


@st.composite
def kv_formats(draw, *, dtype: str, kv_dtypes):
    """The fp8 cache of a decode or paged prefill case, or None (the caches are in q's
    dtype): kv_dtype drawn from kv_dtypes (fp32 q: never fp8), its scale kind and fit."""
    kv_dtype = draw(st.sampled_from(kv_dtypes)) if dtype != "float32" else None
    if kv_dtype is None:
        return None
    return Fp8Cache(kv_dtype=kv_dtype, kv_scale=draw(st.sampled_from(KV_SCALES)),
                    scale_fit=draw(st.sampled_from(SCALE_FITS)))


@st.composite
def variant_fields(draw, *, max_len: int, always: bool = False, kinds=VARIANT_ARGS):
    """The Variants of a case: none at all half the time (shrinks there; never with
    always=True), else each of window, softcap, sinks and ALiBi independently (those of
    `kinds`, VARIANT_ARGS names, only). Window
    sides: -1 (unbounded), 0, 1, tile boundaries +-1, beyond the longest length, or any
    in [0, max_len]; soft-caps 1 to 50 (with the large logits `scales` draws); sinks and
    slopes: SINK_KINDS and ALIBI_KINDS."""
    if not always and not draw(st.booleans()):
        return Variants()
    side = st.one_of(st.sampled_from((-1, 0, 1, max_len + 1)),
                     st.sampled_from(BOUNDARIES), st.integers(0, max(0, max_len)))
    fields = {}
    if "window" in kinds and draw(st.booleans()):
        fields["window"] = (draw(side), draw(st.one_of(st.just(-1), side)))
    if "softcap" in kinds and draw(st.booleans()):
        fields["softcap"] = draw(st.one_of(st.sampled_from((1.0, 50.0)),
                                           st.floats(1.0, 50.0)))
    if "sinks" in kinds and draw(st.booleans()):
        fields["sinks"] = draw(st.sampled_from(SINK_KINDS))
    if "alibi_slopes" in kinds and draw(st.booleans()):
        fields["alibi"] = draw(st.sampled_from(ALIBI_KINDS))
    return Variants(**fields)


def _variants(draw, variants, max_len: int) -> Variants:
    """A strategy's Variants for its `variants` argument (_check_common)."""
    if not variants:
        return Variants()
    kinds = {"kinds": variants} if isinstance(variants, tuple) else {}
    return draw(variant_fields(max_len=max_len, always=variants == "always", **kinds))


def sm_scales():
    """An explicit softmax scale half the time (else the default 1/sqrt(D))."""
    return st.one_of(st.none(), st.sampled_from((0.03, 0.125, 0.5, 1.0)))


@dataclass(frozen=True)
class Layout:
    """How a case's tensors sit in memory (each gap holds NaN, memory a kernel must never
    read). transposed: prefill's q/k/v are [B, N, H, D] storage seen as [B, H, N, D]
    (packed var-len: [H, T, D] seen as [T, H, D]); decode's dense cache [B, N, H, D],
    a paged cache [pages, H, P, D]. v_transposed: v laid out unlike k (their strides
    differ). q_transposed (decode, paged prefill): q's heads outermost in storage. row_gap:
    rows stored D + row_gap apart (ROW_GAPS). out_like_q: where a property passes out=,
    it has q's strides and gaps (their NaN must survive the call bit for bit)."""
    transposed: bool = False
    v_transposed: bool = False
    q_transposed: bool = False
    row_gap: int = 0
    out_like_q: bool = False


@dataclass(frozen=True)
class Variants:
    """The attention variants of a case (kernels/mods.py); all None: none."""
    window: tuple | None = None  # (left, right), -1 = unbounded
    softcap: float | None = None
    sinks: str | None = None  # SINK_KINDS
    alibi: str | None = None  # ALIBI_KINDS


@dataclass(frozen=True)
class PageTable:
    """A paged cache's table: each sequence's pages are a random permutation slice of
    the cache's pages (`extra_pages` unused ones beyond those needed); table slots past a
    sequence's end hold `tail` ("garbage": random ints incl. -1 and out-of-range, or
    "valid" page ids); `page_id_offset` leaves the first pages of the cache unused (the
    used ones sit at the end); `table_gap` extra columns per table row (a column slice of
    a wider table, the gap holding valid ids). `shared_pages`: every later sequence's
    first pages, up to that many, are sequence 0's (decode draws 0 or 1, paged prefill a
    count: a shared prefix). Offsets past 2**31 elements are tests/test_gpu.py's."""
    page_size: int
    extra_pages: int = 0
    shared_pages: int = 0
    tail: str = "garbage"
    page_id_offset: int = 0
    table_gap: int = 0


@dataclass(frozen=True)
class IndexSet:
    """Sparse decode's index rows: `index_kind` (INDEX_KINDS) picks how rows of
    `num_indices` positions are built; one row per query head (`per_query_head`) or per
    KV head. Layout (the gaps hold values a kernel must never read): `index_gap` slots
    after each row, slots `index_step` apart, `index_transposed` [H_idx, B, K] storage."""
    index_kind: str
    num_indices: int
    per_query_head: bool = False
    index_gap: int = 0
    index_step: int = 1
    index_transposed: bool = False


@dataclass(frozen=True)
class Fp8Cache:
    """fp8 K/V caches (decode family, paged prefill; q fp16 / bf16): `kv_dtype`
    (FP8_DTYPES), how the scale is given (`kv_scale`, KV_SCALES) and fitted
    (`scale_fit`, SCALE_FITS)."""
    kv_dtype: str
    kv_scale: str = "tensor"
    scale_fit: str = "amax"


class _Case:
    """What the three case types share: the query head count, the page table's and fp8
    cache's derived values, and the JSON form (nested groups as dicts; ``case_from_dict``
    reads it back, and the flat form of corpus format 1 too)."""

    @property
    def num_q_heads(self) -> int:
        return self.num_kv_heads * self.group_size

    @property
    def page_size(self) -> int | None:
        """The paged cache's page size; None on a dense cache (and for prefill)."""
        pages = getattr(self, "pages", None)
        return pages.page_size if pages is not None else None

    @property
    def max_pages(self) -> int:
        """A page table row's length (0 without a paged cache)."""
        return -(-self.n_ctx // self.page_size) if self.page_size is not None else 0

    @property
    def kv_dtype(self) -> str | None:
        """The caches' fp8 format; None for caches in q's dtype (always for prefill)."""
        fp8 = getattr(self, "fp8", None)
        return fp8.kv_dtype if fp8 is not None else None

    def to_dict(self):
        return {"type": type(self).__name__, **asdict(self)}


@dataclass(frozen=True)
class PrefillCase(_Case):
    """prefill (padded when q_lens is set) and prefill_varlen (always q_lens; n_q / n_k
    their maxima; `slack_rows` packed rows past the last sequence)."""
    batch: int
    num_kv_heads: int
    group_size: int
    head_dim: int
    n_q: int
    n_k: int
    dtype: str
    causal: bool
    q_lens: tuple | None  # valid query lengths (padded var-len); None = full
    kv_lens: tuple | None  # valid key lengths; None = same as q_lens (or full)
    scale: float  # multiplies q
    seed: int
    slack_rows: int = 0
    sm_scale: float | None = None  # None: the default 1/sqrt(D)
    layout: Layout = Layout()  # q follows `transposed`: no q_transposed
    variants: Variants = Variants()

    def __post_init__(self):
        if self.layout.q_transposed:
            raise ValueError("a PrefillCase lays q out with `transposed`; its layout takes "
                             "no q_transposed")


# Rows stored with NaN columns after their D values (a row stride above D): a kernel that
# reads a column past D, even one it multiplies by a zero-padded q, gets NaN. 16 keeps
# 16-element alignment when D is a multiple of 16 (TMA and vector loads stay eligible);
# 3 breaks it. Strategies take `row_gaps` (default ROW_GAPS; conformance mode passes
# ALIGNED_ROW_GAPS for an implementation that declares it needs aligned rows).
ROW_GAPS = (0, 0, 16, 3)
ALIGNED_ROW_GAPS = (0, 0, 16)


@_checked_when_built(_check_prefill)
@st.composite
def prefill_cases(draw, *, min_batch=1, max_batch=3, max_kv_heads=3, max_group=5,
                  min_head_dim=16, max_head_dim=128, max_seq=48, dtypes=("float16",),
                  varlen=False, padded=None, causal=None, same_q_k=None, variants=False,
                  row_gaps=ROW_GAPS):
    """Cases for prefill (padded=True forces lengths, False forbids them) and, with
    varlen=True, for prefill_varlen (lengths always drawn; n_q/n_k are their maxima)."""
    batch = draw(st.integers(min_batch, max_batch))
    num_kv_heads = draw(st.integers(1, max_kv_heads))
    group = draw(group_sizes(max_group=max_group))
    head_dim = draw(head_dims(min_head_dim=min_head_dim, max_head_dim=max_head_dim))
    dtype = draw(st.sampled_from(dtypes))
    is_causal = draw(st.booleans()) if causal is None else causal
    same = draw(st.booleans()) if same_q_k is None else same_q_k
    use_lens = varlen or (draw(st.booleans()) if padded is None else padded)
    n_q = draw(lengths(max_seq, min_len=1))
    n_k = n_q if same else draw(lengths(max_seq, min_len=1))
    q_lens = kv_lens = None
    if use_lens:
        q_lens = tuple(draw(st.lists(lengths(n_q), min_size=batch, max_size=batch)))
        if not same:
            kv_lens = tuple(draw(st.lists(lengths(n_k), min_size=batch, max_size=batch)))
        if varlen:  # n_q / n_k are just the maxima
            n_q = max(q_lens)
            n_k = max(kv_lens) if kv_lens is not None else n_q
    scale, transposed = draw(scales()), draw(st.booleans())
    slack_rows = draw(st.sampled_from((0, 0, 1, 3))) if varlen else 0
    seed, v_transposed = draw(st.integers(0, 2**31 - 1)), draw(st.booleans())
    sm_scale, row_gap = draw(sm_scales()), draw(st.sampled_from(row_gaps))
    return PrefillCase(
        batch=batch, num_kv_heads=num_kv_heads, group_size=group, head_dim=head_dim,
        n_q=n_q, n_k=n_k, dtype=dtype, causal=is_causal, q_lens=q_lens, kv_lens=kv_lens,
        scale=scale, seed=seed, slack_rows=slack_rows, sm_scale=sm_scale,
        layout=Layout(transposed=transposed, v_transposed=v_transposed, row_gap=row_gap,
                      out_like_q=draw(st.booleans())),
        variants=_variants(draw, variants, max(n_q, n_k)))


@dataclass(frozen=True)
class DecodeCase(_Case):
    """Dense decode, paged decode (`pages` set) and their sparse forms (`indices` set)."""
    batch: int
    num_kv_heads: int
    group_size: int
    head_dim: int
    n_ctx: int  # dense: N; paged: max_pages * page_size >= every length
    dtype: str
    seq_lens: tuple | None  # None: every sequence is n_ctx long (dense only)
    scale: float
    seed: int
    num_splits: int | None = None
    q_rank4: bool = False  # q given as [B, Hq, 1, D]
    sm_scale: float | None = None  # None: the default 1/sqrt(D)
    layout: Layout = Layout()
    pages: PageTable | None = None  # None: a dense cache
    indices: IndexSet | None = None  # None: not sparse
    fp8: Fp8Cache | None = None  # None: the caches are in q's dtype
    variants: Variants = Variants()


INDEX_KINDS = ("sorted", "shuffled", "duplicates", "neg_start", "neg_middle", "neg_end",
               "all_neg_rows", "every_token", "single")


@_checked_when_built(_check_decode)
@st.composite
def decode_cases(draw, *, min_batch=1, max_batch=4, max_kv_heads=3, max_group=5,
                 min_head_dim=16, max_head_dim=128, max_ctx=64, dtypes=("float16",),
                 paged=False, sparse=False, with_lens=None, max_page_size=16,
                 long_context=False, max_splits=8, max_indices=48, kv_dtypes=(None,),
                 variants=False, row_gaps=ROW_GAPS):
    """Decode cases; `paged` draws a page table, `sparse` an index set. long_context
    draws few sequences near max_ctx (so the split heuristic splits). kv_dtypes: the
    caches' formats to draw (None: q's dtype; see FP8_DTYPES)."""
    batch = draw(st.integers(min_batch, 2 if long_context else max_batch))
    num_kv_heads = draw(st.integers(1, max_kv_heads))
    group = draw(group_sizes(max_group=max_group))
    head_dim = draw(head_dims(min_head_dim=min_head_dim, max_head_dim=max_head_dim))
    dtype = draw(st.sampled_from(dtypes))
    page_size = draw(page_sizes(max_page_size=max_page_size)) if paged else None
    n_ctx = draw(lengths(max_ctx, min_len=max(1, max_ctx // 2) if long_context else 1))
    if paged:  # a table row's capacity, in whole pages
        n_ctx = -(-n_ctx // page_size) * page_size
    lens = with_lens if with_lens is not None else (paged or draw(st.booleans()))
    seq_lens = None
    if lens:  # sparse: a length-0 sequence has all -1 index rows (output 0)
        one_len = context_lengths(n_ctx, page_size=page_size)
        seq_lens = tuple(draw(st.lists(one_len, min_size=batch, max_size=batch)))
    splits = draw(st.one_of(st.none(), st.integers(1, max_splits)))
    pages = draw(page_tables(page_size=page_size, shared=st.booleans().map(int))) \
        if paged else None
    indices = IndexSet(index_kind=draw(st.sampled_from(INDEX_KINDS)),
                       num_indices=draw(st.integers(1, max_indices)),
                       per_query_head=draw(st.booleans()),
                       index_gap=draw(st.sampled_from(ROW_GAPS)),
                       index_step=draw(st.sampled_from((1, 1, 2))),
                       index_transposed=draw(st.booleans())) if sparse else None
    # (the draws keep the order they had before the fields were grouped: the same seed
    # draws the same cases)
    scale, seed = draw(scales()), draw(st.integers(0, 2**31 - 1))
    q_rank4 = draw(st.booleans())
    transposed, v_transposed, q_transposed = (draw(st.booleans()) for _ in range(3))
    sm_scale, row_gap = draw(sm_scales()), draw(st.sampled_from(row_gaps))
    layout = Layout(transposed=transposed, v_transposed=v_transposed,
                    q_transposed=q_transposed, row_gap=row_gap,
                    out_like_q=draw(st.booleans()))
    return DecodeCase(
        batch=batch, num_kv_heads=num_kv_heads, group_size=group, head_dim=head_dim,
        n_ctx=n_ctx, dtype=dtype, seq_lens=seq_lens, scale=scale, seed=seed,
        num_splits=splits, q_rank4=q_rank4, sm_scale=sm_scale, layout=layout, pages=pages,
        indices=indices, fp8=draw(kv_formats(dtype=dtype, kv_dtypes=kv_dtypes)),
        variants=_variants(draw, variants, n_ctx))


@dataclass(frozen=True)
class PagedPrefillCase(_Case):
    """Paged prefill: sequence b's q_lens[b] new query tokens, packed, are the last tokens
    of its seq_lens[b]-token context in a paged cache (chunked prefill, prefix caching).
    q is packed [Tq, Hq, D] with Tq = sum(q_lens) + slack_rows: the slack rows belong to
    no sequence."""
    batch: int
    num_kv_heads: int
    group_size: int
    head_dim: int
    n_ctx: int  # max_pages * page_size >= every seq_len
    dtype: str
    seq_lens: tuple  # each sequence's whole context, its new tokens included
    q_lens: tuple  # each sequence's new tokens, q_lens[b] <= seq_lens[b]
    causal: bool
    scale: float  # multiplies q
    seed: int
    pages: PageTable
    num_splits: int | None = None
    slack_rows: int = 0
    sm_scale: float | None = None  # None: the default 1/sqrt(D)
    layout: Layout = Layout()
    fp8: Fp8Cache | None = None  # as DecodeCase's
    variants: Variants = Variants()

    @property
    def n_q(self) -> int:
        """The longest query (max_seqlen_q); n_q and n_k are prefill's names for a case's
        extent (tests/corpus_io.py sizes a case by them)."""
        return max(self.q_lens, default=0)

    @property
    def n_k(self) -> int:
        return self.n_ctx


def query_lengths(seq_len: int, *, max_q: int):
    """New tokens of a sequence of seq_len: any in [0, min(seq_len, max_q)], biased to the
    edges and tile boundaries, 2..8 (speculative verification), and the whole sequence."""
    hi = min(seq_len, max_q)
    return st.one_of(lengths(hi), st.integers(min(2, hi), min(8, hi)), st.just(hi))


@_checked_when_built(_check_paged_prefill)
@st.composite
def paged_prefill_cases(draw, *, min_batch=1, max_batch=4, max_kv_heads=3, max_group=5,
                        min_head_dim=16, max_head_dim=128, max_ctx=64, max_q=64,
                        dtypes=("float16",), max_page_size=16, max_splits=8, causal=None,
                        kv_dtypes=(None,), variants=False, row_gaps=ROW_GAPS):
    """Cases for paged_prefill: contexts 0..max_ctx (page edges too), each with 0..max_q
    new tokens (at most its context); causal drawn unless given; kv_dtypes as
    decode_cases'."""
    batch = draw(st.integers(min_batch, max_batch))
    num_kv_heads = draw(st.integers(1, max_kv_heads))
    group = draw(group_sizes(max_group=max_group))
    head_dim = draw(head_dims(min_head_dim=min_head_dim, max_head_dim=max_head_dim))
    dtype = draw(st.sampled_from(dtypes))
    page_size = draw(page_sizes(max_page_size=max_page_size))
    n_ctx = -(-draw(lengths(max_ctx, min_len=1)) // page_size) * page_size  # whole pages
    seq_lens, q_lens = [], []
    for _ in range(batch):
        seq_lens.append(draw(context_lengths(n_ctx, page_size=page_size)))
        q_lens.append(draw(query_lengths(seq_lens[-1], max_q=max_q)))
    is_causal = draw(st.booleans()) if causal is None else causal
    scale, seed = draw(scales()), draw(st.integers(0, 2**31 - 1))
    num_splits = draw(st.one_of(st.none(), st.integers(1, max_splits)))
    slack_rows = draw(st.sampled_from((0, 0, 1, 3)))
    q_transposed, transposed, v_transposed = (draw(st.booleans()) for _ in range(3))
    pages = draw(page_tables(page_size=page_size, shared=st.sampled_from((0, 1, 2, 4))))
    sm_scale, row_gap = draw(sm_scales()), draw(st.sampled_from(row_gaps))
    layout = Layout(transposed=transposed, v_transposed=v_transposed,
                    q_transposed=q_transposed, row_gap=row_gap,
                    out_like_q=draw(st.booleans()))
    return PagedPrefillCase(
        batch=batch, num_kv_heads=num_kv_heads, group_size=group, head_dim=head_dim,
        n_ctx=n_ctx, dtype=dtype, seq_lens=tuple(seq_lens), q_lens=tuple(q_lens),
        causal=is_causal, scale=scale, seed=seed, pages=pages, num_splits=num_splits,
        slack_rows=slack_rows, sm_scale=sm_scale, layout=layout,
        fp8=draw(kv_formats(dtype=dtype, kv_dtypes=kv_dtypes)),
        variants=_variants(draw, variants, n_ctx))


# A case's groups of fields, and for the optional ones the field that is None in the flat
# form (corpus format 1) when the group is absent.
_GROUPS = {"layout": Layout, "variants": Variants, "pages": PageTable, "indices": IndexSet,
           "fp8": Fp8Cache}
_PRESENT_BY = {"pages": "page_size", "indices": "index_kind", "fp8": "kv_dtype"}


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def case_from_dict(d: dict):
    """Inverse of `to_dict` (corpus replay); lists become tuples again. Also reads the
    flat form of corpus format 1 (every group's fields at the top level, as the cases had
    them before session 19): a group takes its fields from there, an optional group is
    None where its key field is. An unknown field raises."""
    d = dict(d)
    cls = {"PrefillCase": PrefillCase, "DecodeCase": DecodeCase,
           "PagedPrefillCase": PagedPrefillCase}[d.pop("type")]
    names = {f.name for f in fields(cls)}
    out = {k: _tuples(v) for k, v in d.items() if k in names}
    flat = {k: v for k, v in d.items() if k not in names}
    for name, group in _GROUPS.items():
        if name not in names:
            continue
        if isinstance(out.get(name), dict):
            out[name] = group(**{k: _tuples(v) for k, v in out[name].items()})
        elif name not in out:
            mine = {f.name: _tuples(flat.pop(f.name)) for f in fields(group)
                    if f.name in flat}
            key = _PRESENT_BY.get(name)
            if key is None or mine.get(key) is not None:
                out[name] = group(**mine)
            elif name == "pages" and cls is PagedPrefillCase:
                raise ValueError("a PagedPrefillCase needs a page_size")
            else:
                out[name] = None
    if flat:
        raise ValueError(f"{cls.__name__} has no fields {sorted(flat)}")
    return cls(**out)
