#!/usr/bin/env bash
# Set up benchfab in ./.venv: system packages (when root on Debian), torch, and
# benchfab itself in editable mode with its test extras. Safe to rerun: steps
# that are already done are quick.
#
#   scripts/setup.sh [--notebooks]
#   --notebooks              also install JupyterLab (the [notebooks] extra), to open
#                            notebooks/ with .venv/bin/jupyter lab notebooks/
#   BENCHFAB_NOTEBOOKS=1     the same as --notebooks
#   BENCHFAB_VENV=DIR        where the virtual environment goes (default .venv)
#   BENCHFAB_TORCH=SPEC      the torch to install when none is importable
#                            (default torch==2.13.0; on a GPU host, e.g. an
#                            existing CUDA build is kept as it is)
#   BENCHFAB_SKIP_APT=1      do not touch system packages
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${BENCHFAB_VENV:-.venv}
torch_spec=${BENCHFAB_TORCH:-torch==2.13.0}
notebooks=${BENCHFAB_NOTEBOOKS:-0}
for arg in "$@"; do
  case "$arg" in
    --notebooks) notebooks=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument $arg (scripts/setup.sh --help lists them)" >&2; exit 2 ;;
  esac
done

apt_install() {
  # Only what is missing, only as root on a Debian-like system.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${BENCHFAB_SKIP_APT:-}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing system packages: ${missing[*]} (install them with apt-get as root)" >&2
    return 0
  fi
  echo "setup: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

if command -v dpkg >/dev/null; then
  # python3-venv: a fresh Debian python cannot make venvs without it.
  # libibverbs-dev: headers for the native RDMA hot path (benchfab._native).
  # perftest: the perftest engine's binaries (host tests read their --help); iperf3,
  # qperf: the peers benchmarks/tcp_vs_iperf3.py measures against. chromium: the tests
  # open report.html in it headless and check it renders without console errors.
  # iproute2, nftables: the simulated cluster's namespaces, veths, tc shaping and drops (tests/sim).
  # openmpi-bin, libopenmpi-dev: nccl-tests over mpirun across simulated nodes (an MPI stand-in
  # for all_reduce_perf is built with mpicc in tests/sim/test_mpi_launch.py).
  apt_install python3 python3-venv python3-dev gcc libibverbs-dev ibverbs-providers rdma-core perftest iperf3 qperf \
    chromium iproute2 nftables openmpi-bin libopenmpi-dev
fi

unpack_deb() {
  # A Debian package unpacked into build/debian/PKG (not installed: Debian's kubectl would
  # clash with a kubectl a machine may already have in /usr/bin). Its Version goes to
  # build/debian/PKG/VERSION, which scripts/check_tools.py reads.
  local pkg=$1 dest=build/debian/$1
  [ -s "$dest/VERSION" ] && return 0
  if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "setup: cannot unpack Debian's $pkg into $dest (no apt-get/dpkg-deb)" >&2
    return 0
  fi
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get download -qq "$pkg"; }); then
    echo "setup: apt-get download $pkg failed: tests that drive kubectl will fail (rerun setup as root)" >&2
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$dest" && mkdir -p "$dest"
  dpkg-deb -x "$tmp"/"$pkg"_*.deb "$dest"
  dpkg-deb -f "$tmp"/"$pkg"_*.deb Version > "$dest/VERSION"
  rm -rf "$tmp"
  echo "setup: unpacked Debian's $pkg $(cat "$dest/VERSION") into $dest" >&2
}
# kubernetes-client: Debian's kubectl, which tests/k8s drives against the fake API server
# (kubectl apply -f of benchfab render, and the clean-up command benchfab prints).
unpack_deb kubernetes-client

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv with $($python --version)" >&2
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)

if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  # The one long step: say what comes and how big, and let pip show its download lines
  # (with a progress bar on a terminal) instead of minutes of silence.
  echo "setup: pip install $torch_spec: the largest download of the setup, from about 0.2 GB" \
    "(a CPU-only build) to about 3 GB (a CUDA build with NVIDIA's libraries); pip shows each file" \
    "and its size as it downloads" >&2
  "$venv/bin/python" -m pip --disable-pip-version-check install "$torch_spec" >&2
fi
extras=test
if [ "$notebooks" = 1 ]; then
  extras=test,notebooks
fi
echo "setup: pip install -e .[$extras]" >&2
"${pip[@]}" install -e ".[$extras]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
"$venv/bin/python" -c "import benchfab, torch; print(f'setup: benchfab {benchfab.__version__}, torch {torch.__version__}', flush=True)" >&2
# A new shell does not have .venv/bin on its PATH: say how to reach the commands.
echo "setup: done. The benchfab command is $venv/bin/benchfab; to type just benchfab in this shell:" \
  "source $venv/bin/activate" >&2
if [ "$notebooks" = 1 ]; then
  echo "setup: open the notebooks with: $venv/bin/jupyter lab notebooks/$([ "$(id -u)" = 0 ] && echo ' --allow-root')" >&2
fi
