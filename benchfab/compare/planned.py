"""Whether a run's spec plans a measurement: what tells a key the new run lost (``missing``,
a regression) from one its spec no longer asks for (``removed``, none)."""

from __future__ import annotations

from typing import Any

from ..errors import BenchfabError
from ..spec import load_spec_text
from ..spec.models import TestSpec
from ..workloads.catalog import DTYPES
from ..workloads.collective_kinds import COLLECTIVES
from .judge import Planned
from .keys import Key, KeyData, key_dict


def _stored_sizes(test: TestSpec, dtype: str) -> set[int]:
    """The sizes a test's rows carry: a collective's requested sizes rounded to whole
    elements per rank as nccl-tests reports them (benchfab.workloads.collective_kinds), else as given."""
    collective = COLLECTIVES.get(test.workload)
    if collective is None or dtype not in DTYPES:
        return set(test.sizes)
    size = DTYPES[dtype]
    return {collective.size_for(collective.count_for(s, size, test.ranks), size, test.ranks) for s in test.sizes}


def spec_plans(meta: dict[str, Any]) -> Planned | None:
    """A check of the run's spec (run.json ``spec_text``): does it still have the test entry
    that measured a key, with the key's profile, in-place flag, element type, reduction and
    size? None when the run keeps no spec text it can read (an imported run): every key the
    base has and the run lacks is then lost data."""
    text = meta.get("spec_text")
    if not isinstance(text, str):
        return None
    try:
        tests = {t.name: t for t in load_spec_text(text).resolved_tests()}
    except BenchfabError:
        return None

    def planned(key: Key, data: KeyData) -> bool:
        k = key_dict(key)
        test = tests.get(data.test_name)
        if test is None or test.workload != k["workload"] or k["profile"] not in test.profiles:
            return False
        if bool(k["in_place"]) not in test.in_place:
            return False
        if k["dtype"] not in (*test.dtypes, "none") or k["redop"] not in (*test.ops, "none"):
            return False
        return int(k["size_bytes"]) in _stored_sizes(test, str(k["dtype"]))

    return planned
