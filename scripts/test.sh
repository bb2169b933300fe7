#!/usr/bin/env bash
# Quickstart 2 (and what CI runs): set up, then run the whole test suite:
#   0. ruff, mypy --strict and import-linter (lint-imports) over the code;
#   1. pytest on this host (RDMA tests skip here: no RDMA device);
#   2. the soft-RoCE lane: the `rdma` tests inside a VM with a real rxe0 device,
#      where they must run (BENCHFAB_REQUIRE_RDMA=1 turns a skip into an error).
#
#   scripts/test.sh [extra pytest args for the host run]
#   BENCHFAB_SKIP_VM=1 scripts/test.sh      # host run only (no root / no qemu)
#
# Everything either lane runs is installed by scripts/setup.sh and
# `scripts/softroce-vm.sh setup`; scripts/check_tools.py then stops the run, naming
# the program and the fix, if a test would use a program or module from anywhere
# else (a copy installed by hand keeps a used machine green and breaks a fresh one).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${BENCHFAB_VENV:-.venv}
vm_lane=1
if [ "${BENCHFAB_SKIP_VM:-}" = 1 ]; then
  vm_lane=0
elif [ "$(id -u)" != 0 ]; then
  echo "test.sh: the soft-RoCE lane needs root (apt packages, qemu); rerun as root or set BENCHFAB_SKIP_VM=1" >&2
  exit 1
fi
lanes=(host)
[ "$(id -u)" = 0 ] && lanes+=(bench)  # setup installs the benchmark peers only as root
if [ "$vm_lane" = 1 ]; then
  # Set up the VM lane first (its setup ends with check_tools.py vm): its kernel serves
  # a host test too, and a missing program should stop the run before the host tests.
  scripts/softroce-vm.sh setup
fi
BENCHFAB_VENV="$venv" "$venv/bin/python" scripts/check_tools.py "${lanes[@]}"
# Static checks first, each stopping the run with its findings (settings in pyproject.toml):
"$venv/bin/ruff" check      # lint: pycodestyle, pyflakes, isort, bugbear, pyupgrade ([tool.ruff])
"$venv/bin/mypy"            # types: mypy --strict over benchfab/ ([tool.mypy])
"$venv/bin/lint-imports"    # import contracts: layers; kubernetes and torch only where allowed ([tool.importlinter])
"$venv/bin/python" -m pytest "$@"
if [ "$vm_lane" = 0 ]; then
  echo "test.sh: BENCHFAB_SKIP_VM=1: the soft-RoCE lane was not run" >&2
  exit 0
fi
BENCHFAB_PYTHON="$PWD/$venv/bin/python" tests/rdma/run_in_vm.sh build/rdma-lane
