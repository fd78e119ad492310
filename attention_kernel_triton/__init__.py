"""Triton attention kernels for LLM inference (the public API), and the float64 oracles
and Hypothesis strategies that hold them.

    prefill, prefill_varlen            -- prefill: causal or not, padded or packed var-len, GQA
    decode, paged_decode               -- GQA decode over a dense or paged KV cache, split-KV
    sparse_decode, sparse_paged_decode -- decode over a given set of token positions
    paged_prefill                      -- new tokens against a paged cache (chunks, mixed batches)
    quantize_kv                        -- an fp8 KV cache and its scale, for the five above

One import name per module. The repository keeps ``kernels/``, ``oracles/`` and
``strategies/`` at its top; they are subpackages of this package, never top-level names
(Hugging Face's kernel hub installs ``kernels``, and PyPI has a ``strategies``). Those
folders hold no ``__init__.py``, so a bare ``import kernels`` from a checkout's root finds
an installed ``kernels`` first, and every module in them refuses to load under any name
but its own (``import oracles.reference`` from the root is an ImportError that names
``attention_kernel_triton.oracles.reference``). In an installed wheel they sit inside
this package; in a checkout, ``attention_kernel_triton/{kernels,oracles,strategies}``
are symbolic links to them.

Importing this package changes no global state and loads no kernel: the eight functions
are loaded on first use (PEP 562), so ``attention_kernel_triton.oracles`` and
``.strategies`` work without a GPU and without Triton compiling anything. Without a GPU
the kernels run only under Triton's interpreter, which must be chosen before the first
kernel is defined: set ``TRITON_INTERPRET=1`` in the environment (or call
``use_interpreter()``) before the first use of a kernel.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if not os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels")):
    raise ImportError("attention_kernel_triton/kernels is not a folder: in a checkout it is a "
                      "symbolic link to ../kernels (and oracles, strategies likewise); clone "
                      "with symbolic links enabled (git config core.symlinks true)")

# public name -> the module that defines it
_API = {name: "kernels.api" for name in (
    "prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
    "sparse_paged_decode", "paged_prefill")} | {"quantize_kv": "kernels.quant"}
_MODULES = {"tuning": "kernels.tuning"}  # the one public tuning surface
__all__ = [*_API, *_MODULES, "use_interpreter"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ loads them
    from .kernels import tuning  # noqa: F401
    from .kernels.api import (  # noqa: F401
        decode,
        paged_decode,
        paged_prefill,
        prefill,
        prefill_varlen,
        sparse_decode,
        sparse_paged_decode,
    )
    from .kernels.quant import quantize_kv  # noqa: F401


def __getattr__(name: str):
    if name in _API or name in _MODULES:
        import importlib

        if name in _API:
            value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        else:
            value = importlib.import_module(f".{_MODULES[name]}", __name__)
        globals()[name] = value  # later lookups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def use_interpreter(enabled: bool = True) -> None:
    """Run the kernels under Triton's interpreter (on CPU tensors): sets TRITON_INTERPRET.
    Triton reads it when a kernel is defined, so call this before the first kernel call
    (before anything imports a module of ``attention_kernel_triton.kernels``); raises RuntimeError
    after, when it could no longer take effect."""
    import sys

    want = "1" if enabled else "0"
    # _jit: the first kernel definitions; _config: reads the setting once, at its import
    loaded = any(f"{__name__}.kernels.{m}" in sys.modules for m in ("_jit", "_config"))
    if loaded and os.environ.get("TRITON_INTERPRET", "0") != want:
        raise RuntimeError("use_interpreter() must be called before the kernels are loaded "
                           "(they were defined with TRITON_INTERPRET="
                           f"{os.environ.get('TRITON_INTERPRET', 'unset')})")
    os.environ["TRITON_INTERPRET"] = want
