#!/usr/bin/env bash
# One device call: the GPU test suite at the dev profile, then the benchmarks.
# Usage (through the device tool): bash scripts/gpu_run.sh [tests|conformance|firepro|bench|refbench|hf|sweep|probe|all] [pytest args...]
# Steps may be joined with commas (tests,probe); all = tests,bench.
#   refbench: the benchmarks of another commit, from a tree exported into REF_TREE (e.g.
#     `git archive REV | tar -x -C .ref`, carried), run before `bench` in the same call so
#     that before/after share the card and the run; results in $OUT/ref_results.tgz.
#   conformance: python -m tests.conformance_report over every shipped adapter
#     (CONF_ARGS, CONF_EXAMPLES (default 25), CONF_BUDGET (s, default 400), CONF_WORKERS); $OUT/conformance.tgz.
#   firepro: scripts/flashinfer_crash_repro.py (which FlashInfer calls segfault; $OUT/flashinfer_crash_repro.md,
#     the cells as they end in $OUT/flashinfer_crash_repro.log).
#   hf: python -m benchmarks.hf_models (random-weight transformers models, ours vs sdpa).
# Logs and results go under $OUT (default ./.out). Environment knobs:
#   HYPOTHESIS_PROFILE (default dev), HYPOTHESIS_MAX_EXAMPLES (cap for smoke runs),
#   HYPOTHESIS_SEED (default: today's date as YYYYMMDD; every property of a kernel then
#   draws the same examples, so they share compiled variants, and the run is repeatable),
#   PRECOMPILE (default 0; 1: python -m tests.precompile records the run's kernel variants
#   and compiles them on every core first; its record pass (336 s, stopped at its budget)
#   took longer than the whole dev suite from a cold cache (212 s), session 18, H100),
#   TEST_TIMEOUT (s, default 560, precompile included),
#   TESTS_FROM (a file of test ids, one per line, run instead of the whole suite: e.g.
#   the $OUT/owed.txt a stopped run leaves, copied into the carried tree),
#   COMPILE_LOCK (default 1; 0: xdist workers compile a variant they all want each, as
#   before session 22, instead of one compiling while the others wait: tests/compile_lock.py),
#   TEST_WORKERS (pytest-xdist workers, default 14 per GPU:
#   a one-GPU H200 machine has 16 cores; the suite's compiles are CPU-bound),
#   BENCH_ARGS / SWEEP_ARGS / PROBE_ARGS (extra args for python -m benchmarks /
#   benchmarks.sweep / benchmarks.probe). Benchmark results come back as
#   $OUT/bench_results.tgz (the device tool returns at most 8 files).
set -uo pipefail
what=${1:-all}; shift || true
[[ $what == all ]] && what=tests,bench
wants() { [[ ",$what," == *",$1,"* ]]; }
OUT=${OUT:-$PWD/.out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-dev}
export NO_PACKAGE_INDEX=1  # the device machine reaches no package index (test_packaging)
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
# Optional peers the image lacks (FlashInfer) travel as wheels in .whl/ (ignored by git;
# copy it into the carried tree: the device machine reaches no package index). FlashInfer
# 0.2.5's wheel (4 MB; the current ones are ~100 MB with heavy dependencies), built on
# the CPU machine: pip download flashinfer-python==0.2.5 --no-deps -d /tmp/fi, unpack the
# sdist, then pip wheel --no-deps --no-build-isolation -w .whl <its directory>
# Installed by the conformance step (after the tests, whatever the order of the steps
# named): FlashInfer 0.2.5's JIT build failed to link under the image's nvcc 13.0
# (session 19), and its failed nvcc builds inside the test suite ran on every core (the
# dev suite took 473 s instead of ~212 s) and failed the bench harness's tiny-case test
# (the flashinfer peer errors). Steps after it (sweep, probe, bench) see it too.
install_wheels() {
  compgen -G ".whl/*.whl" > /dev/null || return 0
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  # nvcc 13 defaults to -static-global-template-stub=true, under which FlashInfer 0.2.5's
  # kernel templates, instantiated in another translation unit, fail to link ("undefined
  # reference to BatchDecodeWithPagedKVCacheKernel<...>"); nvcc's own advice is the flag
  # below, passed through nvcc's NVCC_APPEND_FLAGS (FlashInfer 0.2.5 takes no extra flags)
  export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:+$NVCC_APPEND_FLAGS }-static-global-template-stub=false"
  ls .whl | tee -a "$OUT/card.txt"
}
python3 -c "import torch, triton, numpy, hypothesis; print('torch', torch.__version__, 'triton', triton.__version__, 'numpy', numpy.__version__, 'hypothesis', hypothesis.__version__)" | tee -a "$OUT/card.txt"
rc=0
if wants tests; then
  start=$(date +%s)
  export ERROR_RATIOS_DIR=${ERROR_RATIOS_DIR:-$(mktemp -d)}  # worst ratios per worker
  # SIGINT at the limit: pytest still prints its summary and the slowest tests
  # worksteal (xdist >= 3.2): an idle worker takes queued tests from a busy one, so the
  # slow properties that conftest.py puts first do not queue behind each other
  dist=$(python3 -c 'import xdist.scheduler as s; print("worksteal" if hasattr(s, "WorkStealingScheduling") else "load")')
  gpus=$(nvidia-smi -L | grep -c '^GPU'); (( gpus > 0 )) || gpus=1
  workers=${TEST_WORKERS:-$(( 14 * gpus ))}
  seed=${HYPOTHESIS_SEED:-$(date +%Y%m%d)}
  echo "tests: --hypothesis-seed=$seed" | tee "$OUT/tests.log"
  if [[ -n ${TESTS_FROM:-} ]]; then  # ids with brackets: an array, never word-split or globbed
    readarray -t from < <(grep '::' "$TESTS_FROM")
    # no ids would run the whole suite: refuse instead
    (( ${#from[@]} > 0 )) || { echo "tests: no test ids in $TESTS_FROM" | tee -a "$OUT/tests.log"; exit 2; }
    set -- "$@" "${from[@]}"
    echo "tests: ${#from[@]} ids from $TESTS_FROM" | tee -a "$OUT/tests.log"
  fi
  left=${TEST_TIMEOUT:-560}
  if [[ ${PRECOMPILE:-0} != 0 ]]; then
    # at most 60% of the limit: what is not compiled by then the run compiles itself
    timeout -k 10 "$left" python3 -m tests.precompile --workers "$workers" \
        --budget $(( left * 6 / 10 )) -- \
        --hypothesis-seed="$seed" "$@" 2>&1 | tee -a "$OUT/tests.log"
    left=$(( ${TEST_TIMEOUT:-560} - ($(date +%s) - start) ))
    (( left > 30 )) || left=30
  fi
  junit=$(mktemp --suffix=.xml)  # per-test outcomes and times: scripts/junit_report.py
  timeout -s INT -k 30 "$left" python3 -m pytest -n "$workers" --dist "$dist" \
      -q -p no:cacheprovider --durations=15 --hypothesis-seed="$seed" \
      --junitxml="$junit" -o junit_family=xunit1 "$@" 2>&1 | tee -a "$OUT/tests.log"
  rc=${PIPESTATUS[0]}
  # The limit can land in xdist's teardown after a complete, all-passed summary (session 6,
  # call 1: "654 passed in 392 s", then rc 124 at 400 s; session 18: a KeyboardInterrupt
  # traceback printed after "1611 passed ... in 212.01s"). A run interrupted before its
  # end says KeyboardInterrupt before its summary line; a failing one has "failed" or
  # "error" in the summary line.
  summary=$(grep -E '^[0-9]+ passed.* in [0-9.]+s' "$OUT/tests.log" | tail -1)
  bad='[0-9]+ (failed|errors?)'  # not "4 xfailed": expected failures are a pass
  at=$(grep -nE '^[0-9]+ passed.* in [0-9.]+s' "$OUT/tests.log" | tail -1 | cut -d: -f1)
  if [[ $rc == 124 && -n $summary && ! $summary =~ $bad ]] \
      && ! head -n "$at" "$OUT/tests.log" | grep -q KeyboardInterrupt; then
    echo "tests: the suite had finished, all passed, when the limit hit its teardown" \
      | tee -a "$OUT/tests.log"
    rc=0
  fi
  # per file, the slowest tests, and (a run that did not pass: one stopped at its limit
  # prints only dots) the collected tests it never finished
  ids=
  if [[ $rc != 0 ]]; then
    ids=$(mktemp) && python3 -m pytest --collect-only -q -p no:cacheprovider "$@" > "$ids" 2>&1
  fi
  # a run that did not pass also leaves $OUT/owed.txt: its unfinished ids (TESTS_FROM)
  [[ -s $junit ]] && python3 scripts/junit_report.py "$junit" \
      ${ids:+--collected "$ids" --owed "$OUT/owed.txt"} \
      2>&1 | tee -a "$OUT/tests.log"
  echo "tests: exit $rc in $(( $(date +%s) - start )) s; compiled kernel variants in the" \
       "triton cache: $(ls ~/.triton/cache 2>/dev/null | wc -l)" | tee -a "$OUT/tests.log"
  # shrunk failures land in tests/corpus/: bring them back
  # (files newer than this run's start: a snapshot without .git has no git status)
  new=$(find tests/corpus -name '*.json' -newer "$OUT/card.txt")
  echo "$new" | tee "$OUT/new_corpus.txt"
  [[ -n $new ]] && tar czf "$OUT/new_corpus.tgz" $new
fi
if wants conformance; then
  install_wheels
  # every shipped adapter, each in its own pytest process (tests/conformance_report.py);
  # CONF_ARGS: e.g. "--impl flex" (default: all); capped examples: compiled flex builds
  # a kernel for every shape it is drawn
  HYPOTHESIS_MAX_EXAMPLES=${CONF_EXAMPLES:-25} python3 -m tests.conformance_report \
      --out "$OUT/conformance" --budget "${CONF_BUDGET:-400}" ${CONF_ARGS:-} -- \
      -n "${CONF_WORKERS:-8}" -p no:cacheprovider 2>&1 | tee "$OUT/conformance.log"
  crc=${PIPESTATUS[0]}
  echo "conformance: exit $crc" | tee -a "$OUT/conformance.log"
  [[ $rc == 0 ]] && rc=$crc
  # shrunk failures (tests/corpus/conformance/<adapter>/): files newer than this run's
  # start (a snapshot without .git has no git status)
  new=$(find tests/corpus -name '*.json' -newer "$OUT/card.txt")
  tar czf "$OUT/conformance.tgz" -C "$OUT" conformance $( [[ -n $new ]] && echo "-C $PWD $new")
  python3 scripts/sdpa_gap_repro.py 2>&1 | tee "$OUT/sdpa_gap_repro.md"
fi
if wants firepro; then
  # which FlashInfer calls crash, one process per cell (scripts/flashinfer_crash_repro.py)
  install_wheels
  # the table on stdout (the .md); each cell's line as it ends, and build noise, on stderr
  python3 scripts/flashinfer_crash_repro.py 2> >(tee "$OUT/flashinfer_crash_repro.log" >&2) \
      | tee "$OUT/flashinfer_crash_repro.md"
fi
if wants sweep; then
  python3 -m benchmarks.sweep ${SWEEP_ARGS:-} 2>&1 | tee "$OUT/sweep.log"
  src=${PIPESTATUS[0]}
  [[ $rc == 0 ]] && rc=$src
  tar czf "$OUT/sweep.tgz" -C benchmarks results
fi
if wants probe; then
  python3 -m benchmarks.probe --out "$OUT" ${PROBE_ARGS:-} 2>&1 | tee "$OUT/probe.log"
  prc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] && rc=$prc
fi
if wants refbench; then
  ( cd "${REF_TREE:?refbench needs REF_TREE}" && python3 -m benchmarks --tag ref --no-plot \
      --out "$OUT/ref_results" ${BENCH_ARGS:-} ) 2>&1 | tee "$OUT/refbench.log"
  rrc=${PIPESTATUS[0]}
  tar czf "$OUT/ref_results.tgz" -C "$OUT" ref_results && rm -rf "$OUT/ref_results"
  echo "refbench: exit $rrc" | tee -a "$OUT/refbench.log"
  [[ $rc == 0 ]] && rc=$rrc
fi
if wants hf; then
  python3 -m benchmarks.hf_models --out "$OUT/hf" 2>&1 | tee "$OUT/hf.log"
  hrc=${PIPESTATUS[0]}
  tar czf "$OUT/hf.tgz" -C "$OUT" hf && rm -rf "$OUT/hf"
  [[ $rc == 0 ]] && rc=$hrc
fi
if wants bench; then
  python3 -m benchmarks ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
  brc=${PIPESTATUS[0]}
  tar czf "$OUT/bench_results.tgz" -C benchmarks results
  echo "bench: exit $brc" | tee -a "$OUT/bench.log"
  [[ $rc == 0 ]] && rc=$brc
fi
exit "$rc"
