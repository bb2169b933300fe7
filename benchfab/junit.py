"""JUnit XML, benchfab's one writer of it: verdicts as testsuites that CI systems count and
show. A comparison's keys (compare/outputs.py) and a second pass's nodes and links
(diagnosis.py) are each one <testsuite>; a file holds one or both in its <testsuites>."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "failure", "skipped"]


@dataclass(frozen=True)
class Case:
    """One testcase: a failure carries ``detail`` (its body) and ``kind`` (its type); a passed
    case's ``message`` goes to its system-out, so CI shows why it passed too."""

    classname: str
    name: str
    outcome: Outcome
    message: str
    kind: str = ""
    detail: str = ""


def suite(name: str, cases: Iterable[Case]) -> ET.Element:
    cases = list(cases)
    el = ET.Element("testsuite", {
        "name": name, "tests": str(len(cases)), "failures": str(sum(c.outcome == "failure" for c in cases)),
        "errors": "0", "skipped": str(sum(c.outcome == "skipped" for c in cases)), "time": "0"})
    for c in cases:
        case = ET.SubElement(el, "testcase", {"classname": c.classname, "name": c.name, "time": "0"})
        if c.outcome == "failure":
            ET.SubElement(case, "failure", {"type": c.kind, "message": c.message}).text = c.detail
        elif c.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": c.message})
        else:
            ET.SubElement(case, "system-out").text = c.message
    return el


def document(suites: Iterable[ET.Element]) -> str:
    """The XML text of a <testsuites> holding ``suites``, with their totals."""
    root = ET.Element("testsuites", {"name": "benchfab"})
    for s in suites:
        root.append(s)
    for total in ("tests", "failures", "skipped"):
        root.set(total, str(sum(int(s.get(total, "0")) for s in root)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
