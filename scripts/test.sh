#!/usr/bin/env bash
# Quickstart 2 (and what CI runs): set up, then run the whole test suite:
#   1. pytest on this host (RDMA tests skip here: no RDMA device);
#   2. the soft-RoCE lane: the `rdma` tests inside a VM with a real rxe0 device,
#      where they must run (BENCHFAB_REQUIRE_RDMA=1 turns a skip into an error).
#
#   scripts/test.sh [extra pytest args for the host run]
#   BENCHFAB_SKIP_VM=1 scripts/test.sh      # host run only (no root / no qemu)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv=${BENCHFAB_VENV:-.venv}
"$venv/bin/python" -m pytest "$@"
if [ "${BENCHFAB_SKIP_VM:-}" = 1 ]; then
  echo "test.sh: BENCHFAB_SKIP_VM=1: the soft-RoCE lane was not run" >&2
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the soft-RoCE lane needs root (apt packages, qemu); rerun as root or set BENCHFAB_SKIP_VM=1" >&2
  exit 1
fi
scripts/softroce-vm.sh setup
BENCHFAB_PYTHON="$PWD/$venv/bin/python" tests/rdma/run_in_vm.sh build/rdma-lane
