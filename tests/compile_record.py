"""Record the kernel variants a test run compiles, without compiling or running them.

With ``KERNEL_RECORD_DIR=dir`` set, conftest.py calls `install()` and every kernel launch
is recorded instead of run:

* on a GPU, through Triton's ``jit_cache_hook``: the launch's specialization data
  (exactly what Triton would compile) goes to ``dir/variants-<worker>.jsonl`` and the
  compile and the launch are skipped, manual warmups too: kernels/decode.py
  resident_programs then guesses one program per SM instead of reading a compiled
  kernel's registers. The split count that follows may differ from the real run's; it
  is a runtime argument, so the variants do not (only the merge's tile of splits may).
  An earlier version compiled those warmups, one after another: on an H100 its record
  pass of six test files ran past its 180 s budget (session 16), most likely for that.
  `tests/precompile.py` then compiles every recorded variant in parallel
  (``JITFunction.preload``) before the real run;
* under the interpreter, a key of the same shape (constexpr values, Triton's
  specialization of the other arguments: dtype and 16-byte alignment of tensors,
  ints equal to 1 or divisible by 16 unless ``do_not_specialize``) goes to the same
  file: what `python -m tests.precompile --count` tabulates to see which switches
  multiply the variants, with no GPU.

Outputs are then never written, so properties.check() swallows every property's
failure while recording (`recording()`): with the seed pinned, Hypothesis draws the
same examples as a real run would, as long as that run passes.
"""

from __future__ import annotations

import inspect
import json
import os

_DIR = os.environ.get("KERNEL_RECORD_DIR")


def recording() -> bool:
    return bool(_DIR)


def _out():
    os.makedirs(_DIR, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return open(os.path.join(_DIR, f"variants-{worker}.jsonl"), "a")


def _spec(value, specialize: bool) -> str:
    """Triton's specialization of one non-constexpr argument (runtime/jit.py)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        if not specialize:
            return "i"
        return "1" if value == 1 else ("i:16" if value % 16 == 0 else "i")
    if isinstance(value, float):
        return "f"
    if hasattr(value, "data_ptr"):
        align = ":16" if value.data_ptr() % 16 == 0 else ""
        return f"*{str(value.dtype).removeprefix('torch.')}{align}"
    return type(value).__name__


def _interpreter_key(fn, kwargs_jit, args, kwargs) -> dict:
    params = list(inspect.signature(fn).parameters.values())
    bound = dict(zip((p.name for p in params), args, strict=False))
    bound.update(kwargs)
    no_spec = set(kwargs_jit.get("do_not_specialize") or ())
    consts, sig = {}, {}
    for p in params:
        if p.name not in bound:
            continue
        v = bound[p.name]
        if "constexpr" in str(p.annotation):
            consts[p.name] = v if isinstance(v, (int, float, str, bool, type(None))) else str(v)
        else:
            sig[p.name] = _spec(v, p.name not in no_spec)
    opts = {k: kwargs[k] for k in ("num_warps", "num_stages", "maxnreg") if k in kwargs}
    return {"name": fn.__name__, "constants": consts, "signature": sig, "options": opts}


def install() -> None:
    """Record launches instead of running them (see the module docstring)."""
    if not _DIR:
        return
    if os.environ.get("TRITON_INTERPRET") == "1":
        from triton.runtime.interpreter import InterpretedFunction

        def run(self, *args, grid, warmup, **kwargs):
            key = _interpreter_key(self.fn, self.kwargs, args, kwargs)
            with _out() as f:
                f.write(json.dumps(key, sort_keys=True) + "\n")

        InterpretedFunction.run = run
        return
    from triton import knobs

    def hook(*, key, repr, fn, compile, is_manual_warmup, already_compiled):
        jit = fn.jit_function
        with _out() as f:
            f.write(json.dumps({"module": jit.fn.__module__, "name": jit.fn.__qualname__,
                                "data": compile["specialization_data"]}) + "\n")
        return True  # skip the compile and the launch

    knobs.runtime.jit_cache_hook = hook
