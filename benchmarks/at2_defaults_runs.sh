#!/usr/bin/env bash
# Issue 31's runs for AT2's defaults (docs/experiments/at2_online.md, "Issue 31"): every candidate
# and the practitioner baselines on the validation sets, then on the reporting sets, each
# (set, candidate) in its own process, all side by side; long tables (CSV) and printed tables in
# ${OUT:-/tmp/at2_defaults}. Run from the project root, with the project importable
# (PYTHONPATH=src, or the venv). On a 16-core machine about 6-9 minutes; on the 2-core one,
# about 45 minutes of both cores, most of it kg's HyperRec validation (2026-12-05, lines run two
# at a time, OMP_NUM_THREADS=1).
# (The candidate learned, weight_var: learned, ran here too; it left the code after these runs:
# commit ea27dcb has it.)
# Then: python benchmarks/at2_defaults.py ${OUT:-/tmp/at2_defaults}   # the rule and the targets
set -u
OUT=${OUT:-/tmp/at2_defaults}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
declare -A CAND=(
  [default]='{"default": {"method": "at2", "device": "cpu"}}'
  [kg]='{"kg": {"method": "at2", "device": "cpu", "acquisition": "kg"}}'
  [practitioners]='{"zero_shot": {}, "transfer_screening": {}, "per_task_screening": {}, "portfolio_zero_shot": {}}'
)
# each run stops after LIMIT seconds (a run that has not finished by then writes no table)
LIMIT=${LIMIT:-100000}
T="timeout $LIMIT"
# the identifiability databases, generated once (validation draws 1 and 2, reporting draw 0)
for s in 0 1 2; do $PY benchmarks/identifiability.py --db "/tmp/ident_$s" --design "{\"seed\": $s}" --describe > "$OUT/ident_describe_$s.txt" 2>&1; done
for c in default kg practitioners; do
  for s in 0 1; do
    $T $PY benchmarks/at2_validation.py --pairs random --draws 2 --data-seed $s --jobs 3 --candidates "${CAND[$c]}" --out "$OUT/val_s${s}_$c.csv" > "$OUT/val_s${s}_$c.txt" 2>&1 &
    $T $PY benchmarks/at2_validation.py --pairs benchmark --data-seed $s --jobs 1 --candidates "${CAND[$c]}" --out "$OUT/test_s${s}_$c.csv" > "$OUT/test_s${s}_$c.txt" 2>&1 &
  done
  for s in 1 2; do
    $T $PY benchmarks/identifiability.py --db "/tmp/ident_$s" --design "{\"seed\": $s}" --jobs 1 --candidates "${CAND[$c]}" --out "$OUT/ident_v${s}_$c.csv" > "$OUT/ident_v${s}_$c.txt" 2>&1 &
  done
  $T $PY benchmarks/identifiability.py --db /tmp/ident_0 --jobs 1 --candidates "${CAND[$c]}" --out "$OUT/ident_test_$c.csv" > "$OUT/ident_test_$c.txt" 2>&1 &
  # the testbeds database (issue 27): 22 random pairs of 8 training tasks, its 10 test pairs kept out
  $T $PY benchmarks/at2_validation.py --database data/01_raw/mnist1d_scale --pairs random --draws 1 --n-train 8 --jobs 1 --candidates "${CAND[$c]}" --out "$OUT/m1d_$c.csv" > "$OUT/m1d_$c.txt" 2>&1 &
done
wait
ls -la "$OUT"
