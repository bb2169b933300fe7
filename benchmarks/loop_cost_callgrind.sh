#!/bin/bash
# Instructions per loop iteration of benchfab's native loops, by callgrind (see
# loop_cost_callgrind.py). RDMA cases run in the soft-RoCE VM (valgrind comes from this
# machine's /usr/bin, which the VM sees read-only); the TCP case runs here.
#
#   benchmarks/loop_cost_callgrind.sh [rdma|tcp|all] [extra args for loop_cost_callgrind.py]
#
# Needs: apt-get install valgrind; scripts/softroce-vm.sh setup (for rdma).
# Results: results/loop_cost_callgrind/{rdma,tcp}.json, callgrind.*.out, *.log.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[ $# -gt 0 ] && shift
out=results/loop_cost_callgrind
mkdir -p "$out"
command -v valgrind >/dev/null || { echo "valgrind missing: apt-get install -y valgrind" >&2; exit 2; }
if [ "$what" = rdma ] || [ "$what" = all ]; then
  time scripts/softroce-vm.sh --rw "$out" -- .venv/bin/python benchmarks/loop_cost_callgrind.py run \
    --cases rdma_bw,rdma_lat --sizes 8,65536 --n1 2000 --n2 10000 --toggle-check \
    --out "$out" --tag rdma "$@" 2>&1 | tee "$out/rdma.log"
fi
if [ "$what" = tcp ] || [ "$what" = all ]; then
  time .venv/bin/python benchmarks/loop_cost_callgrind.py run \
    --cases tcp_bw --sizes 8,65536 --n1 2000 --n2 10000 --toggle-check \
    --out "$out" --tag tcp "$@" 2>&1 | tee "$out/tcp.log"
fi
