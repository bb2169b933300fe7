"""JUnit XML, benchfab's one writer of it: verdicts as testsuites that CI systems count and
show. A comparison's keys (compare/outputs.py) and a second pass's nodes and links
(diagnosis.py) are each one <testsuite>; a file holds one or both in its <testsuites>."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .untrusted import for_xml

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
    """One <testsuite>. Every text goes through for_xml: names come from specs, reports and the
    store, and a control character (an escape sequence, a NUL) would make a file XML parsers
    refuse; ElementTree escapes <, > and & itself, and a newline in an attribute as &#10;."""
    cases = list(cases)
    el = ET.Element("testsuite", {
        "name": for_xml(name), "tests": str(len(cases)), "failures": str(sum(c.outcome == "failure" for c in cases)),
        "errors": "0", "skipped": str(sum(c.outcome == "skipped" for c in cases)), "time": "0"})
    for c in cases:
        case = ET.SubElement(el, "testcase", {"classname": for_xml(c.classname), "name": for_xml(c.name), "time": "0"})
        if c.outcome == "failure":
            ET.SubElement(case, "failure", {"type": for_xml(c.kind), "message": for_xml(c.message)}).text = for_xml(c.detail,
                                                                                                          lines=True)
        elif c.outcome == "skipped":
            ET.SubElement(case, "skipped", {"message": for_xml(c.message)})
        else:
            ET.SubElement(case, "system-out").text = for_xml(c.message, lines=True)
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
