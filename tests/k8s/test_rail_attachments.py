"""A rank pod is ready only once Multus attached every rail's network, not only the profile's:
missing_attachments and the pod pool's checks on network-status annotations shaped as Multus
(k8s.v1.cni.cncf.io/network-status) and the SR-IOV CNI write them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchfab.backends.kubernetes import manifests as mf
from benchfab.backends.kubernetes.nccl import missing_attachments
from benchfab.backends.kubernetes.pods import attachment_problem, ready
from benchfab.spec import Profile, Rail

pytestmark = pytest.mark.k8s

DEFAULT_NET = {"name": "k8s-pod-network", "interface": "eth0", "ips": ["10.244.3.17"], "mac": "0a:58:0a:f4:03:11",
               "default": True, "dns": {}}


def vf(network: str, i: int) -> dict[str, Any]:
    """One SR-IOV VF's entry, as the SR-IOV CNI reports it through Multus."""
    return {"name": network, "interface": f"net{i + 1}", "ips": [f"192.168.{i}.7"], "mac": f"02:00:00:00:00:0{i}",
            "dns": {}, "device-info": {"type": "pci", "version": "1.1.0",
                                       "pci": {"pci-address": f"0000:{0x1b + i:02x}:00.2", "rdma-device": f"mlx5_{i + 8}"}}}


def status(*entries: dict[str, Any]) -> str:
    return json.dumps([DEFAULT_NET, *entries])


RAILS = Profile(fabric="ib", mode="sriov", rails=[Rail(resource=f"nvidia.com/rail{i}_vf", network=f"rail{i}-net")
                                                  for i in range(4)])


def pod(network_status: str | None, phase: str = "Running") -> dict[str, Any]:
    annotations = {mf.ANN_NETWORK_STATUS: network_status} if network_status is not None else {}
    return {"metadata": {"name": "p", "annotations": annotations}, "status": {"phase": phase}}


def plan(profile: Profile, slot: int = 0, ranks: int = 4) -> mf.PodPlan:
    return mf.PodPlan("rails", profile, "gpu-node-0", "gpu-node-0", slot, 1, 0, ranks)


def test_every_rail_attached_is_ready_and_one_missing_names_its_rail() -> None:
    full = status(*(vf(f"bench/rail{i}-net", i) for i in range(4)))
    assert missing_attachments(full, plan(RAILS).rails, True, "bench") == []
    assert ready(pod(full), plan(RAILS), "bench")
    no_rail2 = status(*(vf(f"bench/rail{i}-net", i) for i in (0, 1, 3)))
    assert missing_attachments(no_rail2, plan(RAILS).rails, True, "bench") == [(2, "rail2-net")]
    assert not ready(pod(no_rail2), plan(RAILS), "bench")
    why = attachment_problem(pod(no_rail2), plan(RAILS), "p", "bench")
    assert why is not None and "lists no attachment for rail 2 (network rail2-net)" in why
    assert mf.ANN_NETWORK_STATUS in why and "kubectl describe pod p -n bench" in why
    # the profile's rail index, for a one-rank pod on slot 3: rail 3
    only_rail0 = pod(status(vf("bench/rail0-net", 0)))
    assert "for rail 3 (network rail3-net) (fix:" in str(attachment_problem(only_rail0, plan(RAILS, 3, 1), "p", "bench"))
    # not Running yet, or no annotation at all: not ready, and not (yet) an attachment problem
    assert not ready(pod(full, phase="Pending"), plan(RAILS), "bench")
    assert attachment_problem(pod(no_rail2, phase="Pending"), plan(RAILS), "p", "bench") is None
    assert "rail 0 (network rail0-net), rail 1" in str(attachment_problem(pod(None), plan(RAILS), "p", "bench"))


def test_a_nad_shared_by_rails_needs_one_entry_per_vf_on_sriov_and_one_on_shared() -> None:
    # Without rails: a 2-rank SR-IOV pod attaches the profile's NAD twice (one VF per rank).
    one_nad = Profile(fabric="roce", mode="sriov", resource="nvidia.com/cx7_vf", network="sriov-net")
    once = status(vf("bench/sriov-net", 0))
    twice = status(vf("bench/sriov-net", 0), vf("bench/sriov-net", 1))
    assert ready(pod(twice), plan(one_nad, ranks=2), "bench")
    assert missing_attachments(once, plan(one_nad, ranks=2).rails, True, "bench") == [(1, "sriov-net")]
    assert "lists no attachment for network sriov-net" in str(attachment_problem(pod(once), plan(one_nad, ranks=2), "p", "bench"))
    # The shared plugin: one attachment carries every HCA; a network named with its namespace matches too.
    shared = Profile(fabric="ib", mode="shared", resource="rdma/shared_ib", network="other/ipoib",
                     rails=[Rail(hca=f"mlx5_{i}") for i in range(4)])
    assert ready(pod(status({"name": "other/ipoib", "interface": "net1", "ips": ["10.1.0.7"], "dns": {}})),
                 plan(shared), "bench")
    assert not ready(pod(status({"name": "bench/ipoib", "interface": "net1", "dns": {}})), plan(shared), "bench")
    # a profile without a network needs only Running
    assert ready(pod(None), plan(Profile(fabric="tcp"), ranks=1), "bench")
