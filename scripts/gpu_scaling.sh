#!/usr/bin/env bash
# The GPU test suite spread over every GPU of a machine against the same suite on fewer
# GPUs (issue 8). Usage (through the device tool):
#   bash scripts/gpu_scaling.sh NAME:GPUS:WORKERS[:TIMEOUT] ...
# GPUS is "all" (the GPUs visible when the script started) or a CUDA_VISIBLE_DEVICES
# list ("0"; physical ids, as CUDA_VISIBLE_DEVICES takes them); WORKERS a number or "auto". Each
# phase runs `python3 -m pytest -n WORKERS` at the dev profile (SCALING_TESTS: test paths,
# default the whole suite) with GPU_REPORT_DIR set, so every worker reports the GPU it
# used; the log is $OUT/scaling-NAME.log and one line goes to $OUT/scaling.txt:
#   NAME gpus=... workers=... exit=... wall=...s <pytest summary>
# The first phase compiles the kernels into Triton's cache; later phases reuse it, so
# compare warm phases with warm phases. Logs and reports come back in $OUT/scaling.tgz.
set -uo pipefail
OUT=${OUT:-$PWD/.out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-dev}
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
nvidia-smi -L | tee "$OUT/card.txt"
nproc | sed 's/^/cpus: /' | tee -a "$OUT/card.txt"
read -r -a tests <<< "${SCALING_TESTS:-}"
had_visible=${CUDA_VISIBLE_DEVICES+set}; visible=${CUDA_VISIBLE_DEVICES:-}
restore_visible() {
  if [[ -n $had_visible ]]; then export CUDA_VISIBLE_DEVICES=$visible; else unset CUDA_VISIBLE_DEVICES; fi
}
rc=0
for phase in "$@"; do
  IFS=: read -r name gpus workers limit <<< "$phase"
  log=$OUT/scaling-$name.log
  reports=$OUT/gpu-reports-$name
  if [[ $gpus == all ]]; then restore_visible; else export CUDA_VISIBLE_DEVICES=$gpus; fi
  start=$(date +%s.%N)
  GPU_REPORT_DIR=$reports ERROR_RATIOS_DIR=$(mktemp -d) \
    timeout -s INT -k 30 "${limit:-420}" python3 -m pytest -n "$workers" -q -p no:cacheprovider --durations=8 \
    "${tests[@]}" > "$log" 2>&1
  prc=$?
  wall=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  summary=$(grep -E ' in [0-9.]+s' "$log" | tail -1)  # pytest's last line, whatever it counts
  echo "$name gpus=$gpus workers=$workers exit=$prc wall=${wall}s $summary" | tee -a "$OUT/scaling.txt"
  sed -n '/^=.* GPU used by each worker/,/^=.* \(worst\|slowest\)/p' "$log" | tee -a "$OUT/scaling.txt"
  [[ $prc != 0 ]] && rc=$prc
done
restore_visible
(cd "$OUT" && tar czf scaling.tgz scaling-*.log gpu-reports-*)
# shrunk failures land in tests/corpus/: bring them back
new=$(git status --porcelain --untracked-files=all tests/corpus | awk '{print $2}')
[[ -n $new ]] && tar czf "$OUT/new_corpus.tgz" $new
exit "$rc"
