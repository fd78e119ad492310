"""fp8 KV caches: ``quantize_kv`` turns an fp16 / bf16 / fp32 cache into float8_e4m3fn or
float8_e5m2 and the scale the kernels dequantise it with.

The convention is vLLM's: stored = real / scale, so real = stored x scale (``k_scale`` and
``v_scale`` of the decode functions and ``paged_prefill``). The default scale maps the
largest magnitude onto the fp8 format's largest finite value (amax / 448 for e4m3fn,
amax / 57344 for e5m2); values beyond scale x that maximum saturate to it (a plain
``.to(float8_e4m3fn)`` would make them NaN). Pure PyTorch: no kernel is loaded.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import torch

FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}


def quantize_kv(cache: torch.Tensor, *, dtype: torch.dtype = torch.float8_e4m3fn,
                head_axis: int | None = None,
                scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 cache, float32 scale) with cache ~= fp8.float() x scale.

    cache: any float tensor (dense [B, Hkv, N, D]: head_axis=1; paged
    [num_pages, P, Hkv, D]: head_axis=2). head_axis None: one scale for the whole tensor
    (shape []); else one per index of that axis (shape [H]). scale: use this scale
    (same shapes) instead of amax / fp8 max, e.g. the scale a model was calibrated with.
    A slice whose values are all 0 gets scale 1. NaN stays NaN (e4m3fn and e5m2 both
    encode it); +-inf saturates like any value past the maximum.
    """
    if not isinstance(cache, torch.Tensor) or not cache.is_floating_point():
        raise TypeError(f"cache must be a float tensor, got "
                        f"{getattr(cache, 'dtype', type(cache).__name__)}")
    if dtype not in FP8_MAX:
        raise ValueError(f"dtype must be torch.float8_e4m3fn or torch.float8_e5m2, got {dtype}")
    if head_axis is not None and not -cache.dim() <= head_axis < cache.dim():
        raise ValueError(f"head_axis {head_axis} is out of range for a rank-{cache.dim()} "
                         f"cache")
    fp8_max = FP8_MAX[dtype]
    x = cache.float()
    heads = None if head_axis is None else cache.shape[head_axis]
    shape = [1] * cache.dim()
    if heads is not None:
        shape[head_axis] = heads
    if scale is None:
        finite = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).abs()
        if heads is None:
            amax = finite.amax() if finite.numel() else finite.new_zeros(())
        else:
            other = [a for a in range(cache.dim()) if a != head_axis % cache.dim()]
            amax = finite.amax(dim=other) if finite.numel() else finite.new_zeros(heads)
        scale = torch.where(amax > 0, amax / fp8_max, torch.ones_like(amax))
    else:
        want = () if heads is None else (heads,)
        if not isinstance(scale, torch.Tensor) or tuple(scale.shape) != want:
            raise ValueError(f"scale must be a tensor of shape {want}, got "
                             f"{getattr(scale, 'shape', type(scale).__name__)}")
        if not bool((torch.isfinite(scale) & (scale > 0)).all()):
            raise ValueError("scale must be finite and > 0")
        scale = scale.to(device=cache.device, dtype=torch.float32)
    stored = (x / scale.view(shape)).clamp(-fp8_max, fp8_max).to(dtype)
    return stored, scale.float().contiguous()
