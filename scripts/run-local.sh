#!/usr/bin/env bash
# Quickstart 1: set up, run the embedded-default sweep, draw its curves.
#   scripts/run-local.sh [SPEC] [extra benchfab sweep args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${BENCHFAB_VENV:-.venv}
spec=${1:-jobs/local.yaml}
shift || true
run_id="$(date -u +%Y%m%d-%H%M%S)-quickstart"
"$venv/bin/benchfab" sweep "$spec" --run-id "$run_id" "$@"
"$venv/bin/benchfab" report "$run_id"
