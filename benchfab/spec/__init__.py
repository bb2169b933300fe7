"""The sweep spec: jobs/*.yaml turned into a typed, validated SweepSpec.

A spec has top-level settings, ``defaults`` applied to every test, named fabric
``profiles`` and a list of ``tests``. Validation is done by pydantic models with
``extra="forbid"``; every error is translated into one SpecError line in
benchfab's own words that names the file, the line and the field path, plus a
fix. All problems of a file are reported at once (SpecErrors). See docs/SPEC.md.

Callers import from ``benchfab.spec`` itself; the code lives in its modules.
"""

from __future__ import annotations

from .models import (
    BUILTIN_DEFAULTS,
    MAX_SIZES_PER_TEST,
    NAME_PATTERN,
    RESERVED_ENV,
    RESERVED_ENV_PREFIX,
    Device,
    DType,
    Engine,
    Fabric,
    KubeSettings,
    LeafScope,
    Memory,
    Mode,
    NodeSelection,
    Pattern,
    Placement,
    Profile,
    RdmaOptions,
    RedOp,
    Seconds,
    Size,
    SizeRange,
    SweepSpec,
    TestFields,
    TestSpec,
    Transport,
    Workload,
    load_spec,
    load_spec_text,
    spec_to_dict,
)

__all__ = [
    "BUILTIN_DEFAULTS",
    "MAX_SIZES_PER_TEST",
    "NAME_PATTERN",
    "RESERVED_ENV",
    "RESERVED_ENV_PREFIX",
    "DType",
    "Device",
    "Engine",
    "Fabric",
    "KubeSettings",
    "LeafScope",
    "Memory",
    "Mode",
    "NodeSelection",
    "Pattern",
    "Placement",
    "Profile",
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
