"""Test-session setup, in the order it must happen:

1. under pytest-xdist, pin this worker to one GPU (before CUDA initialises);
2. without a CUDA device, set TRITON_INTERPRET=1 (before anything imports `kernels`);
3. register the Hypothesis profiles and load the default one;
4. fixtures and the corpus hooks (tests/corpus_io.py).
"""

import os

from tests.gpu_pinning import pin_xdist_worker

PINNED_GPU = pin_xdist_worker()

import torch  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"
    if os.environ.get("INTERPRETER_PATCH", "1") != "0":
        from tests import interpreter_patch

        interpreter_patch.install()  # a jit helper's call no longer re-patches triton.language

from tests import compile_record  # noqa: E402

compile_record.install()  # KERNEL_RECORD_DIR: record kernel launches instead of running them
if HAS_CUDA and os.environ.get("PYTEST_XDIST_WORKER"):
    from tests import compile_lock

    compile_lock.install()  # one compile per kernel variant across workers

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci",  # CPU, Triton interpreter, tiny shapes; reproducible run to run (fixed seed below)
    max_examples=10,
    deadline=None,
    database=None,  # unused under the pinned seed below: the corpus keeps failures
    suppress_health_check=_SLOW_OK,
    print_blob=False,
)
settings.register_profile(
    "dev",  # default on a GPU: realistic shapes
    max_examples=100,
    deadline=None,
    suppress_health_check=_SLOW_OK,
)
settings.register_profile(
    "fuzz",  # nightly GPU runs; tests call hypothesis.target() on the error ratio
    max_examples=3000,
    deadline=None,
    suppress_health_check=_SLOW_OK,
)
_default = "ci" if (not HAS_CUDA or os.environ.get("CI") == "true") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))
if os.environ.get("HYPOTHESIS_MAX_EXAMPLES"):  # quick smoke runs of any profile
    settings.register_profile(
        settings._current_profile + "-capped", settings.default,
        max_examples=int(os.environ["HYPOTHESIS_MAX_EXAMPLES"]))
    _capped = settings._current_profile + "-capped"
    settings.load_profile(_capped)
if settings._current_profile.startswith("ci"):
    # Reproducible run to run: the seed is pinned (--hypothesis-seed overrides). A pinned
    # seed also leaves Hypothesis without a database key, so its example database is not
    # used (hypothesis.core: database_key = None under global_force_seed); a failure
    # persists through the regression corpus instead (tests/corpus_io.py, replayed by
    # every run), which is what keeps it when a later run draws fewer examples.
    import hypothesis.core  # noqa: E402

    hypothesis.core.global_force_seed = 0

from tests.corpus_io import pytest_runtest_makereport  # noqa: E402,F401  (corpus hook)


def pytest_addoption(parser):
    parser.addoption(
        "--attention-impl", action="append", default=[], dest="attention_impl",
        help="conformance mode (tests/test_conformance.py): an implementation to test, "
             "a shipped adapter's name (attention_kernel_triton.adapters.SHIPPED, or 'all'), "
             "'package.module:attribute' or 'path/to/file.py:attribute' naming an "
             "attention_kernel_triton.conformance.Adapter; repeatable. Default: "
             "tests/conformance.py DEFAULT_IMPLS")


@pytest.fixture
def exclusive_gpu():
    """Memory-hungry GPU tests (seed shapes, caches past 2**31 elements) run one at a time
    across xdist workers, and hand their memory back when done."""
    import fcntl
    import tempfile

    # one lock per GPU: workers pinned to other GPUs do not wait
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_")
    path = os.path.join(tempfile.gettempdir(), f"attention_kernel_triton.gpu{gpu}.lock")
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            torch.cuda.empty_cache()
            yield
        finally:
            torch.cuda.empty_cache()
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda") if HAS_CUDA else torch.device("cpu")


def pytest_report_header(config):
    prof = settings._current_profile
    where = f"cuda ({torch.cuda.get_device_name()})" if HAS_CUDA else "cpu (TRITON_INTERPRET=1)"
    return [f"device: {where}; pinned GPU: {PINNED_GPU}; hypothesis profile: {prof}"]


def pytest_configure(config):
    """The controller (or a plain run) clears ratio and GPU-use files a previous run left
    in ERROR_RATIOS_DIR / GPU_REPORT_DIR, so the reports cover this run alone."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import glob

    for var, pattern in (("ERROR_RATIOS_DIR", "ratios-*.json"), ("GPU_REPORT_DIR", "gpu-*.json")):
        if os.environ.get(var):
            for path in glob.glob(os.path.join(os.environ[var], pattern)):
                os.remove(path)


# Properties that take minutes at the dev profile on a GPU, because each compiles kernel
# variants per program order or per batch row (session 10, an H200: program_order_agrees,
# still one property then, took 306 s for prefill_varlen and 220 s for prefill, run
# alone). They go first, so that they never start in the suite's tail; scripts/gpu_run.sh
# runs xdist with --dist worksteal, so that idle workers take them from a busy worker.
# On the CPU (2 workers, the interpreter) splits_agree is the longest property of all
# (2026-12-02: 137 s for sparse_paged_decode, 88 s for decode, of a 740 s suite; with its
# interpreter counts cut to 2, 3, 17, tests/properties.py _split_counts: 32 s for
# paged_prefill, 14 s for sparse_paged_decode, of a 258 s suite, 846 tests): it goes
# first there too, so that its six items do not end the run on one worker.
SLOW_FIRST = ("splits_agree", "program_order_from_end_agrees", "program_order_agrees",
              "batch_equals_one_by_one", "load_paths_agree")


def pytest_collection_modifyitems(session, config, items):
    """Under xdist, known-slow properties first, slowest kind first; the rest keep their
    order. A plain run keeps the file order, where the fast accuracy property comes first
    (`-x` runs, such as the mutation harness's, stop at its failure)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item):
        return next((i for i, name in enumerate(SLOW_FIRST) if f"[{name}" in item.name),
                    len(SLOW_FIRST))

    items.sort(key=rank)


_TESTS_RUN = 0


def pytest_runtest_logreport(report):
    global _TESTS_RUN
    if report.when == "call":  # tests that ran (a skip in setup never gets here)
        _TESTS_RUN += 1


def pytest_sessionfinish(session, exitstatus):
    """Each process that ran tests (an xdist worker or a plain run) saves its worst error
    ratios when ERROR_RATIOS_DIR is set, and the GPU it used when GPU_REPORT_DIR is set."""
    controller = session.config.pluginmanager.has_plugin("dsession")
    gpu_out = os.environ.get("GPU_REPORT_DIR")
    if gpu_out and not controller:
        import json

        from tests.gpu_pinning import worker_report

        os.makedirs(gpu_out, exist_ok=True)
        rep = worker_report(_TESTS_RUN)
        with open(os.path.join(gpu_out, f"gpu-{rep['worker']}.json"), "w") as f:
            json.dump(rep, f)
    out = os.environ.get("ERROR_RATIOS_DIR")
    if out:
        from tests.checks import dump_ratios

        os.makedirs(out, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        dump_ratios(os.path.join(out, f"ratios-{worker}.json"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The worst oracle error ratios (error / bound; a test fails above 1) of the run."""
    import glob

    from tests.checks import WORST_RATIOS, keep_worse, load_ratios

    out = os.environ.get("ERROR_RATIOS_DIR")
    ratios = load_ratios(glob.glob(os.path.join(out, "ratios-*.json"))) if out else {}
    for key, (ratio, case) in WORST_RATIOS.items():  # this process's own (no xdist)
        keep_worse(ratios, key, ratio, case)
    gpu_out = os.environ.get("GPU_REPORT_DIR")
    if gpu_out:
        from tests.gpu_pinning import summarize_reports

        terminalreporter.section("GPU used by each worker")
        for line in summarize_reports(sorted(glob.glob(os.path.join(gpu_out, "gpu-*.json")))):
            terminalreporter.write_line(line)
    if not ratios:
        return
    worst = sorted(ratios.items(), key=lambda kv: -kv[1][0])
    terminalreporter.section("worst error ratios (error / bound)")
    for key, (ratio, _case) in worst[:12]:
        terminalreporter.write_line(f"{ratio:8.3f}  {key}")
    terminalreporter.write_line(f"worst case: {worst[0][1][1]}")
