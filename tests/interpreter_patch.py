"""A faster Triton interpreter for the CPU suite: patch triton.language once per launch.

Under TRITON_INTERPRET=1 every call of a @triton.jit helper from inside a kernel
(`InterpretedFunction.__call__`, triton 3.6 and 3.9) runs `_patch_lang` again: an
`inspect.getmembers` walk over triton.language, its tensor class and tl.math that finds
nothing left to patch (the launch's own `_patch_lang`, in `GridExecutor.__call__`, already
replaced every builtin) and sets the same attribute wrappers again. Our kernels call their
jit helpers (kernels/_jit.py) per key tile: 93,649 such walks in one paged_prefill
property (25 of 83 s under cProfile, 2026-12-08).

`install()` wraps `GridExecutor.__call__` to mark a launch (per thread) and makes a
`_patch_lang` inside it a no-op when the launch already patched every language module the
helper's globals name; the launch's own call, a helper naming another module, a helper
whose module names none (the interpreter's assertion) and any call outside a launch go
through the interpreter's own `_patch_lang`, and the launch's scope restores as before (in
its `finally`). tests/test_harness.py runs a kernel with and without it (the same bits)
and checks that triton.language is restored after a launch. install() checks only that
the names it wraps exist (else it changes nothing and returns False). Measured on 2 cores:
the CPU suite 879 -> 504 s; tests/test_decode.py 53 -> 37 s (benchmarks/NOTES.md, session 26).
"""

import inspect
import threading

_LANGS: dict = {}  # a jit function -> (its globals' size, ids of the language modules named)


def _lang_modules(fn, tl) -> frozenset:
    size = len(fn.__globals__)  # the rewriter may add names: then look again
    cached = _LANGS.get(fn)
    if cached is None or cached[0] != size:
        cached = _LANGS[fn] = (size, frozenset(id(v) for v in fn.__globals__.values()
                                               if inspect.ismodule(v) and v in (tl, tl.core)))
    return cached[1]


def install() -> bool:
    """Install the patch; False (nothing changed) if this Triton's interpreter lacks the
    names it wraps."""
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return False
    if installed():
        return True
    original = getattr(interpreter, "_patch_lang", None)
    executor = getattr(interpreter, "GridExecutor", None)
    if (original is None or not isinstance(executor, type) or "__call__" not in vars(executor)
            or not callable(getattr(interpreter, "_LangPatchScope", None))):
        return False
    run_launch = executor.__call__
    state = threading.local()  # per thread: launch (inside GridExecutor.__call__), langs

    def launch(self, *args, **kwargs):
        outer = (getattr(state, "launch", False), getattr(state, "langs", None))
        state.launch, state.langs = True, None  # the next _patch_lang is the launch's own
        try:
            return run_launch(self, *args, **kwargs)
        finally:
            state.launch, state.langs = outer

    def patch_lang(fn):
        if not getattr(state, "launch", False):  # outside a launch: as the interpreter does
            return original(fn)
        langs = _lang_modules(fn, tl)
        if state.langs is not None and langs and langs <= state.langs:
            return interpreter._LangPatchScope()  # nothing changed, nothing to restore
        scope = original(fn)  # the launch's own call, or a helper naming another module
        state.langs = langs if state.langs is None else state.langs | langs
        return scope

    patch_lang._once_per_launch = True
    patch_lang.original = original
    launch.original = run_launch
    interpreter._patch_lang = patch_lang
    executor.__call__ = launch
    return True


def uninstall() -> None:
    """Back to the interpreter's own _patch_lang (tests compare both)."""
    from triton.runtime import interpreter

    if installed():
        interpreter._patch_lang = interpreter._patch_lang.original
        interpreter.GridExecutor.__call__ = interpreter.GridExecutor.__call__.original


def installed() -> bool:
    """Whether install() is in effect."""
    from triton.runtime import interpreter

    return getattr(getattr(interpreter, "_patch_lang", None), "_once_per_launch", False)
