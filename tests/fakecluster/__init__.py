"""A fake Kubernetes cluster the real ``kubernetes`` client talks to over real HTTP.

One module per role, wired together by :class:`FakeCluster` (``cluster.py``):

- ``apiserver.py``: a threading HTTP/1.1 server with the core/v1 and custom-resource
  paths benchfab uses; list and watch with resourceVersion (a watch from a
  compacted version gets an ERROR 410 event, like kube-apiserver), label and
  field selectors (``selectors.py``), create/get/patch (merge and JSON patch,
  ``patch.py``)/delete and delete-collection, pod logs (follow streams while the
  process runs), events.
- ``rbac.py``: authentication and authorization. A request needs ``Authorization: Bearer
  TOKEN`` (else 401 Unauthorized). The kubeconfig user's token (``FakeCluster.kubeconfig``)
  is a cluster-admin (group system:masters), so tests that do not care see no RBAC;
  ``token_for(ns, sa)`` / ``kubeconfig_for(ns, sa)`` give a service account's, and the kubelet
  gives each pod its own account's. Any other user gets what the Roles, ClusterRoles,
  RoleBindings and ClusterRoleBindings in the store grant, as kube-apiserver's RBAC authorizer
  decides it: verbs from the request (get/list/watch/create/update/patch/delete/
  deletecollection), apiGroups and resources with "*", subresources ("pods/log", "*/log"),
  resourceNames (a list/watch is allowed by them only with the field selector
  metadata.name=NAME; create and deletecollection never), subjects ServiceAccount / User /
  Group (system:serviceaccounts, system:serviceaccounts:NS, system:authenticated); refusals
  are 403 with kube-apiserver's message, before the resource is looked up (a CRD that is not
  installed is 403 without the right). Writing a Role, ClusterRole or binding (create,
  update) may not grant what the writer does not hold unless it may ``escalate`` / ``bind``.
  ``cluster.identities`` records who made each request, ``cluster.denied`` each refusal.
  kubectl (client-go) sends no credentials over plain HTTP, so it is given
  ``insecure_kubeconfig()``: a second port where a request without credentials is the
  admin, like kube-apiserver's old localhost --insecure-port.
- ``store.py``: the objects, their resourceVersions and the watch history.
- ``resources.py``: the resource types served (kinds, namespaced, custom, field selectors)
  and the documents besides objects: Status, discovery, kubectl's pod table.
- ``scheduler.py``: binds pending pods to nodes that are Ready, not cordoned, match
  the nodeSelector, tolerate the taints and have the requested extended
  resources left (allocatable minus the requests of bound, unfinished pods);
  otherwise writes a FailedScheduling event in kube-scheduler's wording.
- ``kubelet.py``: checks the Multus networks exist (else FailedCreatePodSandBox),
  writes the network-status annotation (SR-IOV style device-info for NADs
  tied to a VF resource), then runs the container's command as a real local
  process with the pod's env (fieldRef values resolved), serves its output
  as the pod log, and reports the exit; activeDeadlineSeconds is enforced.
- Faults (``faults.py``): ``inject(method, path_regex, status | "reset", times)`` answers
  requests with 429/500/410 or drops the connection; ``compact()`` forgets
  watch history so resumes get 410 Gone.

- ``netsim.py`` / ``simcluster.py``: the simulated cluster with real links: one network
  namespace per node (veth into a bridge, its own address), tc-shaped NICs and links,
  nftables drops; the kubelet runs each node's pods inside its namespace, the API server
  listens on the bridge (``SimCluster.start(n)``; ``scripts/simcluster.sh up N`` / ``down``).

Differences from a real cluster, on purpose (outside the netns simulation): every pod's IP is 127.0.0.1 (the
processes share this host), "python" in a command is this interpreter, and
pods get KUBECONFIG (this server, their service account's token) instead of a mounted token.
RBAC differs from kube-apiserver's in what is left out: no anonymous user (no token is 401,
even for /version), discovery and /version open to every authenticated user, no
ClusterRole aggregation, no impersonation, no non-resource URL rules, no
SelfSubjectAccessReview (``kubectl auth can-i``), escalation checked on create/update but
not on PATCH, and a token works whether or not its ServiceAccount object exists. A pod
is refused (403, the ServiceAccount admission plugin's wording) when the account it names
does not exist; "default" always does.

Tests import it as a package: ``from tests.fakecluster import FakeCluster, seed_nodes``
(the repository root is on pytest's ``pythonpath``, see pyproject.toml).
"""

from __future__ import annotations

from .apiserver import APIServer, Handler
from .cluster import SHARED, SRIOV, FakeCluster, seed_nodes
from .faults import Fault
from .kubelet import ROOT, STATIC, Kubelet
from .patch import json_patch, merge_patch
from .resources import KINDS, NAMESPACED
from .scheduler import Scheduler, quantity
from .selectors import match_fields, match_labels
from .store import Store, now_iso

__all__ = [
    "KINDS", "NAMESPACED", "ROOT", "SHARED", "SRIOV", "STATIC",
    "APIServer", "Fault", "FakeCluster", "Handler", "Kubelet", "Scheduler", "Store",
    "json_patch", "match_fields", "match_labels", "merge_patch", "now_iso", "quantity", "seed_nodes",
]
