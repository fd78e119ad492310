"""One compile per kernel variant across xdist workers (GPU runs).

Every property of a kernel draws the same examples (the run's pinned seed), so workers
that run different properties of one kernel at the same time want the same variants at
the same time, and each compiled each of them itself: Triton's on-disk cache is shared,
but a compile that is under way in another process is not seen. With `install()` (called
by conftest.py in xdist workers on a GPU) a worker about to compile a variant first takes
a file lock named after the variant (the kernel's source hash and its specialization
data: what Triton compiles); a
second worker wanting it waits, then finds it in Triton's on-disk cache instead of
compiling it again. Its CPU goes to other work in the meantime.

A process holds at most one lock: Triton's post-compile hook releases it, and a lock
left held (a compile that raised) is released at the process's next compile or exit, so
no worker holds one lock while waiting for another. A waiter gives up after WAIT_S and
compiles anyway. COMPILE_LOCK=0 turns it off.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time

WAIT_S = 300.0
_held: dict[str, int] = {}  # "fd": the lock file held by this process, if any


def lock_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), "attention_kernel_triton-compile-locks")
    os.makedirs(path, exist_ok=True)
    return path


def variant_key(source: str, specialization_data: str) -> str:
    """source: the kernel's source hash (mutants of one kernel do not share locks)."""
    return hashlib.sha1(f"{source}:{specialization_data}".encode()).hexdigest()


def release() -> None:
    fd = _held.pop("fd", None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def acquire(key: str, wait_s: float = WAIT_S) -> bool:
    """Take the variant's lock (after releasing any this process still holds); False when
    another process held it for longer than wait_s (the caller compiles anyway)."""
    release()
    fd = os.open(os.path.join(lock_dir(), key + ".lock"), os.O_CREAT | os.O_RDWR, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _held["fd"] = fd
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return False
            time.sleep(0.05)


def install() -> None:
    """Triton's pre- and post-compile hooks take and release the variant's lock."""
    if os.environ.get("COMPILE_LOCK", "1") == "0":
        return
    from triton import knobs

    if knobs.runtime.jit_cache_hook is not None:  # the recording's hook (compile_record)
        return

    def before(*, key, repr, fn, compile, is_manual_warmup, already_compiled):
        jit = fn.jit_function
        acquire(variant_key(f"{fn.module}.{fn.name}:{jit.cache_key}",
                            str(compile["specialization_data"])))
        return False  # go on and compile (a cache hit when the holder has compiled it)

    def after(*, key, repr, fn, compile, is_manual_warmup, already_compiled):
        release()

    knobs.runtime.jit_cache_hook = before
    knobs.runtime.jit_post_compile_hook = after
