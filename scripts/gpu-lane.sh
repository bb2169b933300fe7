#!/bin/bash
# The GPU lane: on a host with an NVIDIA GPU, build benchfab._native where the verbs
# headers are (or from .debs/), then run the tests marked gpu (tests/gpu: CUDA memory
# and its dma-buf export, the clear failure when GPU memory has no NIC to register
# with, a one-rank NCCL sweep with and without a CUDA graph, the multi-node pod shape
# with gpus_per_node: 1 and NCCL's INFO log of that real run parsed into the nccl_*
# columns, this host's PCIe topology from sysfs compared with `nvidia-smi topo -m`,
# engine: nccl-tests next to torch where all_reduce_perf is found, the verbs data check
# on GPU memory, DCGM's view of the GPUs where dcgmi or the exporter is here, else "not
# checked" and why: tests/gpu/test_gpu_health_lane.py) and the parser and no-GPU error tests, so a GPU host runs them too.
# Then, where this host has an RDMA NIC that takes GPU memory and a perftest built with
# CUDA, benchmarks/rdma_vs_perftest.py --memory cuda compares benchfab's native loops
# with perftest's on GPU memory and prints the ratios (else one line says what is
# missing). Exits with pytest's status, or 1 if the comparison failed; logs go to OUT_DIR.
#
#   scripts/gpu-lane.sh [OUT_DIR]          (default build/gpu-lane)
#
# BENCHFAB_GPU_LANE_ROUNDS: rounds of the comparison (default 3).
#
# Python: $BENCHFAB_PYTHON, else .venv/bin/python, else python3 (the one with torch).
# Offline hosts: run scripts/gpu-lane-prep.sh where pip works and bring .whl/ and .debs/;
# they are unpacked under a temporary folder, nothing is installed system-wide.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/build/gpu-lane}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
py=${BENCHFAB_PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONPATH=$root${PYTHONPATH:+:$PYTHONPATH}
if compgen -G ".whl/*.whl" >/dev/null; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" .whl/*.whl
  export PYTHONPATH=$PYTHONPATH:$work/site
fi
if compgen -G ".debs/*.deb" >/dev/null && [ ! -e /usr/include/infiniband/verbs.h ]; then
  for deb in .debs/*.deb; do dpkg-deb -x "$deb" "$work/rdma"; done
  lib=$(dirname "$(find "$work/rdma" -name 'libibverbs.so.1' | head -1)")
  # The -dev package's libibverbs.so is an absolute link into /usr: point it here.
  ln -sf "$lib/libibverbs.so.1" "$lib/libibverbs.so"
  export BENCHFAB_VERBS_INCLUDE=$work/rdma/usr/include
  export LIBRARY_PATH=$lib${LIBRARY_PATH:+:$LIBRARY_PATH}
  export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
{
  echo "# gpu lane on $(hostname) at $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi: not available"
  "$py" - <<'PY'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, cuda available {torch.cuda.is_available()}",
      f"nccl {'.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else '-'}")
try:
    import cuda.bindings as cb
    print(f"cuda-bindings {cb.__version__}")
except ImportError as exc:
    print(f"cuda-bindings: not importable ({exc})")
PY
  if [ -e "${BENCHFAB_VERBS_INCLUDE:-/usr/include}/infiniband/verbs.h" ]; then
    if BENCHFAB_REQUIRE_NATIVE=1 "$py" setup.py -q build_ext --inplace --build-temp "$work/build" \
         >"$out/native-build.log" 2>&1; then
      echo "benchfab._native built"
    else
      echo "benchfab._native did not build:"; tail -5 "$out/native-build.log"
    fi
  else
    echo "no verbs headers: benchfab._native not built (the NIC-side test will skip)"
  fi
  "$py" -c "from benchfab.native import native_status; print('native:', native_status())"
  "$py" -c "from benchfab.rdma import discover; print('rdma devices:', ', '.join(d.name for d in discover()) or 'none')" \
    2>&1 || echo "rdma devices: discovery failed"
  nvidia-smi topo -m 2>&1 || echo "nvidia-smi topo -m: not available"
  "$py" -c "from benchfab.workloads.nccl_tests_engine import binary_path; print('nccl-tests:', binary_path('allreduce') or 'not found (set BENCHFAB_NCCL_TESTS_DIR)')"
} 2>&1 | tee "$out/env.txt"
set +e
"$py" -m pytest tests/gpu tests/test_cuda_memory.py tests/test_nccl_log.py tests/test_pcitopo.py tests/test_gpu_health.py \
  tests/test_nccl_tests_output.py tests/test_nccl_tests_engine.py -v -s -rs -p no:cacheprovider \
  --junitxml "$out/junit.xml" 2>&1 | tee "$out/pytest.log"
rc=${PIPESTATUS[0]}
# The latency comparison's GPU-memory variant. Exit 3 from the benchmark: this host
# cannot run it (its "skipped:" line says why), which is not a failure of the lane.
"$py" benchmarks/rdma_vs_perftest.py --memory cuda --rounds "${BENCHFAB_GPU_LANE_ROUNDS:-3}" 2>&1 \
  | tee "$out/rdma_vs_perftest.txt"
brc=${PIPESTATUS[0]}
set -e
case $brc in
  0) echo "gpu lane: GPU-memory comparison with perftest done (ratios above, in $out/rdma_vs_perftest.txt)" ;;
  3) echo "gpu lane: GPU-memory comparison with perftest not run on this host (reason above)" ;;
  *) echo "gpu lane: GPU-memory comparison with perftest FAILED (exit $brc; output in $out/rdma_vs_perftest.txt)"
     [ "$rc" -ne 0 ] || rc=1 ;;
esac
echo "gpu lane: exit $rc (log in $out)"
exit "$rc"
