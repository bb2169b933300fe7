"""The example specs that ship with benchfab, and ``benchfab init``, which copies them out.

The repository's ``jobs/`` is their one copy: a wheel or sdist build copies
``jobs/*.yaml`` and ``jobs/k8s/*.yaml`` into the package as ``benchfab/examples/``
(setup.py's build step), and a source checkout (an editable install) reads ``jobs/``
itself. So a pip-installed user gets the same files the README runs:

    benchfab init --list          # the examples and what each is for
    benchfab init local           # writes jobs/local.yaml; then: benchfab sweep jobs/local.yaml
    benchfab init k8s/rbac --dir /tmp/bf   # writes /tmp/bf/k8s/rbac.yaml

An example is named by its path under ``jobs/`` without ``.yaml``. ``init`` never
overwrites a file that differs from the example (``--force`` does); one that is already
the same is left as it is.
"""

from __future__ import annotations

import argparse
import difflib
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EXIT_CODES_HELP, UsageError

PACKAGED = Path(__file__).with_name("examples")  # in a wheel / sdist install: copied from jobs/ at build time
CHECKOUT = Path(__file__).resolve().parent.parent / "jobs"  # a source checkout (editable install)
DEFAULT_DIR = "jobs"  # so that the README's commands (benchfab sweep jobs/local.yaml) work as written


@dataclass(frozen=True)
class Example:
    name: str  # its path under jobs/ without .yaml: local, k8s/rbac
    path: Path
    what: str  # the first sentence of its leading comment

    @property
    def relative(self) -> str:
        return f"{self.name}.yaml"


def examples_dir() -> Path:
    """Where the example specs are: the package's copy, else the source checkout's jobs/."""
    for where in (PACKAGED, CHECKOUT):
        if (where / "local.yaml").is_file():
            return where
    raise UsageError(f"no example specs in {PACKAGED} or {CHECKOUT}",
                     hint="reinstall benchfab (pip install benchfab from a wheel or sdist ships them)")


def _what(text: str) -> str:
    """The spec's description, else the first sentence of the file's leading comment, cut
    at a word to fit a line of ``init --list``."""
    stated = re.search(r"^description:\s*(.+)$", text, re.MULTILINE)
    words: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if not body or body.startswith(("benchfab ", "kubectl ")):
            break
        words.append(body)
    sentence = stated.group(1).strip() if stated else re.split(r"(?<=\.)\s", " ".join(words), maxsplit=1)[0]
    return textwrap.shorten(sentence, width=90, placeholder="...")


def examples() -> dict[str, Example]:
    """Every example, by name, in name order."""
    root = examples_dir()
    found = {}
    for path in sorted(root.rglob("*.yaml")):
        name = path.relative_to(root).with_suffix("").as_posix()
        found[name] = Example(name, path, _what(path.read_text(encoding="utf-8")))
    return dict(sorted(found.items()))


def write_example(name: str, out_dir: Path, force: bool = False) -> tuple[Path, str]:
    """Copy the example ``name`` to ``out_dir/NAME.yaml``; (its path, "written" or "unchanged")."""
    known = examples()
    example = known.get(name.removesuffix(".yaml"))
    if example is None:
        close = difflib.get_close_matches(name, list(known), n=1)
        raise UsageError(f"no example spec {name!r}",
                         hint=f"did you mean {close[0]}?" if close else "benchfab init --list shows them")
    text = example.path.read_text(encoding="utf-8")
    target = out_dir / example.relative
    if target.exists():
        if target.read_text(encoding="utf-8", errors="replace") == text:
            return target, "unchanged"
        if not force:
            raise UsageError(f"{target} exists and differs from the example {example.name}",
                             hint="keep yours, pass --force to overwrite it, or --dir DIR to write elsewhere")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target, "written"


def cmd_init(args: argparse.Namespace) -> int:
    if args.list or not args.names:
        known = examples()
        width = max(len(n) for n in known)
        for example in known.values():
            print(f"{example.name:<{width}}  {example.what}")
        if not args.list:
            print(f"\n# write one: benchfab init NAME (into {DEFAULT_DIR}/), e.g. benchfab init local")
        return 0
    out_dir = Path(args.dir)
    for name in args.names:
        target, how = write_example(name, out_dir, args.force)
        print(f"{target}: {how}" + ("" if how == "written" else " (already the same as the example)"))
    first = args.names[0].removesuffix(".yaml")
    if "/" not in first:  # a spec (the subfolders hold Kubernetes manifests: k8s/rbac)
        print(f"# next: benchfab validate {out_dir / first}.yaml, then benchfab sweep {out_dir / first}.yaml")
    return 0


def add_init_parser(sub: Any) -> None:
    examples_help = ("examples:\n  benchfab init --list\n  benchfab init local\n"
                     "  benchfab init ib-vs-roce k8s/rbac --dir my-specs\n\n")
    p = sub.add_parser("init", help="write an example spec (jobs/local.yaml...) to start from",
                       description="Write one of the example specs that ship with benchfab (the repository's "
                                   "jobs/) into jobs/, so that the README's commands run as written; without "
                                   "NAME, list them.",
                       epilog=examples_help + EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="an example: local, ib-vs-roce, k8s/rbac... (--list)")
    p.add_argument("--list", action="store_true", help="list the examples and what each is for")
    p.add_argument("--dir", default=DEFAULT_DIR, metavar="DIR", help=f"where to write (default: {DEFAULT_DIR})")
    p.add_argument("--force", action="store_true", help="overwrite a file that differs from the example")
    p.set_defaults(func=cmd_init)
