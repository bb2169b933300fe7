"""A fake Kubernetes cluster the real ``kubernetes`` client talks to over real HTTP.

One module per role, wired together by :class:`FakeCluster` (``cluster.py``):

- ``apiserver.py``: a threading HTTP/1.1 server with the core/v1 and custom-resource
  paths benchfab uses; list and watch with resourceVersion (a watch from a
  compacted version gets an ERROR 410 event, like kube-apiserver), label and
  field selectors (``selectors.py``), create/get/patch (merge and JSON patch,
  ``patch.py``)/delete and delete-collection, pod logs (follow streams while the
  process runs), events.
- ``store.py``: the objects, their resourceVersions and the watch history.
- ``scheduler.py``: binds pending pods to nodes that are Ready, not cordoned, match
  the nodeSelector, tolerate the taints and have the requested extended
  resources left (allocatable minus the requests of bound, unfinished pods);
  otherwise writes a FailedScheduling event in kube-scheduler's wording.
- ``kubelet.py``: checks the Multus networks exist (else FailedCreatePodSandBox),
  writes the network-status annotation (SR-IOV style device-info for NADs
  tied to a VF resource), then runs the container's command as a real local
  process with the pod's env (fieldRef values resolved), serves its output
  as the pod log, and reports the exit; activeDeadlineSeconds is enforced.
- Faults: ``inject(method, path_regex, status | "reset", times)`` answers
  requests with 429/500/410 or drops the connection; ``compact()`` forgets
  watch history so resumes get 410 Gone.

- ``netsim.py`` / ``simcluster.py``: the simulated cluster with real links: one network
  namespace per node (veth into a bridge, its own address), tc-shaped NICs and links,
  nftables drops; the kubelet runs each node's pods inside its namespace, the API server
  listens on the bridge (``SimCluster.start(n)``; ``scripts/simcluster.sh up N`` / ``down``).

Differences from a real cluster, on purpose (outside the netns simulation): every pod's IP is 127.0.0.1 (the
processes share this host), "python" in a command is this interpreter, and
pods get KUBECONFIG pointing at this server instead of a service-account token.

Tests import it as a package: ``from tests.fakecluster import FakeCluster, seed_nodes``
(the repository root is on pytest's ``pythonpath``, see pyproject.toml).
"""

from __future__ import annotations

from .apiserver import KINDS, NAMESPACED, APIServer, Fault, Handler
from .cluster import SHARED, SRIOV, FakeCluster, seed_nodes
from .kubelet import ROOT, STATIC, Kubelet
from .patch import json_patch, merge_patch
from .scheduler import Scheduler, quantity
from .selectors import match_fields, match_labels
from .store import Store, now_iso

__all__ = [
    "KINDS", "NAMESPACED", "ROOT", "SHARED", "SRIOV", "STATIC",
    "APIServer", "Fault", "FakeCluster", "Handler", "Kubelet", "Scheduler", "Store",
    "json_patch", "match_fields", "match_labels", "merge_patch", "now_iso", "quantity", "seed_nodes",
]
