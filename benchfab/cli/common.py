"""What every command group of ``benchfab`` shares: the subcommand with its examples and
exit codes, the -o and cluster options, the help texts, and the lazy bridges to jsonout
and the backend registry (imported on use: ``benchfab --help`` loads neither pandas nor
pydantic)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import EXIT_CODES_HELP

RESULTS_HELP = "results directory (default: results)"
RUN_HELP = "run id, unique prefix, directory or 'latest'"
OFFLINE_HELP = ("kubernetes specs: place offline on N made-up nodes or on these node names instead of reading "
                "the cluster (tests that do not fit are left out with a note); without --nodes and without "
                "any kubeconfig: offline on as many nodes as the spec's largest test needs")


def command(sub: Any, name: str, what: str, *examples: str, exit_codes: str = EXIT_CODES_HELP) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does, shows examples and lists the exit codes
    (``exit_codes``: the command's own, where 1 means something of its own)."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) + "\n\n" + exit_codes
    parser: argparse.ArgumentParser = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".",
                                                     epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def output_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("text", "json"), default="text", help="text (default) or json")


def cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (backend: kubernetes), like kubectl")
    g.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    g.add_argument("--context", help="kubeconfig context")
    g.add_argument("-n", "--namespace", help="namespace for the pods (default: the spec's, then the context's)")


def positive(kind: type, minimum: float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum:g}")
        return value
    return parse


def cluster(args: argparse.Namespace) -> Any:
    from ..backends.kubernetes.client import ClusterOptions

    return ClusterOptions(kubeconfig=getattr(args, "kubeconfig", None), context=getattr(args, "context", None),
                          namespace=getattr(args, "namespace", None))


def backend_for(spec: Any, args: argparse.Namespace) -> Any:
    """The spec's backend; one that reaches a cluster takes --kubeconfig/--context/--namespace."""
    from ..backends.registry import make_backend

    return make_backend(spec, cluster(args))


def print_json(data: Any) -> None:
    from ..jsonout import print_json as emit

    emit(data)


def text_to_stderr(enabled: bool) -> Any:
    from ..jsonout import text_to_stderr as redirect

    return redirect(enabled)


def with_run_document(cmd: Any) -> Any:
    from ..jsonout import with_run_document as wrap

    return wrap(cmd)
