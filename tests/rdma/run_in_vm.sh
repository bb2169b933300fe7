#!/bin/bash
# The soft-RoCE test lane: boot the VM (scripts/softroce-vm.sh), run the rdma-marked
# tests against rxe0 inside it, and exit with pytest's status.
#
#   tests/rdma/run_in_vm.sh [OUT_DIR] [-- extra pytest args]
#
# OUT_DIR (default build/rdma-lane) is the VM's read-write folder: junit.xml and
# pytest.log land there. The VM sees the tree read-only, so no bytecode or cache is
# written, and the venv's python is called by path. Needs root and, once,
# `scripts/softroce-vm.sh setup`; the extension must be built in place first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build/rdma-lane
if [ $# -gt 0 ] && [ "$1" != -- ]; then out=$1; shift; fi
[ "${1:-}" = -- ] && shift
mkdir -p "$out/tmp"
out=$(cd "$out" && pwd)
py=${BENCHFAB_PYTHON:-$root/.venv/bin/python}
cd "$root"
start=$(date +%s)
set +e
scripts/softroce-vm.sh --rw "$out" -- env PYTHONDONTWRITEBYTECODE=1 TMPDIR="$out/tmp" BENCHFAB_REQUIRE_RDMA=1 \
  bash -c '"$0" -m pytest -m rdma tests/rdma -p no:cacheprovider -rs \
           --junitxml "$1/junit.xml" "${@:2}" 2>&1 | tee "$1/pytest.log"; exit "${PIPESTATUS[0]}"' \
  "$py" "$out" "$@" < /dev/null 2>&1 | tr -d '\000'
# The pipe matters: qemu/virtme-ng reopen their stdout, which truncates a log file the
# caller redirected into; through a pipe the caller's output stays whole.
rc=${PIPESTATUS[0]}
set -e
echo "rdma lane: exit $rc in $(( $(date +%s) - start )) s (results in $out)"
exit $rc
