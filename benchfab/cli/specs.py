"""init, validate, plan, render and preflight: the commands that write or read a spec without running it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..units import format_duration, format_size
from .common import OFFLINE_HELP, backend_for, cluster, cluster_args, command, output_arg, print_json

if TYPE_CHECKING:
    from ..placement import NodeInfo
    from ..spec import SweepSpec

def cmd_validate(args: argparse.Namespace) -> int:
    from ..backends.registry import load_spec

    if args.output == "json":
        from ..jsonout import validate_json

        return validate_json(args.spec, load_spec)
    spec = load_spec(args.spec)
    tests = spec.resolved_tests()
    print(f"{args.spec}: ok ({len(tests)} test entries, backend {spec.backend})")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..backends.registry import load_spec
    from ..sweep import make_plan
    from ..workloads import family_of

    spec = load_spec(args.spec)
    notes: list[str] = []
    where = ""
    if spec.backend == "kubernetes":
        # --nodes: offline; else the cluster; with no kubeconfig anywhere, offline on made-up nodes (noted).
        from ..backends.kubernetes.render import find_nodes, plan_on

        found = find_nodes(spec, args.nodes, cluster(args))
        notes, where = list(found.notes), f", placed {found.where}"
        if _outline_if_huge(args, spec, found.infos, notes, where):
            return 0
        plan = plan_on(spec, found)
    elif args.nodes:
        raise UsageError(f"--nodes is for backend: kubernetes specs; {args.spec} uses backend {spec.backend}",
                         hint="leave --nodes out: the local backend runs every rank on this host")
    else:
        plan = make_plan(spec, backend_for(spec, args))
    if args.output == "json":
        print_json({"spec": args.spec, "backend": spec.backend, "estimate_s": plan.estimate_s,
                    "notes": notes + list(plan.notes), "estimate_is_lower_bound": _adaptive(spec),
                    "tests": [_planned_json(rnd.index, t) for rnd in plan.rounds for t in rnd.tests]})
        return 0
    print(f"# plan for {args.spec}: {len(plan.tests)} test(s) in {len(plan.rounds)} round(s), "
          f"estimated {format_duration(plan.estimate_s)} on backend {spec.backend}{where}")
    for note in notes + list(plan.notes):
        print(f"# note: {note}")
    for line in plan.left_out_lines():
        print(f"# {line}")
    print(f"{'round':>5}  {'test id':<40} {'workload':<15} {'ranks':>5} {'sizes':<22} {'iters':>8} "
          f"{'in-place':<9} {'estimate':>9} {'timeout':>8}")
    for rnd in plan.rounds:
        for t in rnd.tests:
            s = t.spec
            sizes = f"{format_size(min(s.sizes))}..{format_size(max(s.sizes))} ({len(s.sizes)})"
            iters = family_of(s.workload).timing_label(s)
            place = "/".join("in" if p else "out" for p in s.in_place)
            print(f"{rnd.index:>5}  {t.test_id:<40} {s.workload:<15} {s.ranks:>5} {sizes:<22} {iters:>8} "
                  f"{place:<9} {format_duration(t.estimate_s):>9} {format_duration(t.timeout_s):>8}")
    return 0


# Above this many tests `plan` counts the plan instead of listing it (a 16,384-node all-pairs
# plan holds 134 M tests): per combination its rounds and tests, then the first rounds.
LIST_LIMIT = 20_000
FIRST_ROUNDS = 3


def _adaptive(spec: SweepSpec) -> bool:
    """Whether a test's rounds depend on its screen (adaptive all-pairs): the plan lists the screen only."""
    return any(t.placement.adaptive is not None for t in spec.resolved_tests())


def _outline_if_huge(args: argparse.Namespace, spec: SweepSpec, nodes: Sequence[NodeInfo], notes: list[str],
                     where: str) -> bool:
    """Print the plan's shape when it is too large to list (and say True), else nothing."""
    from ..costs import pod_costs
    from ..planshape import first_rounds, plan_shape
    from ..screen import adaptive_notes

    shapes = plan_shape(spec, nodes, pod_costs())
    total = sum(s.tests for s in shapes)
    if total <= LIST_LIMIT:
        return False
    rounds = sum(s.rounds for s in shapes)
    estimate = sum(s.estimate_s for s in shapes)
    first = first_rounds(spec, nodes, FIRST_ROUNDS, pod_costs())
    notes = notes + adaptive_notes(spec, nodes)  # the count is its screen's: say what may follow
    if args.output == "json":
        print_json({"spec": args.spec, "backend": spec.backend, "estimate_s": estimate, "notes": notes, "listed": False,
                    "estimate_is_lower_bound": _adaptive(spec),
                    "tests_total": total, "rounds_total": rounds,
                    "combinations": [{"test_id": s.test_id, "profile": s.profile, "pattern": s.pattern, "rounds": s.rounds,
                                      "tests": s.tests, "estimate_s": s.estimate_s} for s in shapes],
                    "tests": [_planned_json(rnd.index, t) for rnd in first for t in rnd.tests]})
        return True
    print(f"# plan for {args.spec}: {total:,} test(s) in {rounds:,} round(s), estimated {format_duration(estimate)} "
          f"on backend {spec.backend}{where}")
    print(f"# over {LIST_LIMIT:,} tests: counted, not listed; a sweep places each round as it reaches it")
    for note in notes:
        print(f"# note: {note}")
    print(f"{'combination':<40} {'profile':<12} {'pattern':<10} {'rounds':>8} {'tests':>12} {'estimate':>9}")
    for s in shapes:
        print(f"{s.test_id:<40} {s.profile:<12} {s.pattern:<10} {s.rounds:>8,} {s.tests:>12,} "
              f"{format_duration(s.estimate_s):>9}")
    for rnd in first:
        ids = [t.test_id for t in rnd.tests]
        print(f"round {rnd.index}: {len(ids):,} test(s): {', '.join(ids[:3])}" + (", ..." if len(ids) > 3 else ""))
    return True


def _planned_json(round_index: int, t: Any) -> dict[str, Any]:
    s = t.spec
    return {"round": round_index, "test_id": t.test_id, "name": s.name, "workload": s.workload, "profile": t.profile_name,
            "ranks": s.ranks, "hosts": list(t.hosts), "sizes": list(s.sizes), "in_place": list(s.in_place),
            "dtype": t.dtype, "redop": t.op, "estimate_s": t.estimate_s, "timeout_s": t.timeout_s,
            "rail": t.rail, "device": t.rail_device}


def cmd_render(args: argparse.Namespace) -> int:
    from ..backends.kubernetes.render import render
    from ..backends.registry import load_spec

    spec = load_spec(args.spec)
    if spec.backend != "kubernetes":
        raise UsageError(f"{args.spec} uses backend {spec.backend}; render prints Kubernetes manifests",
                         hint="set backend: kubernetes in the spec")
    if args.mpijob:
        from ..backends.kubernetes.render import render_mpijobs

        text, notes = render_mpijobs(spec, args.run_id or f"render-{spec.name}", args.nodes, cluster(args),
                                     source=args.spec)
    else:
        text, notes = render(spec, args.run_id or f"render-{spec.name}", args.nodes, cluster(args),
                             profile=args.profile, source=args.spec)
    if args.apply_verdicts:
        from ..backends.kubernetes.manifests import to_yaml
        from ..backends.kubernetes.node_marks import verdicts_rbac

        namespace = args.namespace or spec.namespace or "default"
        text += ("# ---- applying verdicts (diagnose --apply, sweep --apply-verdicts): the controller account "
                 f"{namespace}/benchfab-controller may get, list and patch nodes\n" + to_yaml(verdicts_rbac(namespace)))
    for note in notes:  # stdout stays pure YAML for kubectl apply -f -
        print(f"benchfab: note: {note}", file=sys.stderr)
    sys.stdout.write(text)
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from ..backends.kubernetes.preflight import run_preflight
    from ..backends.registry import load_spec

    spec = load_spec(args.spec) if args.spec else None
    return run_preflight(spec, cluster(args), sys.stdout, as_json=args.output == "json")


def add_spec_commands(sub: Any) -> None:
    """init, validate, plan, render and preflight: the commands that write or read a spec without running it."""
    from ..examples import add_init_parser  # benchfab init: the example specs that ship with benchfab

    add_init_parser(sub)
    v = command(sub, "validate", "check a sweep spec: every problem, one line each (file:line, field, fix)",
                "benchfab validate jobs/local.yaml")
    v.add_argument("spec", help="the sweep spec (YAML), e.g. jobs/local.yaml")
    output_arg(v)
    v.set_defaults(func=cmd_validate)

    pl = command(sub, "plan", "show the tests a sweep would run, its rounds, time estimate and timeouts",
                 "benchfab plan jobs/local.yaml", "benchfab plan jobs/ib-vs-roce.yaml --nodes 8")
    pl.add_argument("spec", help="the sweep spec (YAML)")
    pl.add_argument("--nodes", metavar="N|A,B,...", help=OFFLINE_HELP)
    output_arg(pl)
    cluster_args(pl)
    pl.set_defaults(func=cmd_plan)

    rd = command(sub, "render", "print the Kubernetes manifests of a sweep (kubectl apply -f - accepts them)",
                 "benchfab render jobs/ib-vs-roce.yaml --nodes a,b",
                 "benchfab render jobs/ib-vs-roce.yaml --profile ib-shared --nodes 8 | kubectl apply -f -")
    rd.add_argument("spec", help="a sweep spec with backend: kubernetes")
    rd.add_argument("--nodes", metavar="N|A,B,...", help=OFFLINE_HELP)
    rd.add_argument("--profile", metavar="NAME",
                    help="only this profile's pods (a sweep runs profiles one after another: apply one at a time)")
    rd.add_argument("--run-id", help="run id used in names and labels (default: render-<spec name>)")
    rd.add_argument("--apply-verdicts", action="store_true",
                    help="also the ClusterRole benchfab-verdicts (nodes get/list/patch) bound to the controller's "
                         "account, which diagnose --apply and sweep --apply-verdicts need (nothing else gets it)")
    rd.add_argument("--mpijob", action="store_true",
                    help="the nccl-tests tests as MPIJobs (kubeflow.org/v2beta1) for the MPI Operator, not benchfab's pods")
    cluster_args(rd)
    rd.set_defaults(func=cmd_render)

    pf = command(sub, "preflight", "check the Network Operator setup a sweep needs: pass/warn/fail with fixes "
                 "(exit 1 on a fail)", "benchfab preflight jobs/ib-vs-roce.yaml --context my-cluster")
    pf.add_argument("spec", nargs="?", help="a spec: its profiles' resources and networks are checked too")
    output_arg(pf)
    cluster_args(pf)
    pf.set_defaults(func=cmd_preflight)
