"""Argument checks shared by every host wrapper.

Each check raises with the argument's name, what was expected and what came:
``TypeError`` when an argument is not a tensor (or not the right Python type),
``ValueError`` for everything else (rank, shape, dtype, device, values).
Checks on tensor *values* (lengths, table entries, indices) need a host-device sync and
run only when ``validate`` is true; shape, dtype and device checks always run.
All checks happen before any launch, so a failed call writes nothing.
"""

from __future__ import annotations

import math
import os

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MIN_HEAD_DIM, MAX_HEAD_DIM = 16, 256


def tensor(name: str, t, rank: int | None = None, layout: str = "") -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if rank is not None and t.dim() != rank:
        raise ValueError(f"{name} must have rank {rank} {layout}, got shape {tuple(t.shape)}")
    return t


def float_input(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be float16, bfloat16 or float32, got {t.dtype}")
    if t.numel() and t.stride(-1) != 1:
        raise ValueError(f"{name} must be contiguous in its last (head) dim, got strides "
                         f"{t.stride()}")


def on_kernel_device(name: str, t: torch.Tensor) -> None:
    """Triton kernels need CUDA tensors, except under the interpreter (CPU tensors)."""
    interp = os.environ.get("TRITON_INTERPRET") == "1"
    if t.device.type != "cuda" and not interp:
        raise ValueError(f"{name} must be on a CUDA device (or run with TRITON_INTERPRET=1), "
                         f"got {t.device}")


def same_kind(ref_name: str, ref: torch.Tensor, name: str, t: torch.Tensor) -> None:
    if t.dtype != ref.dtype:
        raise ValueError(f"{name} must have dtype {ref.dtype} like {ref_name}, got {t.dtype}")
    if t.device != ref.device:
        raise ValueError(f"{name} must be on {ref.device} like {ref_name}, got {t.device}")


def head_dim(d: int) -> None:
    if not MIN_HEAD_DIM <= d <= MAX_HEAD_DIM:
        raise ValueError(f"head dim D must be in [{MIN_HEAD_DIM}, {MAX_HEAD_DIM}], got {d}")


def gqa(num_q_heads: int, num_kv_heads: int) -> None:
    if num_q_heads < 1:
        raise ValueError(f"q must have at least one head, got Hq={num_q_heads}")
    if num_kv_heads < 1 or num_q_heads % num_kv_heads != 0:
        raise ValueError(f"Hq % Hkv must be 0 (query heads {num_q_heads}, KV heads "
                         f"{num_kv_heads})")


def check_qkv(q, k, v, *, rank: int, layout: str) -> None:
    """Dense q/k/v with heads on axis -2 and head dim on axis -1 (batch/seq elsewhere)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        tensor(name, t, rank, layout)
        float_input(name, t)
    on_kernel_device("q", q)
    same_kind("q", q, "k", k)
    same_kind("q", q, "v", v)
    if k.shape != v.shape:
        raise ValueError(f"k and v must have the same shape, got {tuple(k.shape)} and "
                         f"{tuple(v.shape)}")
    if k.shape[-1] != q.shape[-1]:
        raise ValueError(f"k must have head dim {q.shape[-1]} like q, got {k.shape[-1]}")
    head_dim(q.shape[-1])
    gqa(q.shape[-3 if rank == 4 else -2], k.shape[-3 if rank == 4 else -2])


def int32_vector(name: str, t, length: int, device: torch.device) -> torch.Tensor:
    tensor(name, t)
    if t.dtype != torch.int32:
        raise ValueError(f"{name} must be int32, got {t.dtype}")
    if t.dim() != 1 or t.shape[0] != length:
        raise ValueError(f"{name} must have shape ({length},), got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"{name} must be on {device} like q, got {t.device}")
    if length > 1 and t.stride(0) != 1:  # the kernels index it as a plain array
        raise ValueError(f"{name} must be contiguous, got stride {t.stride(0)}")
    return t


def check_lengths(name: str, lens, batch: int, capacity: int, device, validate: bool) -> None:
    int32_vector(name, lens, batch, device)
    if validate and batch:
        lo, hi = int(lens.min()), int(lens.max())
        if lo < 0:
            raise ValueError(f"{name} must be >= 0, got a length of {lo}")
        if hi > capacity:
            raise ValueError(f"{name} must be <= {capacity} (the tensor's capacity), got a "
                             f"length of {hi}")


def check_cu_seqlens(name: str, cu, total: int, device, validate: bool) -> int:
    """Returns the batch size B (cu has B + 1 entries)."""
    tensor(name, cu)
    if cu.dtype != torch.int32:
        raise ValueError(f"{name} must be int32, got {cu.dtype}")
    if cu.dim() != 1 or cu.shape[0] < 1:
        raise ValueError(f"{name} must have shape (B + 1,), got {tuple(cu.shape)}")
    if cu.device != device:
        raise ValueError(f"{name} must be on {device} like q, got {cu.device}")
    if cu.shape[0] > 1 and cu.stride(0) != 1:  # the kernel indexes it as a plain array
        raise ValueError(f"{name} must be contiguous, got stride {cu.stride(0)}")
    if validate:
        vals = cu.cpu()
        if int(vals[0]) != 0:
            raise ValueError(f"{name} must start at 0, got {int(vals[0])}")
        if bool((vals[1:] < vals[:-1]).any()):
            raise ValueError(f"{name} must be non-decreasing, got {vals.tolist()[:16]}")
        if int(vals[-1]) > total:
            raise ValueError(f"{name} ends at {int(vals[-1])}, past the {total} packed rows")
    return cu.shape[0] - 1


def check_sm_scale(sm_scale, d: int) -> float:
    if sm_scale is None:
        return 1.0 / math.sqrt(d)
    if isinstance(sm_scale, bool) or not isinstance(sm_scale, (int, float)):
        raise TypeError(f"sm_scale must be a float, got {type(sm_scale).__name__}")
    if not math.isfinite(sm_scale) or sm_scale <= 0:
        raise ValueError(f"sm_scale must be finite and > 0, got {sm_scale}")
    return float(sm_scale)


def check_out(out, like: torch.Tensor, shape: tuple) -> torch.Tensor:
    if out is None:
        return torch.empty(shape, dtype=like.dtype, device=like.device)
    tensor("out", out)
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"out must have shape {tuple(shape)}, got {tuple(out.shape)}")
    same_kind("q", like, "out", out)
    if out.numel() and out.stride(-1) != 1:
        raise ValueError(f"out must be contiguous in its last dim, got strides {out.stride()}")
    return out


def check_num_splits(num_splits) -> None:
    if num_splits is None:
        return
    if isinstance(num_splits, bool) or not isinstance(num_splits, int):
        raise TypeError(f"num_splits must be an int, got {type(num_splits).__name__}")
    if num_splits < 1:
        raise ValueError(f"num_splits must be >= 1, got {num_splits}")
