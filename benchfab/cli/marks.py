"""verdicts apply / clear: a run's second-pass verdicts written onto the cluster's nodes as
labels and (node-level faults only) NoSchedule taints, and taken off again. Opt-in: nothing
here runs unless asked (``diagnose --apply`` and ``sweep --apply-verdicts`` call
``apply_run`` too)."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

from ..errors import UsageError
from .common import RESULTS_HELP, RUN_HELP, cluster, cluster_args, command, output_arg, print_json

DEFAULT_VALID_FOR = "24h"
VALID_FOR_HELP = (f"how long the applied labels and taints hold (default {DEFAULT_VALID_FOR}): an expired one is "
                  "cleared the next time verdicts are applied or cleared")


def valid_for(text: str) -> timedelta:
    from ..units import parse_duration

    try:
        seconds = parse_duration(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 24h, 90m): {exc}") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration above 0")
    return timedelta(seconds=seconds)


def apply_args(p: argparse.ArgumentParser, flag: str, what: str) -> None:
    g = p.add_argument_group("applying verdicts to nodes (opt-in; docs/KUBERNETES.md)")
    g.add_argument(flag, dest="apply_verdicts", action="store_true", help=what)
    g.add_argument("--valid-for", type=valid_for, default=valid_for(DEFAULT_VALID_FOR), metavar="DURATION",
                   help=VALID_FOR_HELP)


def check_appliable(spec: Any, flag: str) -> None:
    """Refuse before anything runs: verdicts go onto Kubernetes nodes only."""
    if spec.backend != "kubernetes":
        raise UsageError(f"{flag}: verdicts are applied to Kubernetes nodes, and this spec uses backend {spec.backend}",
                         hint=f"drop {flag}, or run the spec with backend: kubernetes")


def apply_run(path: Path, args: argparse.Namespace, out: TextIO, after_sweep: bool = False) -> dict[str, list[str]]:
    """Apply the verdicts stored with the run at ``path`` to its cluster's nodes; print each change.
    ``after_sweep``: a run whose second pass stored nothing (no test got that far) is a note, not bad input."""
    from ..backends.kubernetes.apply_verdicts import apply_diagnosis
    from ..backends.kubernetes.client import connect
    from ..diagnosis import load_diagnosis
    from ..runmeta import load_resume

    diagnosis = load_diagnosis(path)
    if diagnosis is None and after_sweep:
        print(f"# --apply-verdicts: run {path.name} stored no second-pass verdicts: nothing applied", file=out)
        return {"applied": [], "cleared": [], "missing": []}
    if diagnosis is None:
        raise UsageError(f"run {path.name} has no second-pass verdicts to apply (no diagnosis.json)",
                         hint=f"benchfab diagnose {path.name} --apply")
    spec, _text = load_resume(path.parent, path.name, purpose="diagnose")
    check_appliable(spec, "apply")
    changes = apply_diagnosis(connect(cluster(args), spec.namespace), diagnosis, args.valid_for)
    for line in changes.lines() or [f"# run {path.name}: no node was measured clean or named by a node verdict: "
                                    "nothing applied"]:
        print(line, file=out)
    return changes.to_json()


def cmd_verdicts_apply(args: argparse.Namespace) -> int:
    from ..store import resolve_run_path

    path = resolve_run_path(args.run, args.results)
    changes = apply_run(path, args, sys.stderr if args.output == "json" else sys.stdout)
    if args.output == "json":
        print_json({"run_id": path.name, **changes})
    return 0


def cmd_verdicts_clear(args: argparse.Namespace) -> int:
    from ..backends.kubernetes.apply_verdicts import clear_marks
    from ..backends.kubernetes.client import connect

    changes = clear_marks(connect(cluster(args)), run=args.run, node=args.node)
    if args.output == "json":
        print_json(changes.to_json())
        return 0
    for line in changes.lines() or ["# no node carries a mark of benchfab's" + (" for that run" if args.run else "")
                                    + (f" on {args.node}" if args.node else "")]:
        print(line)
    return 0


def add_mark_commands(sub: Any) -> None:
    """verdicts apply / clear."""
    v = command(sub, "verdicts", "write a run's second-pass verdicts onto the cluster's nodes (labels "
                "benchfab.io/verdict=bad-node|bad-gpu|lossy|bad-nic|ok, a NoSchedule taint for node-level faults; "
                "never a cordon or drain), or take them off again",
                "benchfab verdicts apply latest --valid-for 12h", "benchfab verdicts clear --node gpu-node-7",
                "benchfab verdicts clear --run 20261201-0312")
    vsub = v.add_subparsers(dest="verdicts_command", required=True, metavar="ACTION")
    va = vsub.add_parser("apply", help="apply a run's stored verdicts (diagnosis.json) to its nodes",
                         description="Apply a run's stored second-pass verdicts to the nodes they name, and ok to "
                         "the nodes measured clean; print each node changed. Needs the benchfab-verdicts "
                         "ClusterRole (benchfab render SPEC --apply-verdicts).")
    va.add_argument("run", help=RUN_HELP)
    va.add_argument("--results", default="results", metavar="DIR", help=RESULTS_HELP)
    va.add_argument("--valid-for", type=valid_for, default=valid_for(DEFAULT_VALID_FOR), metavar="DURATION",
                    help=VALID_FOR_HELP)
    output_arg(va)
    cluster_args(va)
    va.set_defaults(func=cmd_verdicts_apply)
    vc = vsub.add_parser("clear", help="remove benchfab's verdict labels, annotations and taint from nodes",
                         description="Remove exactly what benchfab applied (its benchfab.io/ labels and annotations "
                         "and its benchfab.io/verdict taint; other labels and taints stay): from every node, or "
                         "those of one run, or one node. Expired marks are cleared too.")
    vc.add_argument("--run", metavar="RUN_ID", help="only the marks this run applied")
    vc.add_argument("--node", metavar="NODE", help="only this node's marks")
    output_arg(vc)
    cluster_args(vc)
    vc.set_defaults(func=cmd_verdicts_clear)
