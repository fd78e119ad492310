"""A faster Triton interpreter for the CPU suite: patch triton.language once per launch.

Under TRITON_INTERPRET=1 every call of a @triton.jit helper from inside a kernel
(`InterpretedFunction.__call__`, triton 3.6 and 3.9) runs `_patch_lang` again: an
`inspect.getmembers` walk over triton.language, its tensor class and tl.math that finds
nothing left to patch (the launch's own `_patch_lang`, in `GridExecutor.__call__`, already
replaced every builtin) and sets the same attribute wrappers again. Our kernels call their
jit helpers (kernels/_jit.py) per key tile, so that walk was ~30% of a paged_prefill
property's profile (93,649 calls, 25 of 83 s under cProfile, 2026-12-08).

`install()` makes a nested `_patch_lang` a no-op when the running launch already patched
every language module the helper's globals name; otherwise (a helper naming a module the
kernel did not) it patches as before. The launch's own scope restores as before. Results
are bit-identical (tests/test_harness.py runs a kernel both ways). If the interpreter's
internals change shape, install() leaves them alone and returns False.
"""

import inspect

_LANGS: dict = {}  # a jit function -> the ids of the language modules its globals name


def _lang_modules(fn, tl) -> frozenset:
    langs = _LANGS.get(fn)
    if langs is None:
        langs = _LANGS[fn] = frozenset(id(v) for v in fn.__globals__.values()
                                       if inspect.ismodule(v) and v in (tl, tl.core))
    return langs


def install() -> bool:
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return False
    original = getattr(interpreter, "_patch_lang", None)
    if original is None or getattr(original, "_once_per_launch", False):
        return original is not None
    if not callable(getattr(interpreter, "_LangPatchScope", None)):
        return False
    patched = []  # the language modules the running launch patched (one launch at a time)

    def patch_lang(fn):
        langs = _lang_modules(fn, tl)
        if patched and langs <= patched[-1]:
            return interpreter._LangPatchScope()  # nothing changed, nothing to restore
        scope = original(fn)
        if not patched:  # the launch's scope (GridExecutor): its restore ends the launch
            patched.append(langs)
            restore = scope.restore

            def restore_and_end():
                patched.clear()
                restore()

            scope.restore = restore_and_end
        else:
            patched[-1] = patched[-1] | langs
        return scope

    patch_lang._once_per_launch = True
    patch_lang.original = original
    interpreter._patch_lang = patch_lang
    return True


def uninstall() -> None:
    """Back to the interpreter's own _patch_lang (tests compare both)."""
    from triton.runtime import interpreter

    current = getattr(interpreter, "_patch_lang", None)
    if getattr(current, "_once_per_launch", False):
        interpreter._patch_lang = current.original
