#!/usr/bin/env bash
# A simulated Kubernetes cluster on this host, for a person to run sweeps against: N nodes,
# each a network namespace with its own veth into a bridge and its own address, links
# shaped with tc (and nftables drops), the fake API server on the bridge. Needs root.
#
#   scripts/simcluster.sh up 16 [--rate 200] [--slow-node sim-node-3:50] [--slow-link sim-node-1,sim-node-2:50]
#                               [--lossy sim-node-5:3] [--dead sim-node-7]
#   export KUBECONFIG=/tmp/benchfab-simcluster/kubeconfig
#   cat /tmp/benchfab-simcluster/spec-head.yaml     # backend, namespace and a tcp profile for a spec
#   benchfab sweep my-spec.yaml; benchfab diagnose latest
#   scripts/simcluster.sh down                        # removes every namespace, veth, qdisc and nft table
#
# `up` returns once the cluster is ready (it keeps running in the background; its log is
# /tmp/benchfab-simcluster/simcluster.log). BENCHFAB_SIM_DIR moves the state folder.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${BENCHFAB_SIM_DIR:-/tmp/benchfab-simcluster}
python=${BENCHFAB_PYTHON:-.venv/bin/python}

usage() {
  cat <<EOF
usage: scripts/simcluster.sh up N [--rate MBIT] [--slow-node NODE:MBIT] [--slow-link A,B:MBIT]
                                  [--lossy NODE:PERCENT] [--dead NODE]
       scripts/simcluster.sh down

A simulated Kubernetes cluster on this host (needs root): N nodes named sim-node-0...,
each a network namespace with a tc-shaped veth link (--rate: every NIC, default 200 Mbit/s).
Faults, each repeatable: --slow-node throttles a node's NIC, --slow-link the link between
two nodes, --lossy drops packets to and from a node, --dead makes a node whose pods never start.

  scripts/simcluster.sh up 8 --slow-node sim-node-3:50
  export KUBECONFIG=$dir/kubeconfig
  cat $dir/spec-head.yaml     # backend, namespace and a tcp profile for a spec
  benchfab sweep my-spec.yaml; benchfab diagnose latest
  scripts/simcluster.sh down  # removes every namespace, veth, qdisc and nft table

State and log: $dir (BENCHFAB_SIM_DIR moves it).
EOF
}

cmd=${1:-}
shift || true
case "$cmd" in
  -h|--help|help)
    usage
    exit 0
    ;;
  up)
    mkdir -p "$dir"
    "$python" -m tests.fakecluster.simcluster up "$@" --dir "$dir" >"$dir/simcluster.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do
      if [ -f "$dir/state.json" ]; then cat "$dir/simcluster.log"; exit 0; fi
      if ! kill -0 "$pid" 2>/dev/null; then cat "$dir/simcluster.log" >&2; wait "$pid"; exit $?; fi
      sleep 0.1
    done
    echo "simcluster: not ready after 60 s; see $dir/simcluster.log" >&2
    exit 1
    ;;
  down)
    exec "$python" -m tests.fakecluster.simcluster down --dir "$dir"
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
