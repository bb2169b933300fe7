"""The spec's pydantic models, the built-in defaults and how a test is resolved.

Every model forbids unknown keys; the field types and the names a field accepts
come from ``fields``. ``SweepSpec.resolved_tests`` applies ``defaults`` and
BUILTIN_DEFAULTS to each test entry, giving the TestSpecs a sweep runs.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from ..units import format_size
from ..workloads import family_of
from ..workloads.catalog import Memory, Transport
from .base import SpecSection as SpecSection  # re-exported: every section's base
from .base import _Model
from .expect import ExpectFields
from .fields import (
    MAX_SIZES_PER_TEST,
    NAME_PATTERN,
    Device,
    DType,
    Engine,
    EnvVars,
    Fabric,
    LeafScope,
    Mode,
    Pattern,
    Rate,
    RedOp,
    Seconds,
    Size,
    SweepEnv,
    TestEnv,
    Workload,
    _in_place,
    _Invalid,
    _one_or_many,
    _show,
    _sizes,
)
from .rules import Adaptive
from .rules import SecondPassRules as SecondPassRules  # re-exported: SweepSpec.second_pass
from .variants import env_variants


class SizeRange(_Model):
    """``{min, max, factor}`` (geometric, like nccl-tests -b/-e/-f) or ``{min, max, step}``."""

    min: Size
    max: Size
    factor: int | None = Field(default=None, ge=2)
    step: Size | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> SizeRange:
        if self.min > self.max:
            raise _Invalid(f"min ({format_size(self.min)}) is larger than max ({format_size(self.max)})",
                           "swap min and max")
        if self.min < 1:
            raise _Invalid(f"min must be at least 1 byte, got {self.min}", "set min: 1 or more, e.g. min: 8")
        if self.factor is not None and self.step is not None:
            raise _Invalid("factor and step are both given",
                           "keep factor: for a geometric sweep (8, 16, 32...) or step: for a linear one")
        return self

    def expand(self) -> list[int]:
        factor = self.factor if self.factor is not None else (None if self.step else 2)
        sizes: list[int] = []
        size = self.min
        while size <= self.max:
            sizes.append(size)
            if len(sizes) > MAX_SIZES_PER_TEST:
                break
            size = size * factor if factor else size + (self.step or 1)
        return sizes


class Placement(_Model):
    """Where a test's ranks go. The local backend runs every rank on this host."""

    pattern: Pattern = "local"
    nodes: int = Field(default=1, ge=1)
    gpus_per_node: int | None = Field(default=None, ge=1)
    k: int | None = Field(default=None, ge=2)
    allow_sharing: bool = False
    # Kubernetes backend (see docs/KUBERNETES.md):
    rails: int | None = Field(default=None, ge=1)  # group: one group per rail (slot) instead of one over all
    scope: LeafScope = "any"  # topology: pairs inside a leaf, across leaves, or any
    max_rounds: int | None = Field(default=None, ge=1)  # cut long patterns (all-pairs on many nodes)
    suspects: list[tuple[str, str]] = Field(default_factory=list)  # retest: pairs that looked bad
    good: list[str] = Field(default_factory=list)  # retest: known-good partners (default: every other node)
    # all-pairs / ring / k-groups / topology: find suspects after the pass, retest them against
    # known-good nodes and store verdicts (rules: the spec's second_pass; docs/DIAGNOSIS.md).
    second_pass: bool = False
    # all-pairs: screen first (ring / k-groups), then all-pairs among the nodes it flags and a sample.
    adaptive: Adaptive | None = None

    @model_validator(mode="after")
    def _second_pass_pattern(self) -> Placement:
        if self.second_pass and self.pattern not in SECOND_PASS_PATTERNS:
            raise _Invalid(f"second_pass needs a pattern that tests many node sets, not {self.pattern}",
                           f"use pattern: {' / '.join(SECOND_PASS_PATTERNS)}, or drop second_pass")
        if self.adaptive is not None and self.pattern != "all-pairs":
            raise _Invalid(f"adaptive narrows an all-pairs test, the pattern is {self.pattern}",
                           "use pattern: all-pairs with adaptive, or drop adaptive")
        if self.adaptive is not None and (self.rails or self.allow_sharing):
            raise _Invalid(f"adaptive with {'rails' if self.rails else 'allow_sharing'} is not supported (its screen "
                           "and focus are whole-node pairs)", "drop adaptive, or drop "
                           + ("rails" if self.rails else "allow_sharing"))
        return self


SECOND_PASS_PATTERNS = ("all-pairs", "ring", "k-groups", "topology")


class Rail(_Model):
    """One rail of a node: local rank i of every node uses rail i. The shared plugin names
    the HCA (and the resource that exposes it, when each HCA has its own); SR-IOV names
    the VF resource and the network (NAD) each VF attaches through. A bare string is an HCA."""

    hca: str | None = None
    resource: str | None = None  # default: the profile's resource
    network: str | None = None  # default: the profile's network


def _rail(value: object) -> object:
    return {"hca": value} if isinstance(value, str) else value


class Profile(_Model):
    """How a rank reaches the fabric: labels for records plus what a pod must request."""

    fabric: Fabric = "loopback"
    mode: Mode = "none"
    resource: str | None = None
    network: str | None = None
    hca: str | None = None
    # The node's rails in rank order; a pod of G ranks requests rails[0:G] (see docs/KUBERNETES.md).
    rails: list[Annotated[Rail, BeforeValidator(_rail)]] = Field(default_factory=list)
    # RoCE: the GID every rank of the profile uses (NCCL_IB_GID_INDEX, and the verbs tests'
    # GID unless a test sets rdma.gid_index); None: NCCL (>= 2.21.5) and benchfab pick
    # the RoCE v2 IPv4 GID themselves.
    gid_index: int | None = Field(default=None, ge=0)
    env: EnvVars = Field(default_factory=dict)  # extra env for its ranks
    # The fabric's line rate per NIC (400Gbit, 200Mbit): what the time estimate of a Kubernetes
    # sweep assumes; None: the fabric's usual rate (fabrics.line_rate_of).
    line_rate: Rate | None = None


class RdmaOptions(_Model):
    """Verbs knobs of the point-to-point workloads; defaults follow perftest."""

    device: str | None = None  # e.g. mlx5_0 or rxe0; None: the first device with an ACTIVE port
    port: int = Field(default=1, ge=1)
    gid_index: int | None = Field(default=None, ge=0)  # None: the RoCE v2 IPv4 GID (RoCE), none (IB)
    mtu: Literal[0, 256, 512, 1024, 2048, 4096] = 0  # 0: the port's active MTU
    tx_depth: int | None = Field(default=None, ge=1, le=16384)  # None: 128 for bw, 1 for lat (-t)
    cq_mod: int | None = Field(default=None, ge=1, le=16384)  # None: perftest's rule (-Q)
    post_list: int = Field(default=1, ge=1, le=1024)  # -l
    max_inline: int | None = Field(default=None, ge=0, le=4096)  # None: 220 B write_lat, 236 send_lat, else 0 (-I)
    bidirectional: bool | None = None  # bw: both sides post at once (-b)
    qps: int | None = Field(default=None, ge=1, le=64)  # bw: QPs per side (-q)
    out_reads: int | None = Field(default=None, ge=1, le=255)  # READs outstanding per QP; None: the device's most (-o)
    cuda_device: int | None = Field(default=None, ge=0)  # GPU for memory: cuda*; None: the one nearest the HCA


class NodeSelection(_Model):
    selector: str | None = None
    topology_key: str | None = None
    # A multi-level topology, outermost first (e.g. [block, leaf]): a node's leaf is its
    # values of all of them, so leaf "l1" of block "b1" and of block "b2" differ.
    topology_keys: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_topology(self) -> NodeSelection:
        if self.topology_key and self.topology_keys:
            raise _Invalid("topology_key and topology_keys are both given", "keep topology_keys (with K first)")
        return self

    def leaf_keys(self) -> list[str]:
        """The node labels that make a node's leaf, outermost first (empty: no topology)."""
        return [self.topology_key] if self.topology_key else list(self.topology_keys)


def _profile_names(value: dict[str, Profile]) -> dict[str, Profile]:
    for name in value:
        if not re.fullmatch(NAME_PATTERN, name):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:63] or "fabric"
            raise _Invalid(f"profile name {name!r} may only hold letters, digits, '_', '.' and '-' "
                           "(it becomes part of file names and pod labels)", f"rename it, e.g. {safe}")
    return value


class TestFields(_Model, ExpectFields):
    """Fields a test may set; ``defaults`` accepts the same ones."""

    name: str | None = Field(default=None, pattern=NAME_PATTERN)
    workload: Workload | None = None
    ranks: int | None = Field(default=None, ge=1, le=4096)
    sizes: Annotated[SizeRange | list[Size] | None, BeforeValidator(_sizes)] = None
    dtypes: Annotated[list[DType] | None, BeforeValidator(_one_or_many)] = None
    ops: Annotated[list[RedOp] | None, BeforeValidator(_one_or_many)] = None
    iterations: int | None = Field(default=None, ge=1, le=10_000_000)
    duration: Seconds | None = Field(default=None, gt=0, le=3600)
    warmup: int | None = Field(default=None, ge=0, le=1_000_000)
    in_place: Annotated[list[bool] | None, BeforeValidator(_in_place)] = None
    check: bool | None = None
    root: int | None = Field(default=None, ge=0)
    timeout: Seconds | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    device: Device | None = None
    cuda_graph: int | None = Field(default=None, ge=0, le=100_000)
    profiles: Annotated[list[str] | None, BeforeValidator(_one_or_many)] = None
    placement: Placement | None = None
    repeat: int | None = Field(default=None, ge=1, le=1000)
    transport: Transport | None = None
    engine: Engine | None = None
    memory: Memory | None = None
    rdma: RdmaOptions | None = None
    # NCCL_* / UCX_* settings for the test's ranks (over the profile's env), part of the measurement
    # key; sweep_env: one variant of the test per combination of its values (docs/SPEC.md).
    env: TestEnv | None = None
    sweep_env: SweepEnv | None = None

    @field_validator("sizes")
    @classmethod
    def _sizes_ok(cls, v: SizeRange | list[int] | None) -> SizeRange | list[int] | None:
        if isinstance(v, list):
            if not v:
                raise _Invalid("the list of sizes is empty", "give at least one size, e.g. sizes: [8, 1K, 1M]")
            if any(s < 1 for s in v):
                raise _Invalid("every size must be at least 1 byte, got 0", "remove the 0 or write a size such as 8")
            if len(v) > MAX_SIZES_PER_TEST:
                raise _Invalid(f"{len(v)} sizes; at most {MAX_SIZES_PER_TEST} per test",
                               "split the sizes over several tests")
        if isinstance(v, SizeRange) and len(v.expand()) > MAX_SIZES_PER_TEST:
            raise _Invalid(f"expands to more than {MAX_SIZES_PER_TEST} sizes",
                           "use a larger factor or step, or a narrower min..max")
        return v

    @field_validator("dtypes", "ops", "in_place", "profiles")
    @classmethod
    def _non_empty(cls, v: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        key = info.field_name or "the field"
        if v is not None and not v:
            example = {"dtypes": "[float32]", "ops": "[sum]", "in_place": "both", "profiles": "[loopback]"}.get(key, "[...]")
            raise _Invalid("the list is empty", f"give at least one value, e.g. {key}: {example}")
        if v is not None and len(set(v)) != len(v):
            repeated = next(x for i, x in enumerate(v) if x in v[:i])
            raise _Invalid(f"the list repeats {_show(repeated)}", "list each value once")
        return v


# What a test gets when neither it nor ``defaults`` says otherwise. Mirrors
# nccl-tests' spirit (20 timed iterations) with a longer warmup because a
# Python-driven loop needs a few ops to reach steady state.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "workload": "allreduce",
    "ranks": 2,
    "sizes": SizeRange(min=8, max=1 << 20, factor=2),
    "dtypes": ["float32"],
    "ops": ["sum"],
    "iterations": 20,
    "duration": None,
    "warmup": 5,
    "in_place": [False, True],
    "check": True,
    "root": 0,
    "timeout": None,
    "device": "auto",
    "cuda_graph": 0,
    "profiles": None,
    "placement": Placement(),
    "repeat": 1,
    "transport": "verbs",
    "engine": "native",
    "memory": "host",
    "rdma": RdmaOptions(),
    "env": {},
    "expect": None, "expect_by_node": [],  # benchfab.spec.expect.ExpectFields
}


class TestSpec(_Model, ExpectFields):
    """One fully resolved test entry (defaults applied)."""

    index: int
    name: str
    workload: Workload
    ranks: int
    sizes: list[int]
    dtypes: list[str]
    ops: list[str]
    iterations: int | None
    duration: float | None
    warmup: int
    in_place: list[bool]
    check: bool
    root: int
    timeout: float | None
    device: Device
    cuda_graph: int
    profiles: list[str]
    placement: Placement
    repeat: int
    transport: Transport = "verbs"
    engine: Engine = "native"
    memory: Memory = "host"
    rdma: RdmaOptions = Field(default_factory=RdmaOptions)
    env: dict[str, str] = Field(default_factory=dict)  # the defaults', the test's, then its sweep_env variant's


class SweepSpec(_Model):
    """A validated sweep: what ``benchfab sweep`` runs."""

    version: Literal[1] = 1
    name: str = Field(default="sweep", pattern=NAME_PATTERN)
    description: str = ""
    # One of the backends of benchfab.backends.registry (the loader checks it); a backend's own
    # settings are the section named after it (kubernetes: ...), see ``section``.
    backend: str = Field(default="local", pattern=NAME_PATTERN)
    results_dir: str = "results"
    namespace: str | None = None
    image: str | None = None
    profiles: Annotated[dict[str, Profile], AfterValidator(_profile_names)] = Field(default_factory=dict)
    nodes: NodeSelection = Field(default_factory=NodeSelection)
    second_pass: SecondPassRules = Field(default_factory=SecondPassRules)
    defaults: TestFields = Field(default_factory=TestFields)
    tests: list[TestFields] = Field(min_length=1)
    source: str | None = None

    def section(self, name: str) -> Any:
        """The spec's section for backend ``name`` (e.g. ``kubernetes:``), validated by that backend's
        options model when the spec was loaded with the backends; None when the spec has none."""
        return None if name in SweepSpec.model_fields else getattr(self, name, None)

    def resolved_profiles(self) -> dict[str, Profile]:
        return dict(self.profiles) or {"loopback": Profile(fabric="loopback", mode="none")}

    def resolved_tests(self) -> list[TestSpec]:
        """Apply defaults; the spec loader has already checked the combination is valid."""
        return [variant for i, t in enumerate(self.tests) for variant in _variants(self, _resolve(self, i, t), t)]


def _variants(spec: SweepSpec, resolved: TestSpec, test: TestFields) -> list[TestSpec]:
    """The test once per combination of its sweep_env (the test's own, else the defaults')."""
    sweep = test.sweep_env if test.sweep_env is not None else spec.defaults.sweep_env
    return [resolved.model_copy(update={"name": name, "env": {**resolved.env, **combo}})
            for name, combo in env_variants(resolved.name, sweep or {})]


def _resolve(spec: SweepSpec, index: int, test: TestFields) -> TestSpec:
    merged: dict[str, Any] = dict(BUILTIN_DEFAULTS)
    for layer in (spec.defaults, test):
        for key in layer.model_fields_set:
            value = getattr(layer, key)
            if value is not None:
                merged[key] = value
    sizes = merged["sizes"]
    size_list = sizes.expand() if isinstance(sizes, SizeRange) else sorted(set(sizes))
    # iterations and duration are two ways of saying how long to time a size:
    # the most specific layer that says either wins.
    for layer in (test, spec.defaults):
        if layer.duration is not None:
            merged["iterations"] = None
            break
        if layer.iterations is not None:
            merged["duration"] = None
            break
    timing_given = any(layer.iterations is not None or layer.duration is not None for layer in (test, spec.defaults))
    family_of(merged["workload"]).resolve(merged, timing_given)
    name = merged.get("name") or f"{merged['workload']}-{index}"
    if test.name is None:
        name = f"{merged['workload']}-{index}"
    profiles = merged["profiles"] or list(spec.resolved_profiles())
    # Every TestSpec field comes from the merged layers by name: a new test field is
    # added to the models and BUILTIN_DEFAULTS, not copied here by hand.
    pl = merged["placement"]
    if pl.gpus_per_node and pl.pattern in ("group", "local"):
        # A job of `nodes` nodes with gpus_per_node ranks each (torchrun's nnodes x nproc_per_node).
        merged["ranks"] = pl.nodes * pl.gpus_per_node
    merged["env"] = {**(spec.defaults.env or {}), **(test.env or {})}  # a test's env adds to the defaults'
    by_name = {k: merged[k] for k in TestSpec.model_fields if k in merged}
    return TestSpec(**{**by_name, "index": index, "name": name, "sizes": size_list, "profiles": profiles})


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """JSON-ready form of a spec for run.json (resolved tests included)."""
    data = spec.model_dump(mode="json", exclude={"tests", "defaults"})
    data["tests"] = [t.model_dump(mode="json") for t in spec.resolved_tests()]
    return data
