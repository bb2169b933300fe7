#!/usr/bin/env bash
# Quickstart 2 (and what CI runs): set up, then run the whole test suite.
#   scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${BENCHFAB_VENV:-.venv}
"$venv/bin/python" -m pytest "$@"
