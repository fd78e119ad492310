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

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from . import decode, paged_prefill, prefill

NAMESPACE = "attention_kernel_triton"

# Each op's schema: its own arguments, then the variant options (kernels/mods.py
# ScoreMods.op_args), return_lse and the mutated out. Written out rather than read from
# annotations, so the seven ops share the tail instead of repeating it.
_MODS = "int window_left, int window_right, float softcap, Tensor? sinks, Tensor? alibi_slopes"
_SCALES = "Tensor? k_scale, Tensor? v_scale"
_OWN_ARGS = {
    "prefill": "Tensor q, Tensor k, Tensor v, Tensor? seq_lens, Tensor? kv_seq_lens, "
               "bool causal, float sm_scale",
    "prefill_varlen": "Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, "
                      "Tensor cu_seqlens_k, int max_seqlen_q, bool causal, float sm_scale",
    "decode": f"Tensor q, Tensor k, Tensor v, Tensor? seq_lens, int? num_splits, "
              f"float sm_scale, {_SCALES}",
    "paged_decode": f"Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_table, "
                    f"Tensor seq_lens, int? num_splits, float sm_scale, {_SCALES}",
    "sparse_decode": f"Tensor q, Tensor k, Tensor v, Tensor indices, Tensor? seq_lens, "
                     f"int? num_splits, float sm_scale, {_SCALES}",
    "sparse_paged_decode": f"Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_table, "
                           f"Tensor seq_lens, Tensor indices, int? num_splits, "
                           f"float sm_scale, {_SCALES}",
    "paged_prefill": f"Tensor q, Tensor k_cache, Tensor v_cache, Tensor block_table, "
                     f"Tensor cu_seqlens_q, Tensor seq_lens, int max_seqlen_q, bool causal, "
                     f"int? num_splits, float sm_scale, {_SCALES}",
}
_IMPLS = {"prefill": prefill.prefill_impl, "prefill_varlen": prefill.prefill_varlen_impl,
          "decode": decode.decode_impl, "paged_decode": decode.paged_decode_impl,
          "sparse_decode": decode.sparse_decode_impl,
          "sparse_paged_decode": decode.sparse_paged_decode_impl,
          "paged_prefill": paged_prefill.paged_prefill_impl}
# The LSE's shape from q: [B, Hq, Nq] (prefill), [Hq, Tq] (packed), [B, Hq] (decode).
_LSE_SHAPE = {"prefill": lambda q: q.shape[:3],
              "prefill_varlen": lambda q: (q.shape[1], q.shape[0]),
              "paged_prefill": lambda q: (q.shape[1], q.shape[0])}


def schema(name: str) -> str:
    return f"({_OWN_ARGS[name]}, {_MODS}, bool return_lse, Tensor(a!) out) -> Tensor"


def _fake(name: str):
    lse_shape = _LSE_SHAPE.get(name, lambda q: q.shape[:2])

    def fake(q, *args):  # args end with return_lse, out
        return q.new_empty(lse_shape(q) if args[-2] else (0,), dtype=torch.float32)
    return fake


def _register(name: str):
    op = torch.library.custom_op(f"{NAMESPACE}::{name}", _IMPLS[name], mutates_args=("out",),
                                 schema=schema(name))
    op.register_fake(_fake(name))
    return op


OPS = {name: _register(name) for name in _OWN_ARGS}


def _plain_eager(args) -> bool:
    """No tracer in sight: not Dynamo, no dispatch mode (make_fx, FakeTensorMode,
    functionalisation, export's tracers), and only plain tensors (no FakeTensor or other
    subclass), so the launch can run on the tensors' data."""
    if torch.compiler.is_compiling() or _get_current_dispatch_mode() is not None:
        return False
    return all(type(a) is torch.Tensor for a in args if isinstance(a, torch.Tensor))


def call(name: str, *args) -> torch.Tensor:
    """Run public function `name` on validated arguments: through its custom op under any
    tracing (the op is what lands in the graph, its fake implementation what a tracer
    runs), else the implementation itself."""
    if _plain_eager(args):
        return _IMPLS[name](*args)
    return getattr(torch.ops.attention_kernel_triton, name)(*args)
