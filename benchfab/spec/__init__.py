"""The sweep spec: jobs/*.yaml turned into a typed, validated SweepSpec.

A spec has top-level settings, ``defaults`` applied to every test, named fabric
``profiles`` and a list of ``tests``. Validation is done by pydantic models with
``extra="forbid"``; every error is translated into one SpecError line in
benchfab's own words that names the file, the line and the field path, plus a
fix. All problems of a file are reported at once (SpecErrors). See docs/SPEC.md.

The package is split by job; callers import from ``benchfab.spec`` itself:

- ``fields``: how one YAML value becomes a size, a duration, a list, and the
  names a field accepts (the Literals);
- ``models``: the pydantic models, the built-in defaults and how a test entry
  is resolved against them;
- ``wording``: pydantic's errors as SpecErrors in benchfab's words;
- ``load``: reading a spec file, and the checks that span fields.

The backends are above this package: ``benchfab.load_spec`` (benchfab.backends.registry)
hands them to ``load_spec`` here, which then checks ``backend:``, the backend's section
(``kubernetes:``) and its rules too. Called without them, as for a stored spec read
again, the section of the spec's own backend is kept as written.
"""

from __future__ import annotations

from ..workloads.catalog import Memory, Transport
from .fields import (
    MAX_SIZES_PER_TEST,
    NAME_PATTERN,
    RESERVED_ENV,
    RESERVED_ENV_PREFIX,
    Device,
    DType,
    Engine,
    EnvVars,
    Fabric,
    LeafScope,
    Mode,
    Pattern,
    RedOp,
    Seconds,
    Size,
    Workload,
)
from .load import BackendRules, load_spec, load_spec_text
from .models import (
    BUILTIN_DEFAULTS,
    SECOND_PASS_PATTERNS,
    NodeSelection,
    Placement,
    Profile,
    Rail,
    RdmaOptions,
    SizeRange,
    SpecSection,
    SweepSpec,
    TestFields,
    TestSpec,
    spec_to_dict,
)
from .rules import SCREEN_PATTERNS, Adaptive, SecondPassRules

__all__ = [
    "Adaptive",
    "SCREEN_PATTERNS",
    "BackendRules",
    "EnvVars",
    "SpecSection",
    "BUILTIN_DEFAULTS",
    "MAX_SIZES_PER_TEST",
    "NAME_PATTERN",
    "RESERVED_ENV",
    "RESERVED_ENV_PREFIX",
    "DType",
    "Device",
    "Engine",
    "Fabric",
    "LeafScope",
    "Memory",
    "Mode",
    "NodeSelection",
    "Pattern",
    "Placement",
    "SECOND_PASS_PATTERNS",
    "SecondPassRules",
    "Profile",
    "Rail",
    "RdmaOptions",
    "RedOp",
    "Seconds",
    "Size",
    "SizeRange",
    "SweepSpec",
    "TestFields",
    "TestSpec",
    "Transport",
    "Workload",
    "load_spec",
    "load_spec_text",
    "spec_to_dict",
]
