"""tests/compile_lock.py: one compile per kernel variant across worker processes."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from tests import compile_lock

_TRY = ("import sys; from tests import compile_lock as c; "
        "print(c.acquire(sys.argv[1], wait_s=float(sys.argv[2])))")


def _other_process_gets(key: str, wait_s: float) -> bool:
    out = subprocess.run([sys.executable, "-c", _TRY, key, str(wait_s)], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip() == "True"


def test_a_held_variant_lock_blocks_that_variant_only():
    key, other = compile_lock.variant_key("k:src", "a"), compile_lock.variant_key("k:src", "b")
    assert compile_lock.acquire(key)
    try:
        assert not _other_process_gets(key, 0.3), "a second process compiled a held variant"
        assert _other_process_gets(other, 0.3), "another variant waited"
    finally:
        compile_lock.release()
    assert _other_process_gets(key, 0.3), "released, yet the variant stayed locked"


def test_hooks_hold_the_lock_from_compile_to_compiled(monkeypatch):
    """install(): Triton's pre-compile hook takes the variant's lock and lets the compile
    go on; the post-compile hook releases it; a second compile first releases a lock left
    held (one lock per process at most: no hold-and-wait)."""
    from triton import knobs

    monkeypatch.setattr(knobs.runtime, "jit_cache_hook", None)
    monkeypatch.setattr(knobs.runtime, "jit_post_compile_hook", None)
    monkeypatch.delenv("COMPILE_LOCK", raising=False)
    compile_lock.install()
    before, after = knobs.runtime.jit_cache_hook, knobs.runtime.jit_post_compile_hook
    fn = SimpleNamespace(module="m", name="kern", jit_function=SimpleNamespace(cache_key="h1"))

    def hook_args(data):
        return dict(key=None, repr="", fn=fn, compile={"specialization_data": data},
                    is_manual_warmup=False, already_compiled=False)

    key = compile_lock.variant_key("m.kern:h1", "spec-1")
    assert before(**hook_args("spec-1")) is False  # the compile goes on
    assert not _other_process_gets(key, 0.3)
    assert before(**hook_args("spec-2")) is False  # the first is released first
    assert _other_process_gets(key, 0.3)
    after(**hook_args("spec-2"))
    assert _other_process_gets(compile_lock.variant_key("m.kern:h1", "spec-2"), 0.3)


@pytest.mark.parametrize("setting", ["off", "recording"])
def test_install_leaves_hooks_alone(monkeypatch, setting):
    """COMPILE_LOCK=0, or a recording run's hook (tests/compile_record.py) in place."""
    from triton import knobs

    recording_hook = object()
    monkeypatch.setattr(knobs.runtime, "jit_cache_hook",
                        recording_hook if setting == "recording" else None)
    monkeypatch.setattr(knobs.runtime, "jit_post_compile_hook", None)
    if setting == "off":
        monkeypatch.setenv("COMPILE_LOCK", "0")
    compile_lock.install()
    assert knobs.runtime.jit_cache_hook is (recording_hook if setting == "recording" else None)
    assert knobs.runtime.jit_post_compile_hook is None
