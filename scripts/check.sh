#!/usr/bin/env bash
# Everyday checks, in a few minutes on 2 cores: lint, types, import contracts, then the
# fast tests (no test marked slow, k8s, netns, rdma or gpu; tests/conftest.py makes sure
# a test that needs a cluster carries its marker). The whole suite is scripts/test.sh.
#
#   scripts/check.sh [extra pytest args]     e.g. scripts/check.sh -x -k spec
#
# Uses the venv scripts/setup.sh made (run it once first); sets nothing up itself.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${BENCHFAB_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  echo "check.sh: no $venv; run scripts/setup.sh first (or BENCHFAB_SKIP_APT=1 scripts/setup.sh without root)" >&2
  exit 2
fi
"$venv/bin/ruff" check      # lint ([tool.ruff] in pyproject.toml)
"$venv/bin/mypy"            # types: mypy --strict over benchfab/ ([tool.mypy])
"$venv/bin/lint-imports"    # import contracts: layers; kubernetes and torch only where allowed
"$venv/bin/python" -m pytest -q -m "not slow and not k8s and not netns and not rdma and not gpu" "$@"
