"""The adapters shipped for conformance mode (attention_kernel_triton.conformance): our
kernels, torch SDPA per backend, and FlexAttention. Each maps our arguments to its API
and declares what it supports; nothing here changes what a peer computes (no mask it
did not get, no fix-up of its results other than zeroing padding query rows, which are
no query in our API and outside what SDPA defines).

    SHIPPED: name -> a function that builds the adapter (imports happen there)
"""

from __future__ import annotations

import math
import warnings

import torch

from attention_kernel_triton.conformance import FP8, OPERATIONS, VARIANTS, Adapter, Supports
from attention_kernel_triton.oracles.core import causal_mask, length_mask

_NO_LSE = "torch's public scaled_dot_product_attention returns no LSE"
_NO_OUT = "the peer allocates its output (no out= argument)"


def _cuda_reason() -> str | None:
    return None if torch.cuda.is_available() else "needs a CUDA device"


def ours() -> Adapter:
    """Our kernels, through the same conformance path as any peer."""
    import attention_kernel_triton as akt

    full = Supports(fp8=FP8, variants=VARIANTS)
    return Adapter("triton", {op: getattr(akt, op) for op in OPERATIONS}, full, is_ours=True)


# --- masks in our conventions (bottom-right causal, lengths), for peers that take one ----

def _lens(lens, n, batch, device):
    return torch.full((batch,), n, device=device) if lens is None else lens.long()


def _allowed(q_lens, k_lens, n_q, n_k, causal):
    """bool [B, 1, Nq, Nk]: the oracles' own length and bottom-right causal masks."""
    ok = length_mask(q_lens, k_lens, n_q, n_k)
    return ok & causal_mask(q_lens, k_lens, n_q, n_k) if causal else ok


def _zero_padding_rows(out, q_lens):
    """Our API's padding query rows (i >= seq_lens[b]) are 0."""
    row = torch.arange(out.shape[2], device=out.device).view(1, 1, -1, 1)
    return out.masked_fill(row >= q_lens.view(-1, 1, 1, 1), 0)


def _pad_head_dim(q, k, v, multiple):
    """Zero columns up to a multiple of `multiple` (scores unchanged; the extra output
    columns are dropped by the caller)."""
    d = q.shape[-1]
    pad = -d % multiple
    if pad == 0:
        return q, k, v, d
    return (*(torch.nn.functional.pad(t, (0, pad)) for t in (q, k, v)), d)


# --- torch SDPA, one adapter per backend -------------------------------------------------

def _sdpa_ops(backend_name: str, *, takes_mask: bool, native_gqa: bool, pad_to: int):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    backend = getattr(SDPBackend, backend_name)

    def attend(q, k, v, mask, is_causal, sm_scale):
        group = q.shape[1] // k.shape[1]
        if group > 1 and not native_gqa:
            k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
        q, k, v, d = _pad_head_dim(q, k, v, pad_to)  # a copy only where D needs it
        scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
        with sdpa_kernel([backend]):
            out = sdpa(q, k, v, attn_mask=mask, is_causal=is_causal, scale=scale,
                       **({"enable_gqa": True} if group > 1 and native_gqa else {}))
        return out[..., :d]

    def prefill(q, k, v, *, causal=True, seq_lens=None, kv_seq_lens=None, sm_scale=None):
        b, _, n_q, _ = q.shape
        n_k = k.shape[2]
        if not takes_mask:  # square causal, full lengths only (Supports below)
            return attend(q, k, v, None, causal, sm_scale)
        q_lens = _lens(seq_lens, n_q, b, q.device)
        k_lens = q_lens if kv_seq_lens is None and seq_lens is not None \
            else _lens(kv_seq_lens, n_k, b, q.device)
        mask = _allowed(q_lens, k_lens, n_q, n_k, causal)
        return _zero_padding_rows(attend(q, k, v, mask, False, sm_scale), q_lens)

    def decode(q, k, v, *, seq_lens=None, sm_scale=None):
        q4 = q if q.dim() == 4 else q.unsqueeze(2)
        mask = None
        if seq_lens is not None:  # one query row, keys below each length
            mask = _allowed(torch.ones_like(seq_lens.long()), seq_lens.long(), 1, k.shape[2],
                            causal=False)
        return attend(q4, k, v, mask, False, sm_scale).reshape(q.shape)

    return {"prefill": prefill, "decode": decode}


def _sdpa(backend_name: str, supports: Supports, *, takes_mask: bool, native_gqa: bool,
          cuda: bool):
    def build() -> Adapter:
        name = "sdpa-" + {"MATH": "math", "FLASH_ATTENTION": "flash",
                          "EFFICIENT_ATTENTION": "efficient",
                          "CUDNN_ATTENTION": "cudnn"}[backend_name]
        # the fused backends take D in multiples of 8 (a zero-padded copy); math any D, as
        # given (its strides, gaps included, reach it unchanged)
        pad_to = 1 if backend_name == "MATH" else 8
        return Adapter(name, _sdpa_ops(backend_name, takes_mask=takes_mask,
                                       native_gqa=native_gqa, pad_to=pad_to), supports,
                       unavailable=_cuda_reason if cuda else None)
    return build


_SDPA_NOTES = {"lse": _NO_LSE, "out": _NO_OUT}
_NO_MASK = {"lengths": "this backend takes no attn_mask, so no per-sequence lengths",
            "rectangular_causal": "is_causal is top-left aligned in torch SDPA; with Nq "
                                  "!= Nk it is not our (FlashAttention's) bottom-right "
                                  "convention, and this backend takes no mask to say so"}

# SDPA math: the reference of torch, any dtype and head dim, GQA through enable_gqa.
sdpa_math = _sdpa("MATH", Supports(lse=False, out=False, notes=_SDPA_NOTES),
                  takes_mask=True, native_gqa=True, cuda=False)
# Rows 3 elements past D (q/k/v views of wider rows, 2026-12-06 on an H100, torch 2.11;
# scripts/sdpa_gap_repro.py): the efficient backend refuses them ("cutlassF: no kernel
# found to launch!"), the flash backend crashes (CUDA error: misaligned address, which
# spoils the process's CUDA context, so no later case could run): neither draws them.
_UNALIGNED = {"unaligned_rows": "rows D + 3 elements apart: refused or a CUDA error in "
                                "this backend (scripts/sdpa_gap_repro.py)"}
sdpa_efficient = _sdpa("EFFICIENT_ATTENTION", Supports(
    lse=False, out=False, unaligned_rows=False, notes={**_SDPA_NOTES, **_UNALIGNED}),
                       takes_mask=True, native_gqa=False, cuda=True)
sdpa_flash = _sdpa("FLASH_ATTENTION", Supports(
    dtypes=("float16", "bfloat16"), lse=False, out=False, lengths=False,
    rectangular_causal=False, unaligned_rows=False,
    notes={**_SDPA_NOTES, **_NO_MASK, **_UNALIGNED}),
    takes_mask=False, native_gqa=True, cuda=True)
sdpa_cudnn = _sdpa("CUDNN_ATTENTION", Supports(
    dtypes=("float16", "bfloat16"), head_dims=(16, 128), lse=False, out=False,
    lengths=False, rectangular_causal=False, notes={**_SDPA_NOTES, **_NO_MASK}),
    takes_mask=False, native_gqa=False, cuda=True)


# --- paged caches in our convention ------------------------------------------------------

def _pages_used(block_table, seq_lens, page):
    """(cols [max_pages], used bool [B, max_pages]): a sequence's pages are the first
    ceil(len / P) entries of its table row; entries past them are never read."""
    cols = torch.arange(block_table.shape[1], device=block_table.device)
    n_pages = (seq_lens.long() + page - 1) // page
    return cols, cols.unsqueeze(0) < n_pages.unsqueeze(1)


# --- FlexAttention -----------------------------------------------------------------------

def flex() -> Adapter:
    """FlexAttention: masks (lengths, bottom-right causal, window) as a mask_mod and a
    block mask, softcap and ALiBi as a score_mod, GQA through enable_gqa, the LSE through
    return_lse. Compiled on a GPU (its Triton kernel, the one people use; every shape
    compiles once), eager (torch's unfused reference of it) on the CPU.

    Paged decode runs over the physical cache as one key sequence ([1, Hkv, pages x P, D],
    K/V batch 1 broadcast over the block mask's batch, as torch's experimental
    PagedAttention does): the mask_mod maps a physical key to its position in sequence b
    through the inverse of b's page-table row (logical page per physical page, -1 where
    b has none): the block mask skips the key blocks (flex's, 128 keys) that hold none of
    b's keys; a block that mixes b's keys with others' is computed and masked."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    try:
        from torch.nn.attention.flex_attention import AuxRequest as aux_request
    except ImportError:
        aux_request = None
    compiled = {}

    def run(*args, **kwargs):
        if args[0].device.type != "cuda":
            # eager: a fresh mask/score mod per call makes torch re-trace each time; after
            # many, torch 2.13's guard-failure reporting raised "TypeError: 'NoneType'
            # object is not subscriptable" now and then (with a reset every 32 calls too),
            # so every eager call starts from a clean slate (2x slower)
            torch._dynamo.reset()
            with warnings.catch_warnings():  # "called without torch.compile": by design
                warnings.filterwarnings("ignore", message=".*without torch.compile")
                return flex_attention(*args, **kwargs)
        if "fn" not in compiled:
            torch._dynamo.config.recompile_limit = 1 << 12  # never fall back silently
            compiled["fn"] = torch.compile(flex_attention, dynamic=False)
        return compiled["fn"](*args, **kwargs)

    def dense_keys(bi, j):  # key j of sequence bi sits at position j
        return j, None

    def attend(q, k, v, q_lens, k_lens, *, causal, sm_scale, window, softcap,
               alibi_slopes, return_lse, key_pos=dense_keys):
        """key_pos(bi, j) -> (key j's position in sequence bi, whether bi has key j at
        all, or None: every j does)."""
        b, _, n_q, _ = q.shape
        n_k = k.shape[2]
        shift = k_lens - q_lens  # aligned (bottom-right) query position = i + shift

        def mask_mod(bi, h, i, j):
            jpos, owned = key_pos(bi, j)
            ok = (i < q_lens[bi]) & (jpos < k_lens[bi])
            if owned is not None:
                ok = ok & owned
            pos = i + shift[bi]
            if causal:
                ok = ok & (jpos <= pos)
            if window is not None and window[0] >= 0:
                ok = ok & (jpos >= pos - window[0])
            if window is not None and window[1] >= 0:
                ok = ok & (jpos <= pos + window[1])
            return ok

        def score_mod(s, bi, h, i, j):
            if softcap is not None:
                s = softcap * torch.tanh(s / softcap)
            if alibi_slopes is not None:
                s = s - alibi_slopes[h] * (i + shift[bi] - key_pos(bi, j)[0]).abs()
            return s

        mods = softcap is not None or alibi_slopes is not None
        block_mask = create_block_mask(mask_mod, b, None, n_q, n_k, device=q.device)
        # the compiled kernel takes D in multiples of 16 (a zero-padded copy); eager, any D
        q, k, v, d = _pad_head_dim(q, k, v, 16 if q.device.type == "cuda" else 1)
        scale = 1.0 / math.sqrt(d) if sm_scale is None else sm_scale
        if aux_request is None:  # torch before AuxRequest
            out, lse = run(q, k, v, score_mod if mods else None, block_mask, scale=scale,
                           enable_gqa=True, return_lse=True)
        else:
            out, aux = run(q, k, v, score_mod if mods else None, block_mask, scale=scale,
                           enable_gqa=True, return_aux=aux_request(lse=True))
            lse = aux.lse
        out = _zero_padding_rows(out[..., :d], q_lens)
        return (out, lse.float()) if return_lse else out

    def prefill(q, k, v, *, causal=True, seq_lens=None, kv_seq_lens=None, sm_scale=None,
                window=None, softcap=None, alibi_slopes=None, return_lse=False):
        b, n_q, n_k = q.shape[0], q.shape[2], k.shape[2]
        q_lens = _lens(seq_lens, n_q, b, q.device)
        k_lens = q_lens if kv_seq_lens is None and seq_lens is not None \
            else _lens(kv_seq_lens, n_k, b, q.device)
        got = attend(q, k, v, q_lens, k_lens, causal=causal, sm_scale=sm_scale,
                     window=window, softcap=softcap, alibi_slopes=alibi_slopes,
                     return_lse=return_lse)
        if return_lse:  # padding rows are no query: LSE -inf (flex gives it already)
            out, lse = got
            row = torch.arange(n_q, device=q.device).view(1, 1, -1)
            return out, lse.masked_fill(row >= q_lens.view(-1, 1, 1), float("-inf"))
        return got

    def one_query(q, k, v, k_lens, *, return_lse, **kwargs):
        """Decode: each sequence's one query ([B, Hq, D] or [B, Hq, 1, D]) at its last
        position; out like q, lse [B, Hq]."""
        q4 = q if q.dim() == 4 else q.unsqueeze(2)
        got = attend(q4, k, v, torch.ones_like(k_lens), k_lens, causal=True,
                     return_lse=return_lse, **kwargs)
        if return_lse:
            return got[0].reshape(q.shape), got[1][:, :, 0]
        return got.reshape(q.shape)

    def decode(q, k, v, *, seq_lens=None, sm_scale=None, window=None, softcap=None,
               alibi_slopes=None, return_lse=False):
        k_lens = _lens(seq_lens, k.shape[2], q.shape[0], q.device)
        return one_query(q, k, v, k_lens, sm_scale=sm_scale, window=window, softcap=softcap,
                         alibi_slopes=alibi_slopes, return_lse=return_lse)

    def paged_decode(q, k_cache, v_cache, block_table, seq_lens, *, sm_scale=None,
                     window=None, softcap=None, alibi_slopes=None, return_lse=False):
        num_pages, page, hkv, d = k_cache.shape
        b = q.shape[0]
        if num_pages == 0:  # flex takes no empty key sequence: one page no row owns
            k_cache, v_cache = (t.new_zeros((1, page, hkv, d)) for t in (k_cache, v_cache))
            num_pages = 1
        # the physical cache as one sequence of num_pages x P keys (a copy where the
        # cache's strides do not allow a view)
        k = k_cache.reshape(1, num_pages * page, hkv, d).transpose(1, 2)
        v = v_cache.reshape(1, num_pages * page, hkv, d).transpose(1, 2)
        # logical[bi, p]: the index of physical page p in sequence bi's table row (-1: not
        # its page)
        cols, used = _pages_used(block_table, seq_lens, page)
        logical = torch.full((b, num_pages), -1, dtype=torch.long, device=q.device)
        rows = torch.arange(b, device=q.device).unsqueeze(1).expand_as(used)
        logical[rows[used], block_table.long()[used]] = cols.expand_as(used)[used]

        def paged_keys(bi, j):
            lp = logical[bi, j // page]
            return lp * page + j % page, lp >= 0

        return one_query(q, k, v, seq_lens.long(), sm_scale=sm_scale, window=window,
                         softcap=softcap, alibi_slopes=alibi_slopes, return_lse=return_lse,
                         key_pos=paged_keys)

    supports = Supports(out=False, variants=("window", "softcap", "alibi_slopes"),
                        notes={"out": _NO_OUT,
                               "sinks": "FlexAttention has no sink term in its denominator"})
    return Adapter("flex", {"prefill": prefill, "decode": decode,
                            "paged_decode": paged_decode}, supports)


# --- FlashInfer (optional) ----------------------------------------------------------------

_FLASHINFER_DIMS = (64, 128, 256)  # the head dims its kernels are built for


def _flashinfer_unavailable() -> str | None:
    if not torch.cuda.is_available():
        return "needs a CUDA device"
    try:
        import flashinfer  # noqa: F401
    except ImportError as exc:
        return (f"flashinfer is not installed ({exc}); the GPU scripts install it from "
                f"wheels carried in .whl/ (scripts/gpu_run.sh)")
    return None


def _row_major(t: torch.Tensor) -> torch.Tensor:
    """t with row-major strides in every dimension, size-1 ones included. `.contiguous()`
    keeps a size-1 dimension's stride as it is (PyTorch counts it contiguous either way),
    and FlashInfer 0.2.5 compares K's and V's strides literally: a V cache with one KV
    head stored head-major ("k/v strides must be identical", conformance on an H100,
    2026-12-08, tests/corpus/conformance/flashinfer/paged_decode-inputs_untouched-*)."""
    if t.stride() == torch.empty(t.shape, device="meta").stride():
        return t
    return t.clone(memory_format=torch.contiguous_format)


def _flashinfer_pages(block_table, seq_lens, page):
    """FlashInfer's page-table form of ours: (kv_indptr, kv_indices, last_page_len), int32
    on the device; each sequence's first ceil(len / P) table entries, in order (the rest
    of a row is never read)."""
    _, used = _pages_used(block_table, seq_lens, page)
    n_pages = used.sum(1)
    indptr = torch.zeros(len(seq_lens) + 1, dtype=torch.int32, device=block_table.device)
    indptr[1:] = torch.cumsum(n_pages, 0).to(torch.int32)
    last = (seq_lens.long() - (n_pages - 1).clamp(min=0) * page).to(torch.int32)
    return indptr, block_table[used].to(torch.int32), last


def _flashinfer_prepare(q, k_cache, v_cache, block_table, seq_lens, sm_scale, window, softcap,
                        workspaces: dict):
    """(q, (k, v), d, the page-table arguments, the plan's keywords, a workspace):
    q and the caches padded to a built head dim and made row-major (the layout its
    wrappers are documented for). workspaces: one 128 MB buffer per device, made on first
    use and reused by every call."""
    d = q.shape[-1]
    to = next((x for x in _FLASHINFER_DIMS if x >= d), None)
    if to is None:
        raise ValueError(f"FlashInfer takes head dims up to {_FLASHINFER_DIMS[-1]}, got {d}")
    q, k_cache, v_cache = (_row_major(torch.nn.functional.pad(t, (0, to - d)))
                           for t in (q, k_cache, v_cache))
    page, hkv = k_cache.shape[1], k_cache.shape[2]
    if q.device not in workspaces:
        workspaces[q.device] = torch.empty(128 * 1024 * 1024, dtype=torch.uint8,
                                           device=q.device)
    # the window's right side bounds nothing here: decode's query is the last token
    # and the declared prefill is causal
    plan = dict(sm_scale=1.0 / math.sqrt(d) if sm_scale is None else sm_scale,
                q_data_type=q.dtype, kv_data_type=k_cache.dtype,
                window_left=window[0] if window is not None else -1,
                logits_soft_cap=softcap)
    return (q, (k_cache, v_cache), d, (*_flashinfer_pages(block_table, seq_lens, page),),
            (q.shape[1], hkv, to, page), plan, workspaces[q.device])


def flashinfer() -> Adapter:
    """FlashInfer's paged wrappers (``BatchDecodeWithPagedKVCacheWrapper`` for paged decode,
    ``BatchPrefillWithPagedKVCacheWrapper`` for paged prefill), NHD caches (ours:
    [pages, P, Hkv, D]), planned per call. Its LSE is in base 2 (its kernels keep scores
    in log2 units): returned times ln 2. Head dims other than 64 / 128 / 256 are padded
    with zero columns to the next one (scores unchanged, sm_scale from the real D).
    Written against flashinfer 0.2.5 (JIT: every kernel variant compiles with nvcc on
    first use)."""

    workspaces = {}  # one 128 MB buffer per device, reused by every call

    def prepare(*args):
        return _flashinfer_prepare(*args, workspaces)

    def paged_decode(q, k_cache, v_cache, block_table, seq_lens, *, sm_scale=None,
                     window=None, softcap=None, return_lse=False):
        import flashinfer

        q3, kv, d, pages, dims, plan, ws = prepare(
            q.reshape(q.shape[0], q.shape[1], q.shape[-1]), k_cache, v_cache, block_table,
            seq_lens, sm_scale, window, softcap)
        wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(ws, "NHD")
        wrapper.plan(*pages, *dims, **plan)
        got = wrapper.run(q3, kv, return_lse=return_lse)
        out, lse = got if return_lse else (got, None)
        out = out[..., :d].reshape(q.shape)
        return (out, lse.float() * math.log(2)) if return_lse else out

    def paged_prefill(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, *,
                      max_seqlen_q, causal=True, sm_scale=None, window=None, softcap=None,
                      return_lse=False):
        import flashinfer

        t = int(cu_seqlens_q[-1])  # rows past it belong to no sequence: left as they are
        q_rows, kv, d, pages, dims, plan, ws = prepare(q[:t], k_cache, v_cache, block_table,
                                                       seq_lens, sm_scale, window, softcap)
        wrapper = flashinfer.BatchPrefillWithPagedKVCacheWrapper(ws, "NHD")
        wrapper.plan(cu_seqlens_q.to(torch.int32), *pages, *dims, causal=causal, **plan)
        got = wrapper.run(q_rows, kv, return_lse=return_lse)
        rows, lse_rows = got if return_lse else (got, None)
        out = q.new_zeros(q.shape)
        out[:t] = rows[..., :d]
        if not return_lse:
            return out
        lse = torch.full((q.shape[1], q.shape[0]), float("-inf"), device=q.device)
        lse[:, :t] = (lse_rows.float() * math.log(2)).transpose(0, 1)
        return out, lse

    notes = {"out": _NO_OUT, "sinks": "FlashInfer 0.2.5 has no sink term",
             "alibi_slopes": "FlashInfer's ALiBi mode uses its own slopes (no slopes argument)",
             "non_causal": "declared causal only: FlashInfer's window has a left side only"}
    common = dict(dtypes=("float16", "bfloat16"), head_dims=(16, 256), out=False,
                  non_causal=False, variants=("window", "softcap"))
    # Its CUDA-core decode is built for GQA groups 1, 2, 3, 4 and 8 only (its
    # DISPATCH_GQA_GROUP_SIZE; another group is a C++ error there). On the H100 image
    # (FlashInfer 0.2.5 JIT-built by nvcc 13.0) group 5 killed the process with SIGSEGV
    # instead of raising (benchmarks/results/nvidia-h100-80gb-hbm3-2026-12-07-flashinfer-
    # crash-repro.md: every other cell there, decode and prefill, ran and matched). That
    # explains session 22's decode crashes (in plan); its prefill crashes (in paged_run)
    # are not explained by those cells.
    supports = {"paged_decode": Supports(**common, group_sizes=(1, 2, 3, 4, 8), notes=notes),
                "paged_prefill": Supports(**common, notes=notes)}
    return Adapter("flashinfer", {"paged_decode": paged_decode,
                                  "paged_prefill": paged_prefill}, supports,
                   unavailable=_flashinfer_unavailable)


SHIPPED = {"triton": ours, "sdpa-math": sdpa_math, "sdpa-efficient": sdpa_efficient,
           "sdpa-flash": sdpa_flash, "sdpa-cudnn": sdpa_cudnn, "flex": flex,
           "flashinfer": flashinfer}
