"""The spec's ``kubernetes:`` section: how the Kubernetes backend makes and runs pods.

Validated when a spec is loaded with the backends (benchfab.backends.registry), with
the spec's file:line wording; the backend's modules read it through ``kube_options``.
Imports only the spec, so the agent (which reads none of it) pays nothing more.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError

from ...errors import SpecError
from ...spec import EnvVars, Seconds, SpecSection, SweepSpec

SECTION = "kubernetes"


class Scheduling(SpecSection):
    """How the run's pods enter the cluster's queueing (benchfab.backends.kubernetes.gang):
    every pod a gang start creates is admitted with the others or not at all."""

    # spec.schedulerName of every agent pod (volcano, kai-scheduler, a scheduler-plugins build...).
    scheduler_name: str | None = Field(default=None, min_length=1, max_length=253)
    # A Kueue LocalQueue: the pods carry kueue.x-k8s.io/queue-name and Kueue's pod-group labels,
    # and start gated (schedulingGates) until Kueue admits the whole group.
    queue: str | None = Field(default=None, min_length=1, max_length=63)
    # A PodGroup of the gang's size next to the pods: Volcano's (scheduling.volcano.sh) or the
    # scheduler-plugins coscheduling one (scheduling.x-k8s.io), which KAI also reads.
    pod_group: Literal["volcano", "coscheduling"] | None = None


class NodeLock(SpecSection):
    """The cluster-wide lock on the run's nodes (benchfab.backends.kubernetes.lease)."""

    # wait: until the nodes are free (with progress); fail: at once, naming the holder; off: no lock.
    mode: Literal["wait", "fail", "off"] = "wait"
    duration: Seconds = Field(default=60.0, ge=5)  # a holder that stops renewing loses it after this
    wait_timeout: Seconds | None = Field(default=None, gt=0)  # mode wait: give up after this (None: never)


class KubeOptions(SpecSection):
    """How the Kubernetes backend makes and runs pods (all optional)."""

    start_timeout: Seconds = Field(default=300.0, gt=0)  # gang start: every pod Running + attached
    reuse_pods: bool = True  # one long-lived agent pod per (node, slot) for a profile's whole sweep
    # The agents' service account. None: each run makes its own, benchfab-agent-<run>, and
    # deletes it with the run, so concurrent runs' agents cannot read each other's pods
    # (their tasks carry the test secrets). A named account must exist; every run that
    # names it shares it.
    service_account: str | None = None
    gpu_resource: str = "nvidia.com/gpu"
    hostname_label: str = "kubernetes.io/hostname"
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: EnvVars = Field(default_factory=dict)  # extra env for every rank (NCCL_* tuning...)
    cpu: str | None = None  # requests of each rank pod
    memory: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    active_deadline: Seconds | None = Field(default=None, gt=0)  # pod lifetime cap; default from the plan
    master_port: int | None = Field(default=None, ge=1024, le=65535)  # default: varies per test
    force_net: bool = False  # set NCCL_NET=IB on ib/roce profiles: fail instead of falling back
    # /dev/shm (a memory emptyDir) of a pod with several ranks, for NCCL's SHM transport between
    # them (a container's default 64 MiB is too small); None: 1Gi per rank of the pod.
    shm_size: str | None = None
    scheduling: Scheduling = Field(default_factory=Scheduling)
    lock: NodeLock = Field(default_factory=NodeLock)


def kube_options(spec: SweepSpec) -> KubeOptions:
    """The spec's kubernetes: section (its defaults when it has none)."""
    section = spec.section(SECTION)
    try:
        return KubeOptions.model_validate(section if section is not None else {})
    except ValidationError as exc:  # only a spec read again without the backends (a stored run's)
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in (SECTION, *first["loc"]))
        raise SpecError(first["msg"], source=spec.source, field=where,
                        hint=f"benchfab validate {spec.source or 'SPEC'} names every problem") from None
