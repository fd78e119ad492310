"""Mutation score: plant one known bug at a time in the kernels and check that the suite
catches it.

    python -m tests.mutants [--jobs J] [--only NAME[,NAME]] [--list] [--keep]
                            [--no-baseline] [--timeout S] [--shrink] [--gpu]

Each mutant is one exact textual replacement in one source file. The runner copies the
repository (the files git tracks, as they are in the working tree, plus tests/corpus/)
into a temporary directory, applies the replacement there (the original snippet must
occur exactly once, else the mutant is reported "stale": the list has drifted from the
source), and runs the mutant family's test files in that copy on the CPU:

    python -m pytest -x -q -p no:cacheprovider <test files>
    with TRITON_INTERPRET=1, HYPOTHESIS_PROFILE=ci and a fresh Hypothesis database

The ci profile is kept as it is (examples, fixed seed) except for Hypothesis's shrink
phase, which a small plugin written into the copy turns off: a kill needs one failing
example, not the smallest, and shrinking under the interpreter can take minutes
(--shrink keeps it, for a minimal case in the copy's tests/corpus/ with --keep).

Outcomes: "killed" (pytest exit code 1 with a failing test whose error is an assertion,
a `pytest.raises` that did not raise, or a Hypothesis failure group), "survived" (exit
code 0), "error" (anything else: collection errors, crashes, timeouts, or a failure
that is not an assertion such as a Triton compile error; a mutant must produce wrong
numbers or accept bad input, not break the build). Mutants that only a GPU can expose
(int32 offset overflow, tf32) are listed with the reason and skipped on the CPU; with
--gpu (on a CUDA machine) only those run, against the GPU tests named with them.

Before the mutants, the unmutated copy runs the same test files ("baseline"): a suite
that already fails would "kill" every mutant. The run prints one row per mutant as it
finishes, a summary, and last the line `mutants: K killed of N` (N counts the mutants
run, stale ones included). Exit code 0 only when every mutant run was killed and the
baseline passed.

Not part of the default pytest run (it takes minutes: see README.md, "Mutation score").
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Test files per kernel family (-x stops at the first failure; survivors run them all).
TESTS = {
    "prefill": ("tests/test_prefill.py",),
    "decode": ("tests/test_decode.py",),
    "paged": ("tests/test_decode.py::test_paged_decode",),
    "sparse": ("tests/test_sparse.py",),
    # _jit.py helpers used by every kernel: the fastest file that runs them all.
    "shared": ("tests/test_prefill.py",),
    "combine": ("tests/test_decode.py",),
    "validation": ("tests/test_errors.py",),
    "paged_prefill": ("tests/test_paged_prefill.py",),
    # fp8 KV caches: every decode family and paged_prefill on all-fp8 cases
    "fp8": ("tests/test_fp8.py",),
    # window / softcap / sinks / ALiBi: every function on cases that all have some
    "variants": ("tests/test_variants.py",),
}

GPU_INT64 = "tests/test_gpu.py::"


@dataclass(frozen=True)
class Mutant:
    name: str
    family: str  # a key of TESTS
    path: str  # file, relative to the repository root
    original: str  # exact snippet; must occur exactly once in the file
    replacement: str
    description: str
    gpu_only: str = ""  # why only a GPU run can kill it (then it is skipped on the CPU)
    gpu_tests: tuple = ()  # the GPU tests that kill it (with --gpu)

    @property
    def tests(self) -> tuple:
        return self.gpu_tests if self.gpu_only else TESTS[self.family]


PRE = "kernels/prefill.py"
DEC = "kernels/decode.py"
JIT = "kernels/_jit.py"
VAL = "kernels/_validate.py"
SM90 = "kernels/prefill_sm90.py"
PP = "kernels/paged_prefill.py"
MODS = "kernels/mods.py"
# Gluon runs only on a Hopper GPU, never under the interpreter: its mutants are GPU-only.
_GLUON = dict(gpu_only="Gluon runs only on a Hopper GPU, never under the interpreter",
              gpu_tests=("tests/test_gpu.py::test_prefill_sm90_gluon",))

_GLUON_WINDOW = dict(gpu_only=_GLUON["gpu_only"],
                     gpu_tests=("tests/test_gpu.py::test_prefill_sm90_gluon_dispatch",
                                "tests/test_gpu.py::test_prefill_sm90_properties"))

# h % Hkv instead of h // group: same as the right head for MHA (group 1) or one KV head.
_MOD_HKV = "(first_head % (num_head_programs * heads_per_program // group_size))"

MUTANTS: tuple[Mutant, ...] = (
    # ---------------------------------------------------------------- prefill
    Mutant("causal_off_by_one", "prefill", PRE,
           "ok = ok & (offs_n[None, :] <= offs_m[:, None] + causal_shift)",
           "ok = ok & (offs_n[None, :] < offs_m[:, None] + causal_shift)",
           "causal mask excludes the diagonal key (<= becomes <)"),
    Mutant("causal_top_left", "prefill", PRE,
           "    causal_shift = kv_len - q_len\n",
           "    causal_shift = (kv_len - q_len) * 0\n",
           "causal mask aligned top-left (torch SDPA) instead of bottom-right"),
    Mutant("prefill_gqa_h_mod_hkv", "prefill", PRE,
           "off_kvh = off_h // group_size",
           "off_kvh = off_h % (num_q_heads // group_size)",
           "query head h reads KV head h % Hkv instead of h // group"),
    Mutant("prefill_last_partial_tile_dropped", "prefill", PRE,
           "    hi = tl.maximum(hi, 0)\n",
           "    hi = tl.maximum(tl.minimum(hi, kv_len // BLOCK_N * BLOCK_N), 0)\n",
           "key range rounded down to whole tiles: the last partial key tile is dropped"),
    Mutant("prefill_pad_rows_only_with_lse", "prefill", PRE,
           "    out = tl.where(row_ok[:, None], out, 0.0)\n",
           "    if write_lse != 0:\n        out = tl.where(row_ok[:, None], out, 0.0)\n",
           "query rows past a sequence's length are zeroed only when the LSE is returned "
           "(the public default, return_lse=False, leaves them as computed)"),
    Mutant("prefill_order_pair_digit", "prefill", PRE,
           "pid_bh = first_bh + r % chunk_bh",
           "pid_bh = first_bh + r // num_m_tiles",
           "program order: the pair taken from the wrong digit of the program id (some "
           "tiles computed twice, others never)"),
    Mutant("prefill_order_rows_not_reversed", "prefill", PRE,
           "    level = r // chunk_bh\n",
           "    level = r % num_m_tiles\n",
           "program order: query tile from the wrong digit of the program id"),
    Mutant("prefill_order_from_end_off_by_one", "prefill", PRE,
           "tile = tl.where(level < n_valid, n_valid - 1 - level, level)",
           "tile = tl.where(level < n_valid, n_valid - level, level)",
           "program order from each end: valid levels shifted by one tile (the first "
           "tile never computed, one past the length taken twice)"),
    Mutant("prefill_varlen_grid_not_cut", "prefill", VAL,
           "        max_q = min(max_q, longest)  # known here",
           "        max_q = max_q  # known here",
           "prefill_varlen with validate=True keeps a loose max_seqlen_q's grid (programs "
           "past the longest length), though the host has read the lengths"),
    Mutant("prefill_kv_lens_ignored", "prefill", PRE,
           "kv_len = tl.minimum(tl.maximum(tl.load(kv_lens_ptr + off_b), 0), n_k)\n",
           "kv_len = n_k\n",
           "padded var-len: kv_seq_lens ignored, keys run to the padded length Nk"),
    Mutant("prefill_padding_rows_not_zeroed", "prefill", PRE,
           "out = tl.where(row_ok[:, None], out, 0.0)",
           "out = out",
           "padding query rows (>= seq_lens) are stored as computed, not as 0"),
    Mutant("prefill_lse_padding_rows", "prefill", PRE,
           'lse = tl.where(row_ok, lse, float("-inf"))',
           "lse = lse",
           "query row mask dropped on the LSE: padding rows get a finite LSE"),
    Mutant("prefill_unmasked_tile_crosses_diagonal", "prefill", PRE,
           "mask_from = tl.maximum(start_m + causal_shift + 1, 0) // BLOCK_N * BLOCK_N",
           "mask_from = tl.cdiv(tl.maximum(start_m + causal_shift + 1, 0), BLOCK_N) * BLOCK_N",
           "mask_from rounded up: a tile that crosses the diagonal runs without the mask"),
    Mutant("prefill_first_masked_tile_skipped", "prefill", PRE,
           "            need_mask = start_n >= mask_from\n",
           "            need_mask = start_n > mask_from\n",
           "the first tile that needs the score mask runs without it"),
    Mutant("prefill_v_padding_read", "prefill", PRE,
           "v = tl.load(v_ptrs, mask=n_ok[:, None] & d_ok[None, :], other=0.0)",
           "v = tl.load(v_ptrs, mask=d_ok[None, :], other=0.0)",
           "masked tile loads V rows past kv_len (0 * NaN when padding holds NaN)"),
    Mutant("prefill_k_head_dim_mask_dropped", "prefill", PRE,
           "kt = tl.load(k_ptrs, mask=d_ok[:, None], other=0.0)",
           "kt = tl.load(k_ptrs)",
           "non-power-of-two D: unmasked tiles load K columns past D (the next row's)"),
    Mutant("prefill_sm_scale_twice", "prefill", PRE,
           "qk_scale=sm_scale * LOG2E_HOST",
           "qk_scale=sm_scale * sm_scale * LOG2E_HOST",
           "sm_scale applied twice"),
    Mutant("prefill_q_rows_with_k_stride", "prefill", PRE,
           "q = tl.load(q_base + rows[:, None] * stride_q_seq + offs_d[None, :],",
           "q = tl.load(q_base + rows[:, None] * stride_k_seq + offs_d[None, :],",
           "stride swapped: q rows addressed with k's sequence stride"),
    Mutant("prefill_k_rows_with_v_stride", "prefill", PRE,
           "k_ptrs = k_tile + offs_n0[None, :] * stride_k_seq",
           "k_ptrs = k_tile + offs_n0[None, :] * stride_v_seq",
           "stride swapped: k rows addressed with v's sequence stride"),
    Mutant("prefill_head_dim_tile_rounded_down", "prefill", PRE,
           "head_dim_pad = max(16, triton.next_power_of_2(head_dim))",
           "head_dim_pad = max(16, triton.next_power_of_2(head_dim + 1) // 2)",
           "non-power-of-two D: head-dim tile rounded down, columns past it never done"),
    Mutant("prefill_aligned_flag_always_set", "prefill", PRE,
           "is_aligned = all(st % 16 == 0 for st in strides.values())",
           "is_aligned = True",
           "strides marked multiples of 16 when they are not (rounded down in the kernel)"),
    Mutant("prefill_tma_for_masked_tiles", "prefill", PRE,
           "if USE_TMA and not BOUNDED:",
           "if USE_TMA:",
           "TMA boxes for the tile crossing the valid length: keys past it are read"),
    Mutant("prefill_padded_last_tile_not_moved", "prefill", PRE,
           "first_n = tl.minimum(start_n, kv_len - BLOCK_N)",
           "first_n = start_n",
           "padded var-len through TMA: the tile crossing kv_seq_lens is read in place, "
           "keys past the length (padding) included"),
    Mutant("prefill_moved_tile_keys_twice", "prefill", PRE,
           "ok = ok & (offs_n[None, :] >= start_n)",
           "ok = ok",
           "padded var-len through TMA: the moved-back last tile's keys before start_n, "
           "already seen by the previous tile, are counted again"),
    Mutant("prefill_tma_q_box_without_sequence_start", "prefill", PRE,
           "q_desc.load([desc_b, off_h, q_start + start_m, 0])",
           "q_desc.load([desc_b, off_h, start_m, 0])",
           "prefill_varlen through TMA: every sequence reads the first sequence's queries"),
    Mutant("varlen_keys_at_query_offsets", "prefill", PRE,
           "k_start = tl.load(kv_lens_ptr + off_b)",
           "k_start = tl.load(q_lens_ptr + off_b)",
           "prefill_varlen: keys located with cu_seqlens_q instead of cu_seqlens_k"),
    # ---------------------------------------------------------------- decode (dense)
    Mutant("decode_gqa_h_mod_hkv", "decode", DEC,
           "off_kvh = first_head // group_size",
           f"off_kvh = {_MOD_HKV}",
           "query head h reads KV head h % Hkv instead of h // group"),
    Mutant("decode_seq_lens_ignored", "decode", DEC,
           "    if has_lens != 0:  # clamped: with validate=False a bad length must not read "
           "past capacity",
           "    if has_lens != 0 and IS_PAGED:  # (mutant)",
           "dense decode: seq_lens ignored, keys past the length are read"),
    Mutant("decode_last_partial_tile_dropped", "decode", DEC,
           "per_split = tl.cdiv(tl.cdiv(list_len - list_start, num_splits), BLOCK_N) * BLOCK_N",
           "per_split = tl.cdiv(list_len - list_start, num_splits) // BLOCK_N * BLOCK_N",
           "split size rounded down to whole tiles: the last partial key tile is dropped"),
    Mutant("decode_splits_overlap", "decode", DEC,
           "hi = tl.minimum(lo + per_split, list_len)",
           "hi = tl.minimum(lo + per_split + BLOCK_N, list_len)",
           "split boundaries overlap by a tile: keys counted twice"),
    Mutant("decode_head_dim_tile_rounded_down", "decode", DEC,
           "head_dim_pad = max(16, triton.next_power_of_2(head_dim))",
           "head_dim_pad = max(16, triton.next_power_of_2(head_dim + 1) // 2)",
           "non-power-of-two D: head-dim tile rounded down, columns past it never done"),
    Mutant("decode_kv_head_dim_mask_dropped", "decode", DEC,
           "kv_mask = ok[:, None] & d_ok[None, :]",
           "kv_mask = ok[:, None]",
           "non-power-of-two D: K/V loads read the columns past D (the next row's, or a "
           "gap); a zero-padded q hides K's unless they hold NaN"),
    Mutant("decode_aligned_flag_always_set", "decode", DEC,
           "ALIGNED=aligned_strides",
           "ALIGNED=True",
           "strides marked multiples of 16 when they are not (rounded down in the kernel)"),
    Mutant("combine_aligned_flag_always_set", "combine", DEC,
           'EVEN_D=p.consts["EVEN_D"], ALIGNED=p.consts["ALIGNED"], PDL=p.pdl,',
           'EVEN_D=p.consts["EVEN_D"], ALIGNED=True, PDL=p.pdl,',
           "split combine: output strides marked multiples of 16 when they are not (the "
           "merge writes rows at strides rounded down)"),
    Mutant("combine_split_lanes_unmasked", "combine", DEC,
           "s_ok = tl.where(live, offs_s < num_splits, False)",
           "s_ok = tl.where(live, offs_s < SPLITS_PAD, False)",
           "split combine: reads every lane of its split tile (at least 16), the partials "
           "of the next rows past num_splits included"),
    Mutant("combine_unweighted_mean", "combine", DEC,
           "w = tl.exp(lse_s - m_safe)  # 0 for empty splits",
           'w = tl.where(lse_s == float("-inf"), 0.0, 1.0)',
           "split combine: plain mean of the non-empty splits, not LSE-weighted"),
    Mutant("combine_empty_row_nan", "combine", DEC,
           'm_safe = tl.where(m == float("-inf"), 0.0, m)',
           "m_safe = m",
           "split combine: no guard for a row whose splits are all empty (-inf - -inf)"),
    # ---------------------------------------------------------------- paged
    Mutant("paged_one_page_per_tile", "paged", JIT,
           "page = tl.load(table_row_ptr + page_idx, mask=mask, other=0)",
           "page = tl.load(table_row_ptr + tl.min(page_idx, 0) + 0 * page_idx, mask=mask, "
           "other=0)",
           "page lookup assumes a key tile lies in one page (the page of its first token)"),
    Mutant("paged_last_partial_page_dropped", "paged", DEC,
           "seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx)",
           "seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx) "
           "// page_size * page_size",
           "sequence length rounded down to whole pages: the last partial page is dropped"),
    Mutant("paged_last_page_read_past_length", "paged", DEC,
           "seq_len = tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), n_ctx)",
           "seq_len = tl.cdiv(tl.minimum(tl.maximum(tl.load(seq_lens_ptr + off_b), 0), "
           "n_ctx), page_size) * page_size",
           "sequence length rounded up to whole pages: stale slots of the last page read"),
    Mutant("paged_gqa_h_mod_hkv", "paged", DEC,
           "        k_base = k_ptr + off_kvh.to(tl.int64) * stride_k_head\n"
           "        v_base = v_ptr + off_kvh.to(tl.int64) * stride_v_head\n",
           f"        k_base = k_ptr + {_MOD_HKV}.to(tl.int64) * stride_k_head\n"
           f"        v_base = v_ptr + {_MOD_HKV}.to(tl.int64) * stride_v_head\n",
           "paged cache: query head h reads KV head h % Hkv instead of h // group"),
    Mutant("paged_table_row_from_shape", "paged", DEC,
           "table_row = block_table_ptr + off_b.to(tl.int64) * stride_table_batch",
           "table_row = block_table_ptr + off_b.to(tl.int64) * (n_ctx // page_size)",
           "table row b at b * max_pages (the shape), not b * its stride: a column slice "
           "of a wider table (DecodeCase.table_gap) is read from the wrong entries"),
    # ---------------------------------------------------------------- sparse
    Mutant("sparse_minus_one_as_token_0", "sparse", DEC,
           "        t = tl.load(idx_row + pos.to(tl.int64) * stride_idx_k, mask=pos_ok, "
           "other=-1)\n"
           "        t_ok = pos_ok & (t >= t_min) & (t < seq_len)\n",
           "        t = tl.load(idx_row + pos.to(tl.int64) * stride_idx_k, mask=pos_ok, "
           "other=-1)\n"
           "        t = tl.maximum(t, 0)\n"
           "        t_ok = pos_ok & (t < seq_len)\n",
           "-1 (unused slot) clamped to 0 and attended as token 0"),
    Mutant("sparse_index_past_length_read", "sparse", DEC,
           "t_ok = pos_ok & (t >= t_min) & (t < seq_len)",
           "t_ok = pos_ok & (t >= t_min)",
           "an index at or past seq_len is attended (validate=False lets it through; "
           "sparse_decode promises it is skipped, never read)"),
    Mutant("sparse_kv_head_row_for_every_query_head", "sparse", DEC,
           "+ off_hp.to(tl.int64) * stride_idx_head",
           "+ off_kvh.to(tl.int64) * stride_idx_head",
           "per-query-head index rows: every query head of a group reads its KV head's row"),
    Mutant("sparse_empty_tile_unguarded", "sparse", DEC,
           "MAY_BE_EMPTY=True, FP32=FP32)",
           "MAY_BE_EMPTY=False, FP32=FP32)",
           "decode tiles treated as never empty: a tile of only -1 slots gives NaN"),
    Mutant("sparse_list_clipped_to_seq_len", "sparse", DEC,
           "list_len = n_list if HAS_INDICES else seq_len",
           "list_len = tl.minimum(n_list, seq_len) if HAS_INDICES else seq_len",
           "index list walked only up to min(K, seq_len) entries"),
    Mutant("sparse_index_rows_packed", "sparse", DEC,
           "+ off_hp.to(tl.int64) * stride_idx_head",
           "+ off_hp.to(tl.int64) * n_list",
           "index row h at h * K (the shape), not h * its stride: rows with a gap "
           "(DecodeCase.index_gap, index_step, index_transposed) read the wrong slots"),
    Mutant("sparse_index_batch_from_heads", "sparse", DEC,
           "idx_row = indices_ptr + off_b.to(tl.int64) * stride_idx_batch",
           "idx_row = indices_ptr + off_b.to(tl.int64) * num_head_programs * stride_idx_head",
           "index batch offset b * H_idx * head stride: right for any row gap, wrong for "
           "[H_idx, B, K] storage (DecodeCase.index_transposed)"),
    Mutant("sparse_index_slots_unit_stride", "sparse", DEC,
           "t = tl.load(idx_row + pos.to(tl.int64) * stride_idx_k, mask=pos_ok, other=-1)",
           "t = tl.load(idx_row + pos.to(tl.int64), mask=pos_ok, other=-1)",
           "index slots assumed contiguous: a strided last dim (DecodeCase.index_step, "
           "accepted by the validation) reads the gap slots"),
    # ---------------------------------------------------------------- shared helpers
    Mutant("softmax_max_not_subtracted", "shared", JIT,
           "m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)",
           'm_new = tl.where(tl.maximum(m_i, tl.max(s, 1) * qk_scale) == float("-inf"), '
           'float("-inf"), 0.0)',
           "online softmax without max subtraction (exact maths; overflows on large logits)"),
    Mutant("softmax_acc_not_rescaled", "shared", JIT,
           "acc = acc * alpha[:, None]",
           "acc = acc",
           "online softmax: rescale factor alpha not applied to the accumulator"),
    Mutant("softmax_sum_not_rescaled", "shared", JIT,
           "l_i = l_i * alpha + tl.sum(p, 1)",
           "l_i = l_i + tl.sum(p, 1)",
           "online softmax: rescale factor alpha not applied to the running sum"),
    # The -inf guard is the decode family's (prefill starts m at -FLT_MAX and needs
    # none); a sparse row whose first tile is all -1 slots reaches it.
    Mutant("softmax_masked_tile_nan", "sparse", JIT,
           'm_sub = tl.where(m_new == float("-inf"), 0.0, m_new)\n    else:',
           "m_sub = m_new\n    else:",
           "online softmax (decode): a fully masked tile before any key gives exp2(-inf - -inf)"),
    Mutant("finalize_empty_row_nan", "shared", JIT,
           "l_safe = tl.where(empty, 1.0, l_i)",
           "l_safe = l_i",
           "finalize: a row (or split) that saw no key divides 0 by 0"),
    Mutant("lse_in_log2", "shared", JIT,
           "(m_i + tl.log2(l_safe)) * LN2)",
           "(m_i + tl.log2(l_safe)))",
           "LSE returned in base 2 (the * ln 2 dropped)"),
    Mutant("acc_half_precision", "shared", JIT,
           "acc = mm(p.to(v.dtype), v, acc, FP32)",
           "acc = mm(p.to(v.dtype), v, acc, FP32).to(tl.float16).to(tl.float32)",
           "accumulator rounded to fp16 after every tile (fp32 accumulation lost)"),
    # ---------------------------------------------------------------- validation
    Mutant("negative_length_accepted", "validation", VAL,
           "if lo < 0:",
           "if lo < -1:",
           "a length of -1 passes the seq_lens check"),
    Mutant("index_equal_to_seq_len_accepted", "validation", VAL,
           "bad = (idx < -1) | (idx >= limit)",
           "bad = (idx < -1) | (idx > limit)",
           "sparse check: an index equal to seq_len is accepted (>= becomes >)"),
    Mutant("table_entry_upper_bound_off_by_one", "validation", VAL,
           "(block_table >= num_pages)",
           "(block_table > num_pages)",
           "paged check: a used table entry equal to num_pages is accepted"),
    Mutant("table_last_partial_page_unchecked", "validation", VAL,
           "< ((seq_lens.long() + page_size - 1) // page_size)[:, None]",
           "< (seq_lens.long() // page_size)[:, None]",
           "paged check: the table entry of a last partial page is not range-checked"),
    # ---------------------------------------------------------------- GPU only
    Mutant("page_offset_int32", "paged", JIT,
           "return page.to(tl.int64), (tu - page_idx * pu).to(tl.int64)",
           "return page, (tu - page_idx * pu).to(tl.int64)",
           "page id * page stride computed in int32",
           gpu_only="overflows only past 2**31 cache elements; CPU caches are tiny",
           gpu_tests=(GPU_INT64 + "test_paged_pages_past_2_32_elements",)),
    Mutant("decode_out_rows_packed", "decode", DEC,
           "+ offs_h[:, None].to(tl.int64) * stride_o_head + offs_d[None, :],",
           "+ offs_h[:, None].to(tl.int64) * head_dim + offs_d[None, :],",
           "output head h stored at h * D (the shape), not h * out's head stride: an out= "
           "laid out like a strided q (DecodeCase.out_like_q) is written in the wrong places"),
    Mutant("decode_batch_offset_int32", "decode", DEC,
           "k_base = k_ptr + off_b.to(tl.int64) * stride_k_batch",
           "k_base = k_ptr + off_b * stride_k_batch",
           "dense decode: batch index * batch stride computed in int32",
           gpu_only="overflows only past 2**31 cache elements; CPU caches are tiny",
           gpu_tests=(GPU_INT64 + "test_dense_batch_offsets_past_2_31_elements",)),
    Mutant("varlen_key_offset_int32", "prefill", PRE,
           "+ k_start.to(tl.int64) * stride_k_seq",
           "+ k_start * stride_k_seq",
           "prefill_varlen: first key row * row stride computed in int32",
           gpu_only="overflows only past 2**31 packed elements; CPU tensors are tiny",
           gpu_tests=(GPU_INT64 + "test_varlen_rows_past_2_31_elements",)),
    Mutant("fp32_dot_in_tf32", "shared", JIT,
           'return tl.dot(a, b, acc, input_precision="ieee")',
           'return tl.dot(a, b, acc, input_precision="tf32")',
           "fp32 inputs multiplied in tf32",
           gpu_only="the interpreter's tl.dot is numpy matmul and ignores input_precision",
           gpu_tests=("tests/test_prefill.py::test_prefill[accuracy]",)),
    # ---------------------------------------------------------------- paged prefill
    Mutant("pp_causal_off_by_one", "paged_prefill", PP,
           "ok = ok & (offs_n[None, :] <= q_tok[:, None] + causal_shift)",
           "ok = ok & (offs_n[None, :] < q_tok[:, None] + causal_shift)",
           "paged prefill: the causal mask excludes the diagonal key"),
    Mutant("pp_causal_top_left", "paged_prefill", PP,
           "    causal_shift = seq_len - q_len\n",
           "    causal_shift = (seq_len - q_len) * 0\n",
           "paged prefill: new tokens aligned to the context's start, not its end"),
    Mutant("pp_search_first_tile", "paged_prefill", PP,
           "first = tl.load(cu_q_ptr + mid) // q_per_tile + mid",
           "first = tl.load(cu_q_ptr + mid) // q_per_tile",
           "paged prefill: the binary search's first tile of a sequence drops the + b "
           "(programs land in the wrong sequence)"),
    Mutant("pp_lookahead_masked_at_hi", "paged_prefill", PP,
           "page_lookup(table_row, nxt, nxt < seq_len, page_size)",
           "page_lookup(table_row, nxt, (nxt < seq_len) & (nxt < hi), page_size)",
           "the lookahead gives keys past the range's end page 0, though the next tile "
           "loads them (the bug of 1b75b55, found on the GPU in session 13: NaN from an "
           "unowned page 0)"),
    Mutant("pp_lookahead_same_tile", "paged_prefill", PP,
           "        nxt = offs_n + BLOCK_N\n",
           "        nxt = offs_n + BLOCK_N * 0\n",
           "paged prefill: the page lookup for the next tile repeats this tile's pages"),
    Mutant("pp_mask_from_last_token", "paged_prefill", PP,
           "mask_from = tl.maximum(t0 + causal_shift + 1, 0) // BLOCK_N * BLOCK_N",
           "mask_from = tl.maximum(t0 + q_per_tile + causal_shift, 0) // BLOCK_N * BLOCK_N",
           "paged prefill: the diagonal mask starts from the tile's last token, so earlier "
           "rows see keys past their diagonal"),
    Mutant("pp_heads_of_next_block", "paged_prefill", PP,
           "first_head = off_kvh * group_size + (head_prog % head_blocks) * heads_per_program",
           "first_head = off_kvh * group_size",
           "paged prefill: every head block of a KV head computes its first block's heads"),
    Mutant("pp_split_not_whole_tiles", "paged_prefill", PP,
           "per_split = tl.cdiv(tl.cdiv(hi - lo, num_splits), BLOCK_N) * BLOCK_N",
           "per_split = tl.cdiv(hi - lo, num_splits)",
           "paged prefill: split edges inside a tile (a tile read by two splits, twice)"),
    Mutant("combine_rows_end_ignored", "paged_prefill", DEC,
           "        live = off_b < tl.load(rows_end_ptr)\n",
           "        live = off_b >= 0\n",
           "split-KV merge writes rows past cu_seqlens_q[-1] (they belong to no sequence)"),
    Mutant("pp_q_len_over_seq_len_accepted", "validation", VAL,
           "        over = (q_lens > seq_lens.cpu()).nonzero()",
           "        over = (q_lens > seq_lens.cpu() + 1).nonzero()",
           "paged prefill: a sequence with one more new token than its context is accepted"),
    # ---------------------------------------------------------------- prefill, Gluon (sm_90)
    Mutant("sm90_causal_off_by_one", "prefill", SM90,
           "        keep = keys <= rows\n",
           "        keep = keys < rows\n",
           "Gluon prefill: the causal mask excludes the diagonal key", **_GLUON),
    Mutant("sm90_second_half_rows", "prefill", SM90,
           "    q_row = q_row + HALF_INDEX * BLOCK_M\n",
           "    q_row = q_row + 0 * BLOCK_M\n",
           "Gluon prefill: the second consumer warpgroup writes over the first one's rows",
           **_GLUON),
    Mutant("sm90_lse_shifted", "prefill", SM90,
           "(m_i + gl.log2(l_i)) * LN2)",
           "(m_i + gl.log2(l_i) + 0.01) * LN2)",
           "Gluon prefill: the LSE 0.007 nats high (inside the fp16 rule's bound at these "
           "logits; the fp32 rule for the LSE catches it)", **_GLUON),
    # ---------------------------------------------------------------- fp8 KV caches
    Mutant("fp8_k_scale_dropped", "fp8", DEC,
           "    qk_scale = qk_scale * k_sc\n",
           "    qk_scale = qk_scale * 1.0\n",
           "decode: the scores ignore k_scale (stored K taken as real K)"),
    Mutant("fp8_v_scale_dropped", "fp8", DEC,
           "        out = out * kv_scale(v_scale_ptr, off_kvh, stride_v_scale, HAS_SCALES)\n"
           "    if num_splits == 1:",
           "        out = out * 1.0\n"
           "    if num_splits == 1:",
           "decode: the output ignores v_scale"),
    Mutant("fp8_scale_of_head_0", "fp8", DEC,
           "k_sc = kv_scale(k_scale_ptr, off_kvh, stride_k_scale, HAS_SCALES)",
           "k_sc = kv_scale(k_scale_ptr, 0 * off_kvh, stride_k_scale, HAS_SCALES)",
           "decode: every KV head dequantised with head 0's k_scale (per-head scales)"),
    Mutant("fp8_e5m2_subnormals_flushed", "fp8", JIT,
           "mag = tl.where(e == 0, m * 0.0000152587890625,",
           "mag = tl.where(e == 0, m * 0.0,",
           "e5m2 subnormals decoded as 0 (the interpreter's own conversion did this; the "
           "hardware does not)"),
    Mutant("fp8_e4m3_exponent_bias", "fp8", JIT,
           "(8.0 + m) * tl.exp2((e - 10).to(tl.float32)))",
           "(8.0 + m) * tl.exp2((e - 11).to(tl.float32)))",
           "e4m3fn normals decoded at half their value (exponent bias 8 for 7)"),
    Mutant("paged_prefill_fp8_v_scale_dropped", "fp8", PP,
           "            out = out * kv_scale(v_scale_ptr, off_kvh, stride_v_scale, HAS_SCALES)",
           "            out = out * 1.0",
           "paged_prefill: the output ignores v_scale"),
    Mutant("paged_prefill_fp8_k_scale_dropped", "fp8", PP,
           "        qk_scale = qk_scale * k_sc\n",
           "        qk_scale = qk_scale * 1.0\n",
           "paged_prefill: the scores ignore k_scale"),
    Mutant("fp8_scale_values_unchecked", "validation", VAL,
           "        if validate:\n            bad = ~(torch.isfinite(t) & (t > 0))",
           "        if False:\n            bad = ~(torch.isfinite(t) & (t > 0))",
           "validate=True lets a 0, negative, NaN or inf k_scale / v_scale through"),
    Mutant("fp8_scales_with_16_bit_caches", "validation", VAL,
           "    if k.dtype not in FP8_DTYPES:\n        raise ValueError(f\"k_scale and v_scale",
           "    if False:\n        raise ValueError(f\"k_scale and v_scale",
           "k_scale / v_scale accepted (and applied) with fp16 / bf16 / fp32 caches"),
    # ---------------------------------------------------------------- variants (mods.py)
    Mutant("window_decode_off_by_one", "variants", DEC,
           "t_min = tl.maximum(q_pos - win_left, 0)",
           "t_min = tl.maximum(q_pos - win_left + 1, 0)",
           "decode: the window holds left keys before the query, not left + 1"),
    Mutant("window_mask_off_by_one", "variants", JIT,
           "return (k_pos[None, :] >= q_pos[:, None] - win_left)",
           "return (k_pos[None, :] > q_pos[:, None] - win_left)",
           "the window mask (prefill, paged prefill) drops its leftmost key"),
    Mutant("softcap_on_raw_scores", "variants", MODS,
           "        return sm_scale / cap, cap / sm_scale\n",
           "        return 1.0 / cap, cap / sm_scale\n",
           "the soft-cap's tanh reads q.k, not q.k x sm_scale"),
    Mutant("tanh_taylor_branch_wide", "variants", JIT,
           "return tl.where(a < 0.25, small, tl.where(x < 0, -big, big))",
           "return tl.where(a < 1.0, small, tl.where(x < 0, -big, big))",
           "the fp32 tanh takes its Taylor branch up to |x| = 1, where the series cut at "
           "x^9 is off by ~1e-2 (a logit at a soft-cap of 50 off by ~0.4)"),
    Mutant("softcap_fast_tanh_for_fp32", "variants", MODS,
           "if dtype in (torch.float16, torch.bfloat16) and not interpreting() \\\n",
           "if not interpreting() \\\n",
           "fp32 inputs take tanh.approx.f32 (relative error 2^-11) too",
           gpu_only="the interpreter runs no PTX: it always takes the fp32 tanh",
           gpu_tests=("tests/test_variants.py",)),
    Mutant("sink_in_every_split", "variants", DEC,
           "add_sink(acc, m_i, l_i, tl.where(split == 0, sink, float(\"-inf\")))",
           "add_sink(acc, m_i, l_i, sink)",
           "decode: each split's partial counts the sink, so a split call counts it "
           "num_splits times"),
    Mutant("sink_missing_from_denominator", "variants", JIT,
           "    l_i = l_i * alpha + tl.exp2(s2 - m_sub)\n",
           "    l_i = l_i * alpha\n",
           "the sink rescales the running state but adds nothing to the denominator "
           "(out and LSE as without sinks)"),
    Mutant("alibi_sign", "variants", JIT,
           "s = s - (slopes * alibi_scale)[:, None] * dist",
           "s = s + (slopes * alibi_scale)[:, None] * dist",
           "ALiBi adds slope x distance instead of subtracting it"),
    Mutant("fp8_softcap_on_stored_scores", "variants", DEC,
           "        softcap_in = softcap_in * k_sc\n",
           "        softcap_in = softcap_in * 1.0\n",
           "decode, fp8: the soft-cap reads q.(stored K), not q.(real K) (k_scale left out)"),
    Mutant("head_vector_strided", "variants", MODS,
           "object.__setattr__(self, name, t.contiguous())",
           "object.__setattr__(self, name, t)",
           "a strided sinks / slopes view reaches the kernels, which read head h at ptr + h"),
    Mutant("sm90_sink_no_rescale", "prefill", SM90,
           "        acc = acc * gl.expand_dims(gl.convert_layout(alpha, row_o), 1)\n"
           "        m_i = m_new\n",
           "        m_i = m_new\n",
           "Gluon prefill: a sink above the row's max rescales the denominator but not acc",
           gpu_only=_GLUON["gpu_only"],
           gpu_tests=("tests/test_gpu.py::test_prefill_sm90_gluon_dispatch",)),
    Mutant("sm90_softcap_unscaled", "prefill", SM90,
           "        s = _tanh_approx(s * softcap_in)\n",
           "        s = _tanh_approx(s)\n",
           "Gluon prefill: the soft-cap's tanh reads q.k, not q.k x sm_scale / softcap",
           **_GLUON_WINDOW),
    Mutant("sm90_softcap_diagonal_only", "prefill", SM90,
           "    if SOFTCAP:\n        s = _tanh_approx",
           "    if SOFTCAP and MASKED:\n        s = _tanh_approx",
           "Gluon prefill: only the masked (diagonal and window-edge) tiles are soft-capped",
           **_GLUON_WINDOW),
    Mutant("sm90_softcap_scale_dropped", "prefill", SM90,
           "        qk_scale = qk_scale * softcap_out\n", "",
           "Gluon prefill: the soft-capped scores miss the cap's factor (softcap_out, folded "
           "into the softmax's scale): c x tanh(x) becomes tanh(x)", **_GLUON_WINDOW),
    Mutant("sm90_window_off_by_one", "prefill", SM90,
           "            keep = keep & (keys >= rows - win_left)\n",
           "            keep = keep & (keys > rows - win_left)\n",
           "Gluon prefill: the window's left edge key is dropped", **_GLUON_WINDOW),
    Mutant("sm90_window_first_tile_late", "prefill", SM90,
           "        first_tile = gl.maximum(start_m - win_left, 0) // BLOCK_N\n",
           "        first_tile = gl.maximum(start_m - win_left + 1, 0) // BLOCK_N\n",
           "Gluon prefill: when the first row's left edge is a tile's last key, that tile is "
           "skipped", **_GLUON_WINDOW),
    Mutant("sm90_window_second_edge_unmasked", "prefill", SM90,
           "softcap_in, softcap_out, dtype, p_layout, row_o, BLOCK_N, STAGES, True,\n"
           "                HAS_WINDOW, SOFTCAP)\n"
           "    for j in range(first,",
           "softcap_in, softcap_out, dtype, p_layout, row_o, BLOCK_N, STAGES, False,\n"
           "                HAS_WINDOW, SOFTCAP)\n"
           "    for j in range(first,",
           "Gluon prefill: the second key tile of a window takes no mask (keys left of some "
           "rows' windows are seen)", **_GLUON_WINDOW),
    Mutant("window_minus_2_accepted", "validation", VAL,
           "            if w < -1:\n",
           "            if w < -2:\n",
           "validation: a window side of -2 is taken (the kernels read it as a window)"),
    Mutant("sink_values_unchecked", "validation", VAL,
           "        bad = torch.isnan(t) | (t == float(\"inf\"))\n",
           "        bad = torch.isnan(t) & (t == float(\"inf\"))\n",
           "validation: NaN and +inf sinks / slopes pass"),
)


# ------------------------------------------------------------------------ running


@dataclass
class Result:
    name: str
    status: str  # killed | survived | error | stale | baseline-ok | baseline-failed
    detail: str
    seconds: float
    tmp: str = ""


_GUARD = '''\
"""Written by tests/mutants.py into each mutated copy: fail the run unless the kernels
under test are the copy's own (not an installed or editable checkout elsewhere)."""
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    # conftest.py has loaded the profile (ci here); keep all of it but the shrink phase
    # (and the explain phase that follows it) unless the mutation run asked for them.
    from hypothesis import Phase, settings

    if os.environ.get("MUTANTS_SHRINK") != "1":
        name = settings._current_profile + "-noshrink"
        settings.register_profile(name, settings.default, phases=[
            Phase.explicit, Phase.reuse, Phase.generate, Phase.target])
        settings.load_profile(name)


def pytest_collection_finish(session):
    import attention_kernel_triton.kernels.api as mod  # what the tests call

    where = Path(mod.__file__).resolve()
    if HERE not in where.parents:
        raise pytest.UsageError(f"kernels imported from {where}, not from {HERE}")
'''

FAILED = re.compile(r"^FAILED (\S+)(?: - (.*))?$", re.M)
ERRORED = re.compile(r"^ERROR (\S+)", re.M)
# A failure counts as a kill when the test asserted something (or pytest.raises saw no
# error, or Hypothesis reports several failures). Compile or name errors are "error".
KILL_REASONS = ("AssertionError", "Failed:", "ExceptionGroup", "BaseExceptionGroup",
                "hypothesis.errors.Flaky", "FlakyFailure")


def repo_files() -> list[Path]:
    """Files of the copy: git's tracked files (working-tree contents) + tests/corpus/.
    Without a usable git checkout (no git, or an index that lacks the sources, as in a
    bare copy of the tree), every file but caches and virtual environments."""
    needed = {Path("conftest.py")} | {Path(m.path) for m in MUTANTS}
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                             capture_output=True).stdout.decode()
        files = [Path(p) for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not needed <= set(files):
        skip = {".git", ".hypothesis", "__pycache__", ".pytest_cache", ".ruff_cache",
                ".venv", "build", ".whl", ".out"}
        files = [p.relative_to(ROOT) for p in ROOT.rglob("*")
                 if (p.is_file() or p.is_symlink())
                 and not skip.intersection(p.relative_to(ROOT).parts)]
    files += [p.relative_to(ROOT) for p in (ROOT / "tests" / "corpus").glob("*")
              if p.is_file()]
    # symbolic links stay links (attention_kernel_triton/kernels -> ../kernels: the copy's
    # package must reach the copy's mutated sources, not the original's)
    return sorted({f for f in files if (ROOT / f).is_file() or (ROOT / f).is_symlink()})


def make_copy(files: list[Path], prefix: str) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    for f in files:
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, tmp / f, follow_symlinks=False)
    (tmp / "_mutants_guard.py").write_text(_GUARD)
    return tmp


def snippet_count(m: Mutant, root: Path = ROOT) -> int:
    path = root / m.path
    return path.read_text().count(m.original) if path.is_file() else 0


def child_env(tmp: Path, gpu: bool, shrink: bool) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HYPOTHESIS_MAX_EXAMPLES", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
                        "TRITON_INTERPRET", "HYPOTHESIS_STORAGE_DIRECTORY")}
    path = [str(tmp)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(path), PYTHONDONTWRITEBYTECODE="1", COLUMNS="240",
               PYTHONUNBUFFERED="1", MUTANTS_SHRINK="1" if shrink else "0")
    if gpu:
        env["HYPOTHESIS_PROFILE"] = "dev"
    else:
        env.update(TRITON_INTERPRET="1", HYPOTHESIS_PROFILE="ci", CUDA_VISIBLE_DEVICES="")
    # The ci profile's database is .hypothesis/examples under the working directory, i.e.
    # inside the fresh copy; this keeps any other Hypothesis storage there as well.
    env["HYPOTHESIS_STORAGE_DIRECTORY"] = str(tmp / ".hypothesis")
    return env


def run_pytest(tmp: Path, tests: tuple, gpu: bool, shrink: bool,
               timeout: float) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
           "-p", "_mutants_guard", *tests]
    log = tmp / "mutant-pytest.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp, env=child_env(tmp, gpu, shrink), stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this run started
            proc.wait()
            rc = None
    text = log.read_text(errors="replace")
    return (-999 if rc is None else rc), text


def classify(rc: int, out: str) -> tuple[str, str]:
    failed = FAILED.search(out)
    if rc == 0:
        return "survived", "all tests passed"
    if rc == -999:
        return "error", "timed out"
    if rc < 0:  # killed by a signal: a crash (e.g. an out-of-bounds access), not a verdict
        frames = re.findall(r'(tests/test_\w+\.py)", line \d+ in (\w+)', out)
        where = f" in {frames[-1][0]}::{frames[-1][1]}" if frames else ""
        return "error", f"crashed with signal {-rc}{where}"
    if rc == 1 and failed:
        test, reason = failed.group(1), (failed.group(2) or "").strip()
        if reason.startswith(KILL_REASONS):
            return "killed", test
        return "error", f"{test} failed without an assertion: {reason[:120]}"
    errored = ERRORED.search(out)
    tail = " | ".join(line for line in out.strip().splitlines()[-3:])
    what = f"ERROR {errored.group(1)}" if errored else tail[-160:]
    return "error", f"pytest exit code {rc}: {what}"


def run_one(m: Mutant | None, files: list[Path], tests: tuple, opts) -> Result:
    start = time.monotonic()
    name = m.name if m else "(baseline)"
    tmp = make_copy(files, prefix=f"mutant-{name.strip('()')}-")
    try:
        if m is not None:
            path = tmp / m.path
            text = path.read_text() if path.is_file() else ""
            if text.count(m.original) != 1:
                return Result(name, "stale", f"snippet found {text.count(m.original)} times "
                              f"in {m.path}", time.monotonic() - start, str(tmp))
            path.write_text(text.replace(m.original, m.replacement))
        rc, out = run_pytest(tmp, tests, opts.gpu, opts.shrink, opts.timeout)
        if m is None:
            status = "baseline-ok" if rc == 0 else "baseline-failed"
            detail = "unmutated suite passes" if rc == 0 else classify(rc, out)[1]
        else:
            status, detail = classify(rc, out)
        return Result(name, status, detail, time.monotonic() - start, str(tmp))
    finally:
        if not opts.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def row(r: Result, m: Mutant | None, keep: bool) -> str:
    family = m.family if m else "-"
    line = f"{r.status:<15} {r.name:<40} {family:<10} {r.seconds:7.1f}s  {r.detail}"
    return line + (f"  [{r.tmp}]" if keep and r.tmp else "")


def list_mutants(mutants) -> None:
    for m in mutants:
        n = snippet_count(m)
        state = "ok" if n == 1 else f"STALE ({n} matches)"
        where = f"GPU only: {m.gpu_only}" if m.gpu_only else " ".join(m.tests)
        print(f"{m.name:<40} {m.family:<10} {m.path:<20} {state:<8} {m.description}\n"
              f"{'':<40} -> {where}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated mutant names")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--jobs", type=int, default=1, help="mutants run in parallel")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copies")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the unmutated run of the same test files")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run")
    ap.add_argument("--shrink", action="store_true",
                    help="keep Hypothesis's shrink phase (slower; minimal cases with --keep)")
    ap.add_argument("--gpu", action="store_true",
                    help="run the GPU-only mutants against their GPU tests (needs CUDA)")
    args = ap.parse_args(argv)

    mutants = list(MUTANTS)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        unknown = sorted(set(wanted) - {m.name for m in mutants})
        if unknown:
            ap.error(f"unknown mutant(s): {', '.join(unknown)} (see --list)")
        mutants = [m for m in mutants if m.name in wanted]
    if args.list:
        list_mutants(mutants)
        return 0
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            ap.error("--gpu needs a CUDA device")
    to_run = [m for m in mutants if bool(m.gpu_only) == args.gpu]
    skipped = [m for m in mutants if bool(m.gpu_only) != args.gpu]

    files = repo_files()
    by_name = {m.name: m for m in to_run}
    wanted_tests = list(dict.fromkeys(t for m in to_run for t in m.tests))
    baseline_tests = tuple(t for t in wanted_tests  # a node id inside a listed file: once
                           if "::" not in t or t.split("::")[0] not in wanted_tests)
    where = "GPU (dev profile)" if args.gpu else "CPU (TRITON_INTERPRET=1, ci profile)"
    print(f"mutation run: {len(to_run)} mutants on {where}, {args.jobs} at a time; "
          f"{len(skipped)} listed but not run here", flush=True)
    print(f"{'status':<15} {'mutant':<40} {'family':<10} {'time':>8}  killed by / detail",
          flush=True)

    start = time.monotonic()
    results: dict[str, Result] = {}
    baseline: Result | None = None
    lock = threading.Lock()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {}
        if not args.no_baseline and to_run:
            futures[pool.submit(run_one, None, files, baseline_tests, args)] = None
        for m in to_run:
            if snippet_count(m) != 1:  # report before spending any time on it
                results[m.name] = Result(m.name, "stale", f"snippet found "
                                         f"{snippet_count(m)} times in {m.path}", 0.0)
                print(row(results[m.name], m, False), flush=True)
                continue
            futures[pool.submit(run_one, m, files, m.tests, args)] = m
        for fut in as_completed(futures):
            m = futures[fut]
            r = fut.result()
            with lock:
                if m is None:
                    baseline = r
                else:
                    results[m.name] = r
                print(row(r, m, args.keep), flush=True)
    total = time.monotonic() - start

    ordered = [results[m.name] for m in to_run]
    count = {s: sum(r.status == s for r in ordered)
             for s in ("killed", "survived", "error", "stale")}
    print("\nsummary")
    print(f"  total time {total:.0f}s ({total / 60:.1f} min) with --jobs {args.jobs}")
    if baseline is not None:
        print(f"  baseline: {baseline.status} ({baseline.detail}, {baseline.seconds:.0f}s)")
    print("  " + ", ".join(f"{v} {k}" for k, v in count.items()))
    for r in ordered:
        if r.status != "killed":
            print(f"  {r.status.upper()}: {r.name} [{by_name[r.name].family}] "
                  f"{by_name[r.name].description}: {r.detail}")
    for m in skipped:
        why = f"GPU only ({m.gpu_only}); --gpu runs it against {' '.join(m.gpu_tests)}" \
            if m.gpu_only else "CPU mutant (run without --gpu)"
        print(f"  not run here: {m.name}: {why}")
    ok = count["killed"] == len(ordered) and (baseline is None or
                                              baseline.status == "baseline-ok")
    if baseline is not None and baseline.status != "baseline-ok":
        print("  the unmutated suite fails: kills above mean nothing until it passes")
    print(f"mutants: {count['killed']} killed of {len(ordered)}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
