"""Gang scheduling: a gang start's pods enter the cluster's queue together (kubernetes.scheduling).

A test measures only once every one of its pods runs; pods admitted one by one by a busy
cluster hold GPUs while they wait for the rest, and two half-admitted runs can wait on each
other for ever. So the pods that one gang start creates (``PodPool.ensure``) form one group:

- ``scheduler_name``: ``spec.schedulerName`` of each pod (Volcano, KAI, a scheduler-plugins
  build), for a scheduler that gangs them;
- ``queue``: Kueue's plain-pod integration. Each pod carries the LocalQueue
  (``kueue.x-k8s.io/queue-name``), the group's name (``kueue.x-k8s.io/pod-group-name``)
  and size (annotation ``kueue.x-k8s.io/pod-group-total-count``), and is created with the
  scheduling gate ``kueue.x-k8s.io/admission``, which Kueue removes from all of the group's
  pods at once when it admits the group (its quota fits them all). benchfab adds the gate
  itself, as Kueue's webhook would: without Kueue the pods stay gated, and the start
  timeout says so, rather than starting outside the queue;
- ``pod_group``: a PodGroup of the group's size (``minMember``) next to the pods:
  ``volcano`` (scheduling.volcano.sh/v1beta1, pod annotation ``scheduling.k8s.io/group-name``)
  or ``coscheduling`` (scheduling.x-k8s.io/v1alpha1, pod label ``scheduling.x-k8s.io/pod-group``,
  the scheduler-plugins one, which KAI also reads).

While a group waits, the start shows how far admission got ("queued: 3 of 4 pods
admitted"); ``admitted`` counts a pod that is no longer gated and has been bound to a node.
"""

from __future__ import annotations

import sys
from typing import Any

from ...errors import BackendError
from .client import Kube
from .options import Scheduling

KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
KUEUE_GROUP = "kueue.x-k8s.io/pod-group-name"
KUEUE_TOTAL = "kueue.x-k8s.io/pod-group-total-count"
KUEUE_GATE = "kueue.x-k8s.io/admission"
VOLCANO_GROUP = "scheduling.k8s.io/group-name"
COSCHEDULING_GROUP = "scheduling.x-k8s.io/pod-group"
POD_GROUP_API = {"volcano": ("scheduling.volcano.sh", "v1beta1"), "coscheduling": ("scheduling.x-k8s.io", "v1alpha1")}


def group_name(run_id: str, profile: str, number: int) -> str:
    """The name of a run's ``number``-th gang (a label value: at most 63 characters)."""
    from .manifests import label_value

    return label_value(f"bf-{run_id}-{profile}-{number}")[:63].rstrip("-.")


def apply_gang(pods: list[dict[str, Any]], options: Scheduling, group: str) -> list[dict[str, Any]]:
    """Mark ``pods`` (manifests, changed in place) as one gang; the PodGroup to create first, if any."""
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        if options.scheduler_name:
            spec["schedulerName"] = options.scheduler_name
        if options.queue:
            meta["labels"].update({KUEUE_QUEUE: options.queue, KUEUE_GROUP: group})
            meta.setdefault("annotations", {})[KUEUE_TOTAL] = str(len(pods))
            spec["schedulingGates"] = [{"name": KUEUE_GATE}]
        if options.pod_group == "volcano":
            meta.setdefault("annotations", {})[VOLCANO_GROUP] = group
        elif options.pod_group == "coscheduling":
            meta["labels"][COSCHEDULING_GROUP] = group
    if options.pod_group is None or not pods:
        return []
    api_group, version = POD_GROUP_API[options.pod_group]
    first = pods[0]["metadata"]
    run_labels = {k: v for k, v in first["labels"].items() if k.startswith(("app.kubernetes.io/", "benchfab.io/run"))}
    return [{"apiVersion": f"{api_group}/{version}", "kind": "PodGroup",
             "metadata": {"name": group, "namespace": first["namespace"], "labels": run_labels},
             "spec": {"minMember": len(pods)}}]


def admitted(pod: dict[str, Any] | None) -> bool:
    return pod is not None and not pod["spec"].get("schedulingGates") and bool(pod["spec"].get("nodeName"))


def queue_note(pods: list[dict[str, Any] | None], options: Scheduling) -> str | None:
    """"queued: 3 of 4 pods admitted (...)" while a gang waits for admission; None otherwise."""
    if not (options.queue or options.pod_group or options.scheduler_name) or not pods:
        return None
    done = sum(admitted(p) for p in pods)
    if done == len(pods):
        return None
    by = (f"Kueue queue {options.queue}" if options.queue else
          f"{options.pod_group} PodGroup" if options.pod_group else f"scheduler {options.scheduler_name}")
    return f"queued: {done} of {len(pods)} pods admitted ({by})"


def gated_reason(pod: dict[str, Any] | None, options: Scheduling) -> str | None:
    """Why a pod that did not start in time never got to a node: still gated, or None."""
    gates = [str(g.get("name")) for g in (pod or {}).get("spec", {}).get("schedulingGates") or []]
    if not gates:
        return None
    name = (pod or {}).get("metadata", {}).get("name", "?")
    queue = f" (queue {options.queue})" if options.queue else ""
    return (f"pod {name} was still gated by {', '.join(gates)}: its group was not admitted{queue} within "
            "kubernetes.start_timeout (fix: check the queue's quota and pending workloads, kubectl get workloads; "
            "that Kueue's pod integration is on; or raise kubernetes.start_timeout)")


def create_pod_group(kube: Kube, body: dict[str, Any]) -> tuple[str, str, str]:
    """Create a PodGroup (a custom resource: its CRD must be installed); what deletes it later."""
    api_group, version = body["apiVersion"].split("/")
    name = body["metadata"]["name"]
    kube.call(f"create podgroup {name}", kube.custom.create_namespaced_custom_object, api_group, version,
              body["metadata"]["namespace"], "podgroups", body, ok_conflict=True)
    return api_group, version, name


def delete_pod_groups(kube: Kube, made: list[tuple[str, str, str]]) -> None:
    """Delete the run's PodGroups; one that cannot be is named on stderr with its kubectl line."""
    for api_group, version, name in made:
        try:
            kube.call(f"delete podgroup {name}", kube.custom.delete_namespaced_custom_object, api_group, version,
                      kube.namespace, "podgroups", name, ok_missing=True)
        except BackendError as exc:
            print(f"benchfab: left behind: podgroup {name} ({exc.message}); remove it with: kubectl delete "
                  f"podgroups.{api_group} {name} -n {kube.namespace}", file=sys.stderr, flush=True)
