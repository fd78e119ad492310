"""Strategy bounds per device: tiny under the CPU interpreter, realistic on a GPU.

bf16 runs only on the GPU: under the interpreter tl.dot on bf16 multiplies raw bit
patterns (triton 3.6 and 3.9), so CPU runs draw fp16 and fp32.
"""

import os

import torch
from hypothesis import settings

# SUITE_SIZES=gpu|cpu overrides the device's choice (tests/precompile.py --count tallies
# the GPU profile's kernel variants on the CPU)
ON_GPU = {"gpu": True, "cpu": False}.get(os.environ.get("SUITE_SIZES", ""),
                                         torch.cuda.is_available())
# The decode families' and paged_prefill's K/V formats: q's dtype, or an fp8 cache with
# fp16 / bf16 q (strategies draw the scale's kind and fit). Every property runs on them.
KV_DTYPES = (None, "float8_e4m3fn", "float8_e5m2")
FUZZ = settings._current_profile == "fuzz"


# Every case strategy draws the attention variants (window, softcap, sinks, ALiBi; half
# the cases none), so every property runs on them.
VARIANTS = True


def prefill(**over) -> dict:
    if ON_GPU:
        kw = dict(max_batch=4, max_kv_heads=4, max_group=8, max_head_dim=256,
                  max_seq=1024 if FUZZ else 300, dtypes=("float16", "bfloat16", "float32"))
    else:
        kw = dict(max_batch=3, max_kv_heads=2, max_group=4, max_head_dim=80, max_seq=40,
                  dtypes=("float16", "float32"))
    return {**kw, "variants": VARIANTS, **over}


def decode(**over) -> dict:
    if ON_GPU:
        kw = dict(max_batch=6, max_kv_heads=4, max_group=8, max_head_dim=256,
                  max_ctx=4096 if FUZZ else 2048, max_page_size=256, max_splits=32,
                  max_indices=600, dtypes=("float16", "bfloat16", "float32"),
                  kv_dtypes=KV_DTYPES)
    else:
        kw = dict(max_batch=3, max_kv_heads=2, max_group=4, max_head_dim=64, max_ctx=48,
                  max_page_size=16, max_splits=6, max_indices=40,
                  dtypes=("float16", "float32"), kv_dtypes=KV_DTYPES)
    return {**kw, "variants": VARIANTS, **over}


def paged_prefill(**over) -> dict:
    if ON_GPU:
        kw = dict(max_batch=6, max_kv_heads=4, max_group=8, max_head_dim=256,
                  max_ctx=4096 if FUZZ else 2048, max_q=1024 if FUZZ else 300,
                  max_page_size=256, max_splits=32, dtypes=("float16", "bfloat16", "float32"),
                  kv_dtypes=KV_DTYPES)
    else:
        kw = dict(max_batch=3, max_kv_heads=2, max_group=4, max_head_dim=64, max_ctx=48,
                  max_q=40, max_page_size=16, max_splits=6, dtypes=("float16", "float32"),
                  kv_dtypes=KV_DTYPES)
    return {**kw, "variants": VARIANTS, **over}
