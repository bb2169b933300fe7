#!/usr/bin/env bash
# Rebuild results/fabrics/, the dataset the notebooks read, from real outputs only:
#   - published nccl-tests / perftest reports (results/fabrics/sources/, see SOURCES.md there),
#     stored with `benchfab import` (run.json's imported_from names each file and its URL);
#   - this project's soft-RoCE perftest reports (tests/rdma/data/, captured in the VM lane);
#   - this project's own runs made here: an all-pairs tcp run between fake-cluster pods
#     (scripts/example_pairs.py) and three repeats of one local tcp test (a history).
# Usage: scripts/build-example-data.sh            (about a minute; replaces the runs in results/fabrics/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=results/fabrics
SRC=$OUT/sources
for run in "$OUT"/*/run.json; do [[ -e $run ]] && rm -rf "$(dirname "$run")"; done

import() {  # import TOOL FILE RUN_ID PROFILE URL [benchfab import options...]
    local tool=$1 file=$2 run_id=$3 profile=$4 url=$5
    shift 5
    "$PY" -m benchfab import "$tool" "$file" --results "$OUT" --run-id "$run_id" --profile "$profile" \
        --source "$url" "$@"
}

# InfiniBand
import nccl-tests "$SRC/nccl-tests-150-ib-hdr-allreduce.txt" ib-hdr-allreduce ib-hdr \
    https://github.com/NVIDIA/nccl-tests/issues/150 --fabric ib --workload all_reduce_perf --hosts node-1,node-2 \
    --name ib-hdr-allreduce
import perftest "$SRC/ucx-8852-ib-read-bw.txt" ib-cn-read-bw ib-cn https://github.com/openucx/ucx/issues/8852 \
    --hosts cn3,cn2 --name ib-cn-read-bw
# RoCE: two DGX Spark, one report before and one after setting MTU 9000 (a real before/after pair)
import nccl-tests "$SRC/spark-pr103-roce-allreduce-first.txt" roce-spark-allreduce-1 roce-spark \
    https://github.com/NVIDIA/dgx-spark-playbooks/pull/103 --fabric roce --name spark-allreduce
import nccl-tests "$SRC/spark-pr103-roce-allreduce-mtu9000.txt" roce-spark-allreduce-2 roce-spark \
    https://github.com/NVIDIA/dgx-spark-playbooks/pull/103 --fabric roce --name spark-allreduce
import nccl-tests "$SRC/spark-issue25-roce-allgather-16g.txt" roce-spark-allgather roce-spark \
    https://github.com/NVIDIA/dgx-spark-playbooks/issues/25 --fabric roce --name spark-allgather
import perftest "$SRC/perftest-273-roce-write-bw-postlist.txt" roce-ib0-write-bw roce-ib0 \
    https://github.com/linux-rdma/perftest/issues/273 --name roce-ib0-write-bw
# soft-RoCE (rxe0 in this project's VM lane, tests/rdma/data/README.md)
# (client and server in the one VM: --hosts names it twice)
import perftest tests/rdma/data/ib_write_bw_client.txt softroce-write-bw softroce-rxe \
    tests/rdma/data/README.md --name softroce --hosts softroce-vm,softroce-vm
import perftest tests/rdma/data/ib_write_lat_client.txt softroce-write-lat softroce-rxe \
    tests/rdma/data/README.md --name softroce --hosts softroce-vm,softroce-vm

# This project's runs, made now on this host
"$PY" scripts/example_pairs.py "$OUT" local-tcp-pairs > /dev/null
for i in 1 2 3; do
    "$PY" -m benchfab run rdma_write_bw --transport tcp -s 64K -n 3000 --results "$OUT" \
        --run-id "local-tcp-history-$i" > /dev/null
done
# Logs and owner files of this host's processes are not part of the dataset (paths, pids).
rm -rf "$OUT"/*/logs "$OUT"/*/.owner
"$PY" -m benchfab runs --results "$OUT"
