"""A test's ``sweep_env``: one variant of the test per combination of the values, each
with its own name (the entry's name and the values, e.g. ``allreduce-0.ALGO-Ring.PROTO-LL``)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from .fields import NAME_PATTERN


def _tag(name: str, value: str) -> str:
    short = name.removeprefix("NCCL_").removeprefix("UCX_")
    return f"{short}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', value)}"


def env_variants(name: str, sweep_env: Mapping[str, Sequence[str]]) -> list[tuple[str, dict[str, str]]]:
    """(variant name, its settings) per combination, in the order the spec lists the values
    (the last variable changes fastest). Names stay valid and distinct: where the values do
    not fit a name (too long, or two differ only in characters a name cannot hold) the
    variants are numbered instead (``NAME.v0``, ``NAME.v1``...)."""
    if not sweep_env:
        return [(name, {})]
    names = list(sweep_env)
    combos = [dict(zip(names, values)) for values in itertools.product(*(sweep_env[n] for n in names))]
    readable = [".".join([name, *(_tag(k, v) for k, v in combo.items())]) for combo in combos]
    if len(set(readable)) == len(readable) and all(re.fullmatch(NAME_PATTERN, r) for r in readable):
        return list(zip(readable, combos))
    width = len(str(len(combos) - 1))
    stem = name[:62 - 2 - width]
    return [(f"{stem}.v{i:0{width}d}", combo) for i, combo in enumerate(combos)]
