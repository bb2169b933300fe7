"""``benchfab render SPEC``: the manifests a sweep would create, as YAML.

With ``--nodes a,b,c`` it works offline (every node assumed to have room);
otherwise it reads the cluster's inventory and places the tests for real.
The output is what ``kubectl apply -f -`` accepts: the headless Service, then
one agent pod per (profile, node, slot). Profiles run one after another in a
sweep, so apply one profile at a time (``-l benchfab.io/profile=NAME``).
"""

from __future__ import annotations

from typing import Any

from ..placement import NodeInfo, plan_kubernetes
from ..spec import SweepSpec
from . import manifests as mf
from .client import ClusterOptions
from .inventory import MAX_SLOTS, gpus_per_rank, hugepages_mib_per_rank


def render_objects(spec: SweepSpec, run_id: str, nodes: list[str] | None = None,
                   options: ClusterOptions | None = None) -> list[dict[str, Any]]:
    options = options or ClusterOptions()
    profiles = spec.resolved_profiles()
    if nodes:
        infos = [NodeInfo(n, slots={p: MAX_SLOTS for p in profiles}, labels={"hostname": n}) for n in nodes]
        namespace = options.namespace or spec.namespace or "default"
    else:
        from .backend import KubernetesBackend

        backend = KubernetesBackend(spec, options)
        infos = backend.nodes()
        namespace = backend.namespace
    plan = plan_kubernetes(spec, infos)
    hostnames = {n.name: n.labels.get("hostname", n.name) for n in infos}
    deadline = int(spec.kubernetes.active_deadline or max(3600.0, 3 * plan.estimate_s + spec.kubernetes.start_timeout + 600))
    slots = sorted({(t.profile_name, n, s) for t in plan.tests for n, s in t.members},
                   key=lambda k: (list(profiles).index(k[0]), k[1], k[2]))
    objects = [mf.service_manifest(run_id, namespace)]
    for profile, node, slot in slots:
        pod = mf.PodPlan(profile, profiles[profile], node, hostnames[node], slot, gpus_per_rank(spec, profile),
                         hugepages_mib_per_rank(spec, profile))
        objects.append(mf.pod_manifest(run_id, namespace, str(spec.image), pod, spec.kubernetes, deadline))
    return objects


def render(spec: SweepSpec, run_id: str, nodes: list[str] | None = None, options: ClusterOptions | None = None) -> str:
    return mf.to_yaml(render_objects(spec, run_id, nodes, options))
