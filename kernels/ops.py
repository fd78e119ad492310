"""The seven public functions as ``torch.library`` custom ops, namespace
``attention_kernel_triton`` (``torch.ops.attention_kernel_triton.<name>``).

Each op takes validated arguments (kernels/api.py checks them first) and fills ``out`` in
place (``mutates_args=("out",)``); it returns the LSE, or an empty float32 tensor when
``return_lse`` is False (an op's outputs must not alias its inputs, so ``out`` itself is
not returned). Its fake (meta) implementation gives that LSE's shape from the inputs'
symbolic shapes, so the ops work under dynamic shapes. To Inductor an op is opaque: the
kernels stay Triton launches that Inductor neither re-analyses nor recompiles.

``call`` is how the public functions reach them: under ``torch.compile``, make_fx, export
or fake tensors through the op; in plain eager mode straight to the same implementation, because the
custom-op dispatcher costs more host time than some of the launches take (this CPU, torch
2.13: 150 us per call of an op of this signature with a mutated argument, 3 us for the
plain function; decode runs in ~20 us on an H200). Both paths run the same code, so a
compiled call is bit-identical to an eager one (tests/test_ops.py).
"""

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

# No `from __future__ import annotations`: torch.library reads the schema from the
# annotations as objects.
from typing import Optional

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from . import decode, paged_prefill, prefill

NAMESPACE = "attention_kernel_triton"
Tensor = torch.Tensor


def _lse(q: Tensor, shape, return_lse: bool) -> Tensor:
    return q.new_empty(shape if return_lse else (0,), dtype=torch.float32)


@torch.library.custom_op(f"{NAMESPACE}::prefill", mutates_args=("out",))
def prefill_op(q: Tensor, k: Tensor, v: Tensor, seq_lens: Optional[Tensor],
               kv_seq_lens: Optional[Tensor], causal: bool, sm_scale: float,
               return_lse: bool, out: Tensor) -> Tensor:
    return prefill.prefill_impl(q, k, v, seq_lens, kv_seq_lens, causal, sm_scale,
                                return_lse, out)


@prefill_op.register_fake
def _(q, k, v, seq_lens, kv_seq_lens, causal, sm_scale, return_lse, out):
    return _lse(q, q.shape[:3], return_lse)


@torch.library.custom_op(f"{NAMESPACE}::prefill_varlen", mutates_args=("out",))
def prefill_varlen_op(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor,
                      cu_seqlens_k: Tensor, max_seqlen_q: int, causal: bool, sm_scale: float,
                      return_lse: bool, out: Tensor) -> Tensor:
    return prefill.prefill_varlen_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                                       causal, sm_scale, return_lse, out)


@prefill_varlen_op.register_fake
def _(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, causal, sm_scale, return_lse, out):
    return _lse(q, (q.shape[1], q.shape[0]), return_lse)


@torch.library.custom_op(f"{NAMESPACE}::decode", mutates_args=("out",))
def decode_op(q: Tensor, k: Tensor, v: Tensor, seq_lens: Optional[Tensor],
              num_splits: Optional[int], sm_scale: float, k_scale: Optional[Tensor],
              v_scale: Optional[Tensor], return_lse: bool, out: Tensor) -> Tensor:
    return decode.decode_impl(q, k, v, seq_lens, num_splits, sm_scale, k_scale, v_scale,
                              return_lse, out)


@decode_op.register_fake
def _(q, k, v, seq_lens, num_splits, sm_scale, k_scale, v_scale, return_lse, out):
    return _lse(q, q.shape[:2], return_lse)


@torch.library.custom_op(f"{NAMESPACE}::paged_decode", mutates_args=("out",))
def paged_decode_op(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor,
                    seq_lens: Tensor, num_splits: Optional[int], sm_scale: float,
                    k_scale: Optional[Tensor], v_scale: Optional[Tensor], return_lse: bool,
                    out: Tensor) -> Tensor:
    return decode.paged_decode_impl(q, k_cache, v_cache, block_table, seq_lens, num_splits,
                                    sm_scale, k_scale, v_scale, return_lse, out)


@paged_decode_op.register_fake
def _(q, k_cache, v_cache, block_table, seq_lens, num_splits, sm_scale, k_scale, v_scale,
      return_lse, out):
    return _lse(q, q.shape[:2], return_lse)


@torch.library.custom_op(f"{NAMESPACE}::sparse_decode", mutates_args=("out",))
def sparse_decode_op(q: Tensor, k: Tensor, v: Tensor, indices: Tensor,
                     seq_lens: Optional[Tensor], num_splits: Optional[int], sm_scale: float,
                     k_scale: Optional[Tensor], v_scale: Optional[Tensor], return_lse: bool,
                     out: Tensor) -> Tensor:
    return decode.sparse_decode_impl(q, k, v, indices, seq_lens, num_splits, sm_scale,
                                     k_scale, v_scale, return_lse, out)


@sparse_decode_op.register_fake
def _(q, k, v, indices, seq_lens, num_splits, sm_scale, k_scale, v_scale, return_lse, out):
    return _lse(q, q.shape[:2], return_lse)


@torch.library.custom_op(f"{NAMESPACE}::sparse_paged_decode", mutates_args=("out",))
def sparse_paged_decode_op(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor,
                           seq_lens: Tensor, indices: Tensor, num_splits: Optional[int],
                           sm_scale: float, k_scale: Optional[Tensor],
                           v_scale: Optional[Tensor], return_lse: bool, out: Tensor) -> Tensor:
    return decode.sparse_paged_decode_impl(q, k_cache, v_cache, block_table, seq_lens,
                                           indices, num_splits, sm_scale, k_scale, v_scale,
                                           return_lse, out)


@sparse_paged_decode_op.register_fake
def _(q, k_cache, v_cache, block_table, seq_lens, indices, num_splits, sm_scale, k_scale,
      v_scale, return_lse, out):
    return _lse(q, q.shape[:2], return_lse)


@torch.library.custom_op(f"{NAMESPACE}::paged_prefill", mutates_args=("out",))
def paged_prefill_op(q: Tensor, k_cache: Tensor, v_cache: Tensor, block_table: Tensor,
                     cu_seqlens_q: Tensor, seq_lens: Tensor, max_seqlen_q: int, causal: bool,
                     num_splits: Optional[int], sm_scale: float, k_scale: Optional[Tensor],
                     v_scale: Optional[Tensor], return_lse: bool, out: Tensor) -> Tensor:
    return paged_prefill.paged_prefill_impl(q, k_cache, v_cache, block_table, cu_seqlens_q,
                                            seq_lens, max_seqlen_q, causal, num_splits,
                                            sm_scale, k_scale, v_scale, return_lse, out)


@paged_prefill_op.register_fake
def _(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, max_seqlen_q, causal,
      num_splits, sm_scale, k_scale, v_scale, return_lse, out):
    return _lse(q, (q.shape[1], q.shape[0]), return_lse)


OPS = {"prefill": prefill_op, "prefill_varlen": prefill_varlen_op, "decode": decode_op,
       "paged_decode": paged_decode_op, "sparse_decode": sparse_decode_op,
       "sparse_paged_decode": sparse_paged_decode_op, "paged_prefill": paged_prefill_op}
_IMPLS = {"prefill": prefill.prefill_impl, "prefill_varlen": prefill.prefill_varlen_impl,
          "decode": decode.decode_impl, "paged_decode": decode.paged_decode_impl,
          "sparse_decode": decode.sparse_decode_impl,
          "sparse_paged_decode": decode.sparse_paged_decode_impl,
          "paged_prefill": paged_prefill.paged_prefill_impl}


def _plain_eager(args) -> bool:
    """No tracer in sight: not Dynamo, no dispatch mode (make_fx, FakeTensorMode,
    functionalisation, export's tracers), and only plain tensors (no FakeTensor or other
    subclass), so the launch can run on the tensors' data."""
    if torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None:
        return False
    return all(type(a) is torch.Tensor for a in args if isinstance(a, torch.Tensor))


def call(name: str, *args) -> Tensor:
    """Run public function `name` on validated arguments: through its custom op under any
    tracing (the op is what lands in the graph, its fake implementation what a tracer
    runs), else the implementation itself."""
    if _plain_eager(args):
        return _IMPLS[name](*args)
    return getattr(torch.ops.attention_kernel_triton, name)(*args)
