#!/usr/bin/env bash
# Mutation testing (issue 18) with mutmut 3: the modules behind the main claims, each with its own
# narrow, fast test selection. Not part of .ci/run (minutes to an hour on 2 cores).
#
#   tests/mutation.sh                      # analysis checkpoints images runs resume
#   tests/mutation.sh checkpoints runs     # some of them
#   PYTHON=/path/to/python tests/mutation.sh   (default: .venv/bin/python; needs tests/requirements-dev.txt)
#
# mutmut reads its settings only from a top-level setup.cfg/pyproject.toml, which this project does not
# have: each module's settings are written into a scratch copy of the working tree, and mutmut runs
# there. Results (mutmut's per-mutant verdicts and the survivors' diffs) go to tests/artifacts/mutation/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
CHILDREN="${MUTMUT_CHILDREN:-1}"  # 2 made mutmut report 11 resume mutants killed that survive when run alone
OUT="$ROOT/tests/artifacts/mutation"
mkdir -p "$OUT"
modules=("$@")
[ ${#modules[@]} -gt 0 ] || modules=(analysis checkpoints images runs resume)

settings() {  # module -> the [mutmut] section for it
  local common="source_paths = gnet
also_copy =
    assets
    pages
    app.py
    .streamlit
process_isolation = forkserver
pytest_add_cli_args = -p no:cacheprovider -o addopts= -x -q"
  case "$1" in
    analysis) printf '%s\nonly_mutate = gnet/analysis.py\npytest_add_cli_args_test_selection =\n    tests/test_analysis.py\n    tests/test_seed_numbers.py\n' "$common" ;;
    checkpoints) printf '%s\nonly_mutate = gnet/checkpoints.py\npytest_add_cli_args_test_selection =\n    tests/test_checkpoint_loading.py\n    tests/test_fuzz_checkpoints.py\n    tests/test_atomic_writes.py\n    tests/test_checkpoint_load_errors.py\n' "$common" ;;
    images) printf '%s\nonly_mutate = gnet/images.py\npytest_add_cli_args_test_selection =\n    tests/test_images.py\n' "$common" ;;
    runs) printf '%s\nonly_mutate = gnet/runs.py\npytest_add_cli_args_test_selection =\n    tests/test_runs.py\n    tests/test_atomic_writes.py\n' "$common" ;;
    # train.py: only the lines of the resume path (checkpoint state in and out, position, truncation);
    # every other line of train() matches the pattern and is left alone.
    resume) printf '%s\nonly_mutate = gnet/train*.py\ndo_not_mutate_patterns =\n    %s\npytest_add_cli_args_test_selection =\n    tests/test_resume.py\n    tests/test_telemetry.py::test_resumed_run_continues_the_stream_without_duplicates\n' \
      "$common" '^(?!.*(ck\.|resume|purge_step|rng|start_step|start_epoch|epoch_sums|best_acc|truncate_metrics|extra\[|global_step =|global_step,)).*$' ;;
    *) echo "unknown module $1 (analysis, checkpoints, images, runs, resume)" >&2; exit 2 ;;
  esac
}

for m in "${modules[@]}"; do
  work="$(mktemp -d "${TMPDIR:-/tmp}/gnet-mutmut-$m.XXXXXX")"
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work")
  { echo "[mutmut]"; settings "$m"; } > "$work/setup.cfg"
  echo "== $m (in $work)"
  (cd "$work" && "$PY" -m mutmut run --max-children "$CHILDREN" > "$OUT/$m.log" 2>&1) || true
  (cd "$work" && "$PY" -m mutmut results --all true > "$OUT/$m.results.txt" 2>&1) || true
  (cd "$work" && for name in $(awk -F: '/: survived/ {print $1}' "$OUT/$m.results.txt"); do
     "$PY" -m mutmut show "$name"; done > "$OUT/$m.survivors.diff" 2>&1) || true
  for verdict in killed survived timeout suspicious "no tests" "not checked" skipped segfault; do
    n=$(grep -c ": $verdict\$" "$OUT/$m.results.txt" || true)
    [ "$n" = 0 ] || printf '  %-12s %s\n' "$verdict" "$n"
  done | tee "$OUT/$m.summary.txt"
  [ -n "${KEEP:-}" ] || rm -rf "$work"
done
