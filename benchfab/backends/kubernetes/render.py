"""``benchfab render SPEC`` / ``benchfab plan SPEC`` on Kubernetes: where the nodes come from, and the manifests.

Nodes, in this order:

1. ``--nodes N`` (N made-up nodes ``node-0`` .. ``node-<N-1>``) or ``--nodes a,b,c``
   (these node names): offline, every node assumed to have room for every test.
   Tests that cannot be placed on them (a group of 8 on 2 nodes) are left out with
   a note instead of failing the command.
2. A cluster configuration (``--kubeconfig``, ``--context``, ``$KUBECONFIG``,
   ``~/.kube/config`` or a pod's service account): the cluster's inventory, placed
   for real, exactly as ``benchfab sweep`` would. Its errors are errors.
3. No configuration at all: offline on as many made-up nodes as the spec's largest
   test needs (``default_node_count``), with a note saying so and how to reach the
   cluster instead.

The manifests are what ``kubectl apply -f -`` accepts: the headless Service, then
one agent pod per (profile, node, slot), each profile under a comment header. A
sweep runs its profiles one after another (it deletes one profile's pods before
the next profile's start: they may hold the same GPUs and NICs), so the pods of
different profiles are not meant to exist at once; ``--profile NAME`` prints one
profile's pods only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ... import planner
from ...costs import pod_costs
from ...errors import PlacementError, UsageError
from ...placement import NodeInfo
from ...planner import Plan
from ...spec import SweepSpec
from . import manifests as mf
from .client import ClusterOptions, cluster_configured, connect
from .gang import apply_gang, group_name
from .inventory import MAX_SLOTS, gpus_per_rank, hugepages_mib_per_rank, nodes_for_planner, read_inventory
from .options import kube_options
from .pods import pod_keys

SYNTHETIC_PREFIX = "node-"


@dataclass
class Nodes:
    """The nodes a render/plan places on, and how they were found."""

    infos: list[NodeInfo]
    namespace: str
    offline: bool
    notes: list[str] = field(default_factory=list)
    where: str = ""  # e.g. "offline on 8 made-up nodes (node-0..node-7)" or "the cluster's 12 usable node(s)"


def parse_nodes(value: str | None) -> int | list[str] | None:
    """``--nodes``: a count (``8``) or node names (``a,b,c``); None when not given."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        count = int(text)
        if count < 1:
            raise UsageError(f"--nodes {value}: needs at least one node", hint="e.g. --nodes 8 or --nodes a,b")
        return count
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise UsageError(f"--nodes {value!r}: no node names", hint="e.g. --nodes 8 or --nodes a,b")
    return names


def nodes_needed(spec: SweepSpec) -> int:
    """The fewest nodes on which every test of the spec can be placed (at least 2)."""
    need = 2
    for t in spec.resolved_tests():
        p = t.placement
        if p.pattern == "group":
            need = max(need, p.nodes)
        elif p.pattern == "k-groups":
            need = max(need, p.k or 2)
        elif p.pattern == "topology" and p.scope == "same-leaf":
            need = max(need, 4)  # two leaves of two nodes (made-up nodes are split into two leaves)
        elif p.pattern == "retest":
            named = {x for pair in p.suspects for x in pair} | set(p.good)
            need = max(need, len(named) + (0 if p.good else 1))
    return need


def _named_in_spec(spec: SweepSpec) -> list[str]:
    """Node names the spec itself mentions (retest suspects and partners): made-up nodes include them."""
    names: dict[str, None] = {}
    for t in spec.resolved_tests():
        for pair in t.placement.suspects:
            names.update(dict.fromkeys(pair))
        names.update(dict.fromkeys(t.placement.good))
    return list(names)


def offline_nodes(spec: SweepSpec, wanted: int | list[str]) -> list[NodeInfo]:
    """Made-up nodes with room for everything (MAX_SLOTS slots per profile).

    A count gives ``node-0`` ...; with ``nodes.topology_key(s)`` in the spec they are split
    into two leaves (``leaf-0``, ``leaf-1``) so same-leaf and cross-leaf tests place too.
    Named nodes have no leaf.
    """
    profiles = spec.resolved_profiles()
    if isinstance(wanted, int):
        names = _named_in_spec(spec)[:wanted]
        i = 0
        while len(names) < wanted:
            if f"{SYNTHETIC_PREFIX}{i}" not in names:
                names.append(f"{SYNTHETIC_PREFIX}{i}")
            i += 1
        two_leaves = bool(spec.nodes.leaf_keys()) and wanted >= 2
        leaves = [f"leaf-{i * 2 // wanted}" if two_leaves else None for i in range(wanted)]
    else:
        names, leaves = list(wanted), [None] * len(wanted)
    return [NodeInfo(n, leaf=leaf, slots={p: MAX_SLOTS for p in profiles}, labels={"hostname": n})
            for n, leaf in zip(names, leaves)]


def _describe(infos: list[NodeInfo], given: bool = False) -> str:
    names = [n.name for n in infos]
    shown = ",".join(names) if len(names) <= 4 else f"{names[0]}..{names[-1]}"
    return f"{len(names)} {'given' if given else 'made-up'} node(s) ({shown})"


def find_nodes(spec: SweepSpec, nodes: str | int | list[str] | None, options: ClusterOptions | None = None) -> Nodes:
    """The nodes to place on: --nodes, else the cluster, else (no configuration at all) made-up ones."""
    options = options or ClusterOptions()
    wanted = parse_nodes(nodes) if isinstance(nodes, str) else nodes
    offline_ns = options.namespace or spec.namespace or "default"
    if wanted:
        infos = offline_nodes(spec, wanted)
        where = f"offline on {_describe(infos, isinstance(wanted, list))}, each with room for every test"
        return Nodes(infos, offline_ns, True, where=where)
    if not cluster_configured(options):
        count = nodes_needed(spec)
        infos = offline_nodes(spec, count)
        note = (f"no Kubernetes configuration found ($KUBECONFIG unset, no ~/.kube/config, not in a pod): "
                f"placed offline on {_describe(infos)}, as many as the largest test of this spec needs; "
                "to use the cluster pass --kubeconfig FILE / --context NAME or set KUBECONFIG; "
                "to choose the offline nodes pass --nodes N or --nodes a,b,...")
        return Nodes(infos, offline_ns, True, [note],
                     where=f"offline on {_describe(infos)} (no Kubernetes configuration found)")
    # Only the inventory is read (as a sweep reads it): no pods, no watches.
    kube = connect(options, spec.namespace)
    infos = nodes_for_planner(spec, read_inventory(kube, spec))
    usable = sum(1 for n in infos if any(n.slots.values()))  # the plan names the others and why
    return Nodes(infos, kube.namespace, False, where=f"the cluster's {usable} usable node(s)")


def plan_on(spec: SweepSpec, found: Nodes) -> Plan:
    """The plan on the nodes found; offline, tests that cannot be placed are left out with a note."""
    try:
        return planner.plan(spec, found.infos, skip_unplaceable=found.offline, costs=pod_costs())
    except PlacementError as exc:
        if not found.offline:
            raise
        need = nodes_needed(spec)
        # More nodes only help when there are too few; otherwise the planner's own fix is the one.
        raise PlacementError(f"offline on {len(found.infos)} node(s): {exc.message}",
                             hint=f"pass more nodes (--nodes {need})" if len(found.infos) < need else exc.hint) from None


def render_objects(spec: SweepSpec, run_id: str, nodes: str | int | list[str] | None = None,
                   options: ClusterOptions | None = None, profile: str | None = None,
                   found: Nodes | None = None, plan: Plan | None = None) -> list[dict[str, Any]]:
    """The Service and the agents' Role and RoleBinding, then the pods of every profile (or of
    ``profile`` only), profile by profile."""
    return [obj for _, objs in _render_groups(spec, run_id, nodes, options, profile, found, plan)[0] for obj in objs]


def _render_groups(spec: SweepSpec, run_id: str, nodes: str | int | list[str] | None,
                   options: ClusterOptions | None, profile: str | None, found: Nodes | None,
                   plan: Plan | None) -> tuple[list[tuple[str | None, list[dict[str, Any]]]], Nodes, Plan]:
    profiles = spec.resolved_profiles()
    if profile is not None and profile not in profiles:
        raise UsageError(f"--profile {profile}: the spec has no such profile",
                         hint=f"one of: {', '.join(profiles)}")
    found = found or find_nodes(spec, nodes, options)
    plan = plan or plan_on(spec, found)
    hostnames = {n.name: n.labels.get("hostname", n.name) for n in found.infos}
    deadline = mf.pod_deadline_s(kube_options(spec), plan.estimate_s)
    slots = sorted({key for t in plan.tests for key in pod_keys(t)},
                   key=lambda k: (list(profiles).index(k[0]), k[1], k[2], k[3]))
    groups: list[tuple[str | None, list[dict[str, Any]]]] = [(None, [mf.service_manifest(run_id, found.namespace),
                                                                    mf.network_policy_manifest(run_id, found.namespace,
                                                                                              kube_options(spec))])]
    for pname in profiles:
        if profile is not None and pname != profile:
            continue
        pods = []
        for _, node, slot, ranks in (k for k in slots if k[0] == pname):
            pod = mf.PodPlan(pname, profiles[pname], node, hostnames[node], slot, gpus_per_rank(spec, pname),
                             hugepages_mib_per_rank(spec, pname), ranks)
            pods.append(mf.pod_manifest(run_id, found.namespace, str(spec.image), pod, kube_options(spec), deadline))
        if pods:
            # A profile's pods start as one gang (kubernetes.scheduling), its PodGroup first.
            groups.append((pname, apply_gang(pods, kube_options(spec).scheduling, group_name(run_id, pname, 1)) + pods))
    # The agents' access to their own pods (the run's Role names exactly these pods).
    names = [pod["metadata"]["name"] for _, objs in groups[1:] for pod in objs if pod["kind"] == "Pod"]
    groups[0][1].extend(mf.agent_access(run_id, found.namespace, names, kube_options(spec)))
    return groups, found, plan


def _shapes(pods: list[dict[str, Any]], gpu_resource: str) -> str:
    """The pod shapes of a profile, e.g. "16 pod(s) of 1 rank, 1 GPU; 8 pod(s) of 8 ranks, 8 GPUs"."""
    counts: dict[tuple[int, int], int] = {}
    for pod in pods:
        ranks = int(pod["metadata"]["labels"].get(mf.LABEL_RANKS, "1"))
        gpus = int(pod["spec"]["containers"][0].get("resources", {}).get("limits", {}).get(gpu_resource, "0"))
        counts[(ranks, gpus)] = counts.get((ranks, gpus), 0) + 1
    return "; ".join(f"{n} pod(s) of {r} rank{'s' if r > 1 else ''}, {g or 'no'} GPU{'s' if g != 1 else ''}"
                     for (r, g), n in sorted(counts.items()))


def render(spec: SweepSpec, run_id: str, nodes: str | int | list[str] | None = None,
           options: ClusterOptions | None = None, profile: str | None = None,
           source: str = "SPEC") -> tuple[str, list[str]]:
    """The manifests as YAML with a comment header per profile, and notes for stderr."""
    groups, found, plan = _render_groups(spec, run_id, nodes, options, profile, None, None)
    profiles = spec.resolved_profiles()
    rendered = [p for p, _ in groups if p is not None]
    notes = list(found.notes) + list(plan.notes)
    head = [f"# benchfab render {source}: run {run_id}, namespace {found.namespace}, placed {found.where}"]
    if len(rendered) > 1:
        head += ["# A sweep runs its profiles ONE AFTER ANOTHER: it deletes one profile's pods before the next",
                 "# profile's start (they use the same GPUs and NICs). Applying this whole file at once would",
                 "# ask each node for the pods of every profile together. Apply one profile at a time:"]
        head += [f"#   benchfab render {source} --profile {p} | kubectl apply -f -" for p in rendered]
        notes.append(f"{len(rendered)} profiles rendered ({', '.join(rendered)}): their pods are not meant to run at "
                     "once (a sweep runs profiles one after another); apply one at a time with --profile NAME")
    elif profile is not None:
        head.append(f"# profile {profile} only (--profile); the spec's profiles: {', '.join(profiles)}")
    if found.offline:
        head.append("# offline: node names are made up or given with --nodes; a sweep places on the cluster's inventory")
    parts = ["\n".join(head) + "\n"]
    for pname, objs in groups:
        if pname is not None:
            pr = profiles[pname]
            per_node: dict[str, int] = {}
            pods = [o for o in objs if o["kind"] == "Pod"]  # not the PodGroup (kubernetes.scheduling)
            for o in pods:
                node = o["metadata"]["labels"][mf.LABEL_NODE]
                per_node[node] = per_node.get(node, 0) + 1
            parts.append(
                f"# ---- profile {pname} ({pr.fabric}/{pr.mode}, resource {pr.resource or '-'}, network "
                f"{pr.network or '-'}): {len(pods)} pod(s) on {len(per_node)} node(s), up to "
                f"{max(per_node.values())} per node; {_shapes(pods, kube_options(spec).gpu_resource)}; "
                f"label {mf.LABEL_PROFILE}={pname}\n")
        parts.append(mf.to_yaml(objs))
    return "".join(parts), notes


def render_mpijobs(spec: SweepSpec, run_id: str, nodes: str | int | list[str] | None = None,
                   options: ClusterOptions | None = None, source: str = "SPEC") -> tuple[str, list[str]]:
    """``render --mpijob``: the spec's nccl-tests tests as MPIJobs (mpijob.py), and notes for stderr."""
    from .mpijob import mpijobs

    found = find_nodes(spec, nodes, options)
    plan = plan_on(spec, found)
    hostnames = {n.name: n.labels.get("hostname", n.name) for n in found.infos}
    jobs, notes = mpijobs(spec, run_id, found.namespace, plan, hostnames)
    head = (f"# benchfab render {source} --mpijob: run {run_id}, namespace {found.namespace}, placed {found.where}\n"
            "# One MPIJob (kubeflow.org/v2beta1) per nccl-tests test, for the MPI Operator; store the launcher's log\n"
            "# with: kubectl logs job/NAME-launcher > out.txt; benchfab import nccl-tests out.txt\n")
    return head + mf.to_yaml(jobs), list(found.notes) + list(plan.notes) + notes
