#!/bin/bash
# Fetch, on a host that reaches PyPI and a Debian mirror, what scripts/gpu-lane.sh needs
# on an offline GPU host whose Python already holds torch, numpy, pandas, pyarrow,
# matplotlib, PyYAML, pytest and cuda-bindings (as the NVIDIA images do):
#   .whl/   pydantic and its compiled core, for that host's CPython (default 3.12)
#   .debs/  libibverbs (headers, library, libnl) to build benchfab._native there
# Both folders are ignored by git; copy them along with the tree.
#
#   scripts/gpu-lane-prep.sh [PYTHON_VERSION]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pyver=${1:-3.12}
py=python3
[ -x "$root/.venv/bin/python" ] && py=$root/.venv/bin/python
cd "$root"
rm -rf .whl .debs
mkdir -p .whl .debs
# Versions as resolved here, so the set is consistent (pydantic pins pydantic-core).
pins=$("$py" -m pip show pydantic pydantic-core annotated-types typing-inspection 2>/dev/null |
       awk '/^Name:/{n=$2} /^Version:/{print n "==" $2}')
[ -n "$pins" ] || pins="pydantic pydantic-core annotated-types typing-inspection"
plat=()
for n in 17 24 27 28 31 34; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
# shellcheck disable=SC2086
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
  --implementation cp "${plat[@]}" --platform manylinux2014_x86_64 -d .whl $pins
(cd .debs && apt-get download -q libibverbs1 libibverbs-dev libnl-3-200 libnl-route-3-200 >/dev/null)
echo "gpu lane: $(ls .whl | wc -l) wheels in .whl, $(ls .debs | wc -l) packages in .debs"
