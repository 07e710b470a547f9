#!/usr/bin/env bash
# Mutation testing with mutmut (see docs/mutation-testing.md).
#
# mutmut names a mutant after its file's path, and puts its mutated copy of the source first on
# sys.path; repertory's packages live in runtime/, stores/ and actors/ (package-dir in
# pyproject.toml), so neither would find them. This script stages the packages as one plain
# repertory/ tree with the tests and pyproject.toml ([tool.mutmut]) in build/mutation/, and runs
# mutmut there, at low priority.
#
#   tools/mutation.sh                          every module in [tool.mutmut] only_mutate
#   tools/mutation.sh 'repertory.ids*'         only these mutants (mutmut's name globs)
#   MUTATION_KEEP=1 tools/mutation.sh 'repertory.state.merge*'   add mutants to the last run
#   MUTATION_SRC=/path/to/checkout tools/mutation.sh   code and tests of another tree (a "before"
#                                              score), with this tree's configuration
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${MUTATION_SRC:-$ROOT}
WORK=${MUTATION_DIR:-$ROOT/build/mutation}
MUTMUT=${MUTMUT:-$ROOT/.venv/bin/mutmut}

if [ -z "${MUTATION_KEEP:-}" ] || [ ! -d "$WORK/mutants" ]; then  # MUTATION_KEEP=1: go on with the last run
    rm -rf "$WORK"
    mkdir -p "$WORK/repertory"
    cp -r "$SRC/runtime/." "$WORK/repertory/"
    cp -r "$SRC/actors" "$SRC/stores" "$WORK/repertory/"
    cp -r "$SRC/tests" "$WORK/"
    cp "$ROOT/pyproject.toml" "$WORK/"
    find "$WORK" -name __pycache__ -prune -exec rm -rf {} +
fi

cd "$WORK"
nice -n 15 "$MUTMUT" run --max-children "${MUTATION_JOBS:-2}" "$@" || true
"$(dirname "$MUTMUT")/python" "$ROOT/tools/mutation_scores.py"
