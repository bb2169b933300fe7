#!/bin/bash
# Run a command inside a throw-away VM that has a real soft-RoCE (rdma_rxe) device.
#
#   scripts/softroce-vm.sh setup                         # once per machine, as root
#   scripts/softroce-vm.sh [--rw DIR]... [--mem 2G] [--cpus 2] -- COMMAND [ARGS...]
#
# Why a VM: CI and dev machines have no RDMA NIC, and containers cannot load rdma_rxe.
# virtme-ng boots the distro kernel (which ships rdma_rxe) under qemu with this machine's
# filesystem visible read-only, so venvs and build trees here work inside unchanged.
# Each --rw DIR is shared read-write; results come back through it.
#
# Inside, before COMMAND runs: rxe0 = RoCE v2 over a dummy netdev with 10.77.0.1/24,
# and BENCHFAB_RDMA_DEVICE=rxe0, BENCHFAB_RDMA_IP=10.77.0.1 are exported.
# Loopback on rxe0 works (server and client both on rxe0, client connects to 10.77.0.1);
# two rxe devices in one namespace do not talk to each other, so we create only one.
#
# The exit status of COMMAND is the exit status of this script: the guest writes it to a
# private shared folder because vng does not reliably propagate a guest exit code.
# KVM is not used (nested KVM hangs on these machines): qemu emulates (TCG), so expect
# ~30-60 s to boot and RDMA rates of a few hundred Mb/s. Correctness and same-VM ratios only.
set -euo pipefail

# virtme-ng lives in its own venv: Debian's python refuses system-wide pip installs
# (PEP 668), and the tool must not depend on the project's venv.
root=$(cd "$(dirname "$0")/.." && pwd)
vm_venv=${BENCHFAB_VM_VENV:-$root/.venv-vm}
vng="$vm_venv/bin/vng"
# vng starts virtme-run, qemu and busybox through PATH. Give it only what setup put in
# place (this venv and the folders Debian's packages install into), so a copy installed
# by hand in /usr/local/bin or ~/.local/bin can neither stand in for a missing install
# step nor shadow the packaged one. scripts/check_tools.py checks the same PATH.
SYSTEM_PATH=/usr/sbin:/usr/bin:/sbin:/bin
vm_path="$vm_venv/bin:$SYSTEM_PATH"

# kmod: modprobe rdma_rxe in the guest (the guest runs this machine's programs).
APT_PACKAGES=(linux-image-amd64 qemu-system-x86 iproute2 kmod rdma-core ibverbs-providers
              ibverbs-utils perftest libibverbs-dev busybox-static python3 python3-venv)

setup() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    # dpkg-query is quick; only touch apt when something is missing (keeps re-runs fast).
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if [ ! -x "$vng" ] || [ ! -x "$vm_venv/bin/virtme-run" ]; then
    # Debian's python3 (installed above), not whichever python3 the caller's PATH finds.
    [ -x "$vm_venv/bin/python" ] || /usr/bin/python3 -m venv "$vm_venv"
    "$vm_venv/bin/python" -m pip install -q --disable-pip-version-check virtme-ng
  fi
  BENCHFAB_VM_VENV="$vm_venv" /usr/bin/python3 "$root/scripts/check_tools.py" vm
  echo "softroce-vm: setup complete"
}

if [ "${1:-}" = setup ]; then setup; exit 0; fi

rw=()
mem=2G
cpus=2
while [ $# -gt 0 ]; do
  case "$1" in
    --rw) mkdir -p "$2"; rw+=(--rwdir "$(cd "$2" && pwd)"); shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--rw DIR]... [--mem 2G] [--cpus 2] -- COMMAND [ARGS...]  |  $0 setup" >&2; exit 2; }

kernel=$(ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$kernel" ] || { echo "softroce-vm: no kernel in /boot: run '$0 setup' first" >&2; exit 2; }
[ -x "$vng" ] || { echo "softroce-vm: virtme-ng missing ($vng): run '$0 setup' first" >&2; exit 2; }

# Private state folder: holds the guest script and the guest's exit status.
state=$(mktemp -d /tmp/softroce-vm.XXXXXX)
trap 'rm -rf "$state"' EXIT
inner="$state/inner.sh"
{
  echo 'set -e'
  echo "export PATH=$SYSTEM_PATH"
  echo 'modprobe rdma_rxe'
  echo 'ip link set lo up'
  echo 'ip link add bfdummy0 type dummy'
  echo 'ip addr add 10.77.0.1/24 dev bfdummy0'
  echo 'ip link set bfdummy0 up'
  echo 'rdma link add rxe0 type rxe netdev bfdummy0'
  echo 'export BENCHFAB_RDMA_DEVICE=rxe0 BENCHFAB_RDMA_IP=10.77.0.1'
  echo "cd $(printf '%q' "$PWD")"
  echo 'set +e'
  printf '%q ' "$@"; echo
  echo "echo \$? > $(printf '%q' "$state/rc")"
} > "$inner"
chmod +x "$inner"

set +e
PATH="$vm_path" "$vng" --run "$kernel" --user root --disable-kvm --memory "$mem" --cpus "$cpus" \
  --rwdir "$state" "${rw[@]}" --exec "bash $inner"
vng_rc=$?
set -e
if [ -s "$state/rc" ]; then
  exit "$(cat "$state/rc")"
fi
# No status file: the guest never reached the end (boot failure, rxe setup failure, crash).
echo "softroce-vm: the VM did not report an exit status (vng exit $vng_rc)" >&2
[ "$vng_rc" -ne 0 ] && exit "$vng_rc"
exit 1
