"""Label and field selectors, as the API server applies them to list, watch and delete-collection."""

from __future__ import annotations

import re
from typing import Any


def get_path(obj: Any, dotted: str) -> Any:
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in re.split(r",(?![^()]*\))", selector):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"([^\s!=]+)\s+(in|notin)\s+\((.*)\)", term):
            values = {v.strip() for v in m.group(3).split(",")}
            has = labels.get(m.group(1)) in values
            if has != (m.group(2) == "in"):
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        if not term:
            continue
        neg = "!=" in term
        k, v = term.replace("==", "=").split("!=" if neg else "=", 1)
        got = get_path(obj, k.strip())
        got_s = "" if got is None else str(got)
        if (got_s == v.strip()) == neg:
            return False
    return True


def query_true(query: dict[str, str], name: str) -> bool:
    """A boolean query parameter (watch, follow, allowWatchBookmarks) as the API server parses it."""
    return query.get(name) in ("true", "True", "1")
