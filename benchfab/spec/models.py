"""The sweep spec: jobs/*.yaml turned into a typed, validated SweepSpec.

A spec has top-level settings, ``defaults`` applied to every test, named fabric
``profiles`` and a list of ``tests``. Validation is done by pydantic models with
``extra="forbid"``; every error is translated into one SpecError line in
benchfab's own words that names the file, the line and the field path, plus a
fix. All problems of a file are reported at once (SpecErrors). See docs/SPEC.md.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Collection
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import SpecError, SpecErrors
from ..units import format_size, parse_duration, parse_size
from ..workloads import Problem, family_of
from ..workloads.catalog import COLLECTIVES, Memory, Transport
from ..yamlpos import Path as YPath
from ..yamlpos import YamlPositionError, load_with_lines

MAX_SIZES_PER_TEST = 512


class _Invalid(ValueError):
    """A validator's complaint in benchfab's words plus its fix; pydantic keeps the
    exception in the error's ctx, and _wording reads the hint back."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


_SIZE_FIX = "write a byte count such as 8, 4K or 1M; K, M, G and T are binary, 1K = 1024"


def _negative(value: object) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value < 0
    return isinstance(value, str) and value.strip().startswith("-")


def _size(value: object) -> int:
    try:
        return parse_size(value)
    except ValueError:
        pass
    if _negative(value):
        raise _Invalid(f"sizes must be positive byte counts like 8, 4K or 1M, got {_show(value)}",
                       "drop the minus sign")
    if isinstance(value, float) or (isinstance(value, str) and re.match(r"^\s*\d*\.\d", value)):
        raise _Invalid(f"sizes are whole byte counts, got {_show(value)}",
                       "write a whole number of bytes, K or M, e.g. 1536 rather than 1.5K")
    raise _Invalid(f"{_show(value)} is not a size", _SIZE_FIX)


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        pass
    if _negative(value):
        raise _Invalid(f"a duration cannot be negative, got {_show(value)}",
                       "write a positive duration such as 30s, 500ms or 2m")
    raise _Invalid(f"{_show(value)} is not a duration",
                   "write a number with a unit such as 30s, 500ms, 2m or 1h")


def _one_or_many(value: object) -> object:
    # "dtypes: float32" is as natural to write as "dtypes: [float32]".
    return [value] if isinstance(value, (str, bool, int)) else value


def _in_place(value: object) -> object:
    if value == "both":
        return [False, True]
    if isinstance(value, str):
        raise _Invalid(f"expected true, false or both, got {_show(value)}", "write in_place: both, true or false")
    return _one_or_many(value)


def _sizes(value: object) -> object:
    # "sizes: 1M" means one size.
    return [value] if isinstance(value, (int, str)) and not isinstance(value, bool) else value


Size = Annotated[int, BeforeValidator(_size)]
Seconds = Annotated[float, BeforeValidator(_duration)]
# Spelled out for type checkers and pydantic; tests check they match workloads.WORKLOADS
# and workloads.catalog.DTYPES / REDOPS.
Workload = Literal["allreduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "rdma_write_bw", "rdma_write_lat"]
DType = Literal["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
RedOp = Literal["sum", "prod", "max", "min", "avg"]
Fabric = Literal["ib", "roce", "tcp", "loopback"]
Mode = Literal["shared", "sriov", "none"]
Device = Literal["auto", "cpu", "cuda"]
Engine = Literal["native", "perftest"]
Pattern = Literal["local", "group", "all-pairs", "ring", "k-groups", "topology", "retest"]
LeafScope = Literal["same-leaf", "cross-leaf", "any"]


_EXAMPLE_NUMBERS = {"ranks": 2, "iterations": 20, "warmup": 5, "timeout": 600, "duration": 10, "port": 1}


def _numbers_only(annotation: Any) -> bool:
    """Whether a field holds only numbers (and maybe null): YAML's true/yes must not
    pass for one, as pydantic's lax mode would let them (ranks: true ran 1 rank)."""
    if get_origin(annotation) is Annotated:
        return _numbers_only(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        kinds = [a for a in get_args(annotation) if a is not type(None)]
        return bool(kinds) and all(_numbers_only(a) for a in kinds)
    return annotation in (int, float)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or ""
        if isinstance(value, bool) and name in cls.model_fields and _numbers_only(cls.model_fields[name].annotation):
            raise _Invalid(f"{name} is a number, got {str(value).lower()}",
                           f"write a number, e.g. {name}: {_EXAMPLE_NUMBERS.get(name, 1)}")
        return value


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


# Environment variables benchfab itself sets in a rank pod or process (the downward
# API, the rendezvous, the test secret): kubernetes.env must not override them, or a
# rank would join the wrong test or read the wrong pod.
RESERVED_ENV: frozenset[str] = frozenset({
    "POD_NAME", "POD_NAMESPACE", "NODE_NAME", "POD_IP", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
    "MASTER_ADDR", "MASTER_PORT",
})
RESERVED_ENV_PREFIX = "BENCHFAB_"


def _env_names(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if name in RESERVED_ENV or name.startswith(RESERVED_ENV_PREFIX):
            raise _Invalid(f"{name} is set by benchfab for every rank and cannot be overridden",
                           f"remove {name}; variables named {RESERVED_ENV_PREFIX}* and "
                           f"{', '.join(sorted(RESERVED_ENV))} are reserved")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _Invalid(f"{name!r} is not a valid environment variable name",
                           "use letters, digits and '_', not starting with a digit")
    return value


class Profile(_Model):
    """How a rank reaches the fabric: labels for records plus what a pod must request."""

    fabric: Fabric = "loopback"
    mode: Mode = "none"
    resource: str | None = None
    network: str | None = None
    hca: str | None = None
    # RoCE: the GID every rank of the profile uses (NCCL_IB_GID_INDEX, and the verbs tests'
    # GID unless a test sets rdma.gid_index); None: NCCL (>= 2.21.5) and benchfab pick
    # the RoCE v2 IPv4 GID themselves.
    gid_index: int | None = Field(default=None, ge=0)
    env: Annotated[dict[str, str], AfterValidator(_env_names)] = Field(default_factory=dict)  # extra env for its ranks


class RdmaOptions(_Model):
    """Verbs knobs of the point-to-point workloads; defaults follow perftest."""

    device: str | None = None  # e.g. mlx5_0 or rxe0; None: the first device with an ACTIVE port
    port: int = Field(default=1, ge=1)
    gid_index: int | None = Field(default=None, ge=0)  # None: the RoCE v2 IPv4 GID (RoCE), none (IB)
    mtu: Literal[0, 256, 512, 1024, 2048, 4096] = 0  # 0: the port's active MTU
    tx_depth: int | None = Field(default=None, ge=1, le=16384)  # None: 128 for bw, 1 for lat (-t)
    cq_mod: int | None = Field(default=None, ge=1, le=16384)  # None: perftest's rule (-Q)
    post_list: int = Field(default=1, ge=1, le=1024)  # -l
    max_inline: int | None = Field(default=None, ge=0, le=4096)  # None: 220 B for lat, 0 for bw (-I)
    cuda_device: int | None = Field(default=None, ge=0)  # GPU for memory: cuda*; None: local rank mod GPUs


class NodeSelection(_Model):
    selector: str | None = None
    topology_key: str | None = None
    exclude: list[str] = Field(default_factory=list)


# Names that become parts of file names (rank logs, Parquet parts) and of Kubernetes
# labels: no '/', no spaces, nothing a path or a label would misread.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def _profile_names(value: dict[str, Profile]) -> dict[str, Profile]:
    for name in value:
        if not re.fullmatch(NAME_PATTERN, name):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:63] or "fabric"
            raise _Invalid(f"profile name {name!r} may only hold letters, digits, '_', '.' and '-' "
                           "(it becomes part of file names and pod labels)", f"rename it, e.g. {safe}")
    return value


class KubeSettings(_Model):
    """How the Kubernetes backend makes and runs pods (all optional)."""

    start_timeout: Seconds = Field(default=300.0, gt=0)  # gang start: every pod Running + attached
    reuse_pods: bool = True  # one long-lived agent pod per (node, slot) for a profile's whole sweep
    service_account: str = "benchfab-agent"
    gpu_resource: str = "nvidia.com/gpu"
    hostname_label: str = "kubernetes.io/hostname"
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: Annotated[dict[str, str], AfterValidator(_env_names)] = Field(default_factory=dict)  # extra env for every rank (NCCL_* tuning...)
    cpu: str | None = None  # requests of each rank pod
    memory: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    active_deadline: Seconds | None = Field(default=None, gt=0)  # pod lifetime cap; default from the plan
    master_port: int | None = Field(default=None, ge=1024, le=65535)  # default: varies per test
    force_net: bool = False  # set NCCL_NET=IB on ib/roce profiles: fail instead of falling back


class TestFields(_Model):
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
}


class TestSpec(_Model):
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


class SweepSpec(_Model):
    """A validated sweep: what ``benchfab sweep`` runs."""

    version: Literal[1] = 1
    name: str = Field(default="sweep", pattern=NAME_PATTERN)
    description: str = ""
    backend: Literal["local", "kubernetes"] = "local"
    results_dir: str = "results"
    namespace: str | None = None
    image: str | None = None
    profiles: Annotated[dict[str, Profile], AfterValidator(_profile_names)] = Field(default_factory=dict)
    nodes: NodeSelection = Field(default_factory=NodeSelection)
    kubernetes: KubeSettings = Field(default_factory=KubeSettings)
    defaults: TestFields = Field(default_factory=TestFields)
    tests: list[TestFields] = Field(min_length=1)
    source: str | None = None

    def resolved_profiles(self) -> dict[str, Profile]:
        return dict(self.profiles) or {"loopback": Profile(fabric="loopback", mode="none")}

    def resolved_tests(self) -> list[TestSpec]:
        """Apply defaults; the spec loader has already checked the combination is valid."""
        return [_resolve(self, i, t) for i, t in enumerate(self.tests)]


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
    return TestSpec(
        index=index,
        name=name,
        workload=merged["workload"],
        ranks=merged["ranks"],
        sizes=size_list,
        dtypes=merged["dtypes"],
        ops=merged["ops"],
        iterations=merged["iterations"],
        duration=merged["duration"],
        warmup=merged["warmup"],
        in_place=merged["in_place"],
        check=merged["check"],
        root=merged["root"],
        timeout=merged["timeout"],
        device=merged["device"],
        cuda_graph=merged["cuda_graph"],
        profiles=profiles,
        placement=merged["placement"],
        repeat=merged["repeat"],
        transport=merged["transport"],
        engine=merged["engine"],
        memory=merged["memory"],
        rdma=merged["rdma"],
    )


# ---------------------------------------------------------------------------
# Loading and error translation
#
# Every problem becomes one SpecError line, ``file:line: field: what (fix: how)``,
# in benchfab's words (pydantic's and PyYAML's wording never reaches the user).
# A file's problems are all collected: pydantic's errors, then the checks that
# span fields (run on a copy of the spec with the broken fields taken out), and
# raised together as one SpecErrors. Only a YAML syntax error stops at once.


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file. Raises SpecError: one problem, or SpecErrors: several."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", source=source, hint="check the path; specs usually live in jobs/") from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", source=source, hint="give the path of a .yaml file") from None
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", source=source,
                        hint="check that the file exists and is readable") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        utf16 = " (it looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise SpecError(
            f"not a text file: byte 0x{data[exc.start]:02x} at line {line} is not UTF-8{utf16}",
            source=source,
            line=line,
            hint="save the spec as UTF-8 YAML",
        ) from None
    return load_spec_text(text, source=source)


def load_spec_text(text: str, *, source: str = "<spec>") -> SweepSpec:
    """Validate spec text; the parse used by ``load_spec`` and by tests.

    Raises SpecError when there is one problem, SpecErrors (a SpecError) when there
    are several; ``exc.problems`` lists them either way.
    """
    problems: list[SpecError] = []
    duplicates: list[YamlPositionError] = []

    def yaml_problem(exc: YamlPositionError) -> SpecError:
        field = _format_loc(exc.path) if exc.path else None
        return SpecError(str(exc), source=source, line=exc.line, field=field, hint=exc.hint or "fix the YAML syntax")

    try:
        raw, lines = load_with_lines(text, problems=duplicates)
    except YamlPositionError as exc:
        raise _raise_all([*map(yaml_problem, duplicates), yaml_problem(exc)]) from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", source=source, hint="flatten the spec") from None
    problems.extend(map(yaml_problem, duplicates))
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else "plain text" if isinstance(raw, str) else f"a {_kind(raw)}"
        problems.append(SpecError(
            f"the spec is {kind}, expected a mapping with a 'tests' list",
            source=source,
            line=1,
            hint="start from jobs/local.yaml",
        ))
        raise _raise_all(problems)
    for key in [k for k in raw if not isinstance(k, str)]:
        problems.append(SpecError(f"a key must be a word, got {_show(key)}", source=source,
                                  line=lines.get((key,), 1), hint="quote the key, or remove it"))
        raw = {k: v for k, v in raw.items() if k != key}
    spec: SweepSpec | None
    broken: list[tuple[Any, ...]] = []
    try:
        spec = SweepSpec.model_validate({**raw, "source": source})
    except ValidationError as exc:
        found, broken = _validation_problems(exc, raw, lines, source)
        problems.extend(found)
        spec = _without(raw, broken, source)
    except (ValueError, TypeError, OverflowError) as exc:  # from BeforeValidators outside pydantic's wrapping
        problems.append(SpecError(f"cannot read the spec: {exc}", source=source,
                                  hint="see docs/SPEC.md for the accepted fields"))
        spec = None
    if spec is not None:
        problems.extend(_check_semantics(spec, raw, lines, source, broken=broken))
    if problems:
        raise _raise_all(problems)
    assert spec is not None
    return spec


def _raise_all(problems: list[SpecError]) -> SpecError:
    """One problem as itself; several as one SpecErrors (one line each, sorted by line)."""
    return problems[0] if len(problems) == 1 else SpecErrors(problems)


def _without(raw: dict[str, Any], broken: list[tuple[Any, ...]], source: str) -> SweepSpec | None:
    """The spec with every broken field taken out (defaults apply instead), so the
    checks that span fields can still look at the rest; None if that is not valid."""
    fixed = copy.deepcopy(raw)
    for loc in broken:
        if loc == ("tests",) or not loc:
            return None
        head = loc[0]
        if head == "tests" and len(loc) == 2:
            if isinstance(fixed.get("tests"), list) and isinstance(loc[1], int) and loc[1] < len(fixed["tests"]):
                fixed["tests"][loc[1]] = {}
            continue
        depth = {"tests": 3, "profiles": 3, "defaults": 2, "nodes": 2, "kubernetes": 2}.get(head, 1)
        cut = loc[:depth]
        parent: Any = _get(fixed, cut[:-1])
        if isinstance(parent, dict):
            parent.pop(cut[-1], None)
        elif isinstance(parent, list) and isinstance(cut[-1], int) and cut[-1] < len(parent):
            parent[cut[-1]] = {}
    try:
        return SweepSpec.model_validate({**fixed, "source": source})
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None


def _check_semantics(
    spec: SweepSpec,
    raw: dict[str, Any],
    lines: dict[YPath, int],
    source: str,
    *,
    broken: Collection[tuple[Any, ...]] = (),
) -> list[SpecError]:
    """Checks that span fields (a test's own fields plus defaults) and the backend.

    Returns every problem found. ``broken`` are the paths of problems already
    reported, whose fields were taken out of ``spec`` (defaults stand in): a check
    that reads such a field would judge a value the user did not write, so it is
    left out.
    """
    profiles = spec.resolved_profiles()
    problems: list[SpecError] = []
    gone_everywhere: set[str] = set()  # fields taken out of defaults, or top-level settings
    gone: dict[int, set[str]] = {}  # fields taken out of one test ("*": the whole entry)
    for loc in broken:
        if loc[0] == "tests" and len(loc) > 1 and isinstance(loc[1], int):
            gone.setdefault(loc[1], set()).add(str(loc[2]) if len(loc) > 2 else "*")
        elif loc[0] == "defaults":
            gone_everywhere.add(str(loc[1]) if len(loc) > 1 else "*")
        elif loc[0] in ("profiles", "backend", "image"):
            gone_everywhere.add(str(loc[0]))

    def fail(i: int, field: str, message: str, hint: str, uses: tuple[str, ...] = ()) -> None:
        taken = gone_everywhere | gone.get(i, set())
        if taken & {"*", field, *uses}:
            return
        entry = raw["tests"][i] if isinstance(raw.get("tests"), list) and i < len(raw["tests"]) else {}
        in_test = isinstance(entry, dict) and field in entry
        path: YPath = ("tests", i, field) if in_test else ("defaults", field)
        where = f"tests[{i}].{field}" if in_test else f"defaults.{field}"
        if not in_test and ("defaults", field) not in lines:
            path, where = ("tests", i), f"tests[{i}]"
        problems.append(SpecError(message, source=source, line=_line_for(path, lines), field=where, hint=hint))

    names: dict[str, int] = {}
    for i, fields in enumerate(spec.tests):
        test = _resolve(spec, i, fields)
        if fields.iterations is not None and fields.duration is not None:
            fail(i, "duration", "iterations and duration both given", "keep one: fixed iterations or a time budget",
                 ("iterations",))
        # A default name is made from the workload.
        name_uses = () if fields.name is not None else ("workload",)
        if test.name in names:
            fail(i, "name", f"test name {test.name!r} is already used by tests[{names[test.name]}]",
                 "give each test a unique name", name_uses)
        if not (gone_everywhere | gone.get(i, set())) & {"*", "name", *name_uses}:
            names.setdefault(test.name, i)
        for problem in _entry_problems(spec.backend, test, profiles):
            fail(i, *problem)
    if spec.backend == "kubernetes" and not spec.image and not gone_everywhere & {"backend", "image"}:
        problems.append(SpecError("backend kubernetes needs the worker image", source=source,
                                  line=_line_for(("backend",), lines), field="image",
                                  hint="add image: <registry>/benchfab-worker:<tag>"))
    return problems


def _entry_problems(backend: str, test: TestSpec, profiles: dict[str, Profile]) -> list[Problem]:
    """What is wrong with one resolved test: its family's rules, then the rest."""
    found = family_of(test.workload).problems(test)
    for p in test.profiles:
        if p not in profiles:
            close = difflib.get_close_matches(p, list(profiles), n=1)
            found.append(Problem("profiles", f"unknown profile {p!r}",
                                 f"did you mean {close[0]!r}?" if close
                                 else f"define it under 'profiles:' or use one of {', '.join(sorted(profiles))}"))
    pl = test.placement
    if backend == "local" and pl.pattern not in ("local", "group"):
        found.append(Problem("placement", f"pattern {pl.pattern!r} places ranks on several nodes",
                             "use backend: kubernetes, or pattern: local", ("backend",)))
    if backend == "local" and pl.nodes != 1:
        found.append(Problem("placement", f"the local backend has one node, placement asks for {pl.nodes}",
                             "set placement.nodes: 1 or use backend: kubernetes", ("backend",)))
    if test.cuda_graph and test.device == "cpu":
        found.append(Problem("cuda_graph", "CUDA graphs need device: cuda or auto", "set cuda_graph: 0 for CPU tests",
                             ("device",)))
    return found


def _line_for(path: YPath, lines: dict[YPath, int]) -> int | None:
    # The deepest recorded prefix of the path: a missing field points at its parent.
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [k for k in model.model_fields if k not in ("source", "index")]


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Which model a location's parent mapping is validated by (for 'unknown key' hints)."""
    model: type[BaseModel] | None = SweepSpec
    nested: dict[tuple[type[BaseModel], str], type[BaseModel]] = {
        (SweepSpec, "defaults"): TestFields,
        (SweepSpec, "nodes"): NodeSelection,
        (SweepSpec, "kubernetes"): KubeSettings,
        (TestFields, "placement"): Placement,
        (TestFields, "sizes"): SizeRange,
        (TestFields, "rdma"): RdmaOptions,
    }
    i = 0
    while i < len(loc) and model is not None:
        part = loc[i]
        if model is SweepSpec and part == "tests":
            model, i = TestFields, i + 2
            continue
        if model is SweepSpec and part == "profiles":
            model, i = Profile, i + 2
            continue
        model = nested.get((model, part))
        i += 1
    return model


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and re.fullmatch(r"[\w-]+", part):
            out += ("." if out else "") + part
        else:  # a key no spec field has: shown escaped, so the line stays one line
            out += f"[{str(part)!r}]"
    return out or "(top level)"


_MODEL_NAMES = ("SizeRange", "Placement", "Profile", "RdmaOptions", "NodeSelection", "KubeSettings", "TestFields")


def _clean_loc(loc: tuple[Any, ...], raw: Any) -> tuple[tuple[Any, ...], str | None, int]:
    """pydantic's location as the spec's path, walking the raw value alongside.

    pydantic adds union-branch and validator tags ('function-after[_check(),
    SizeRange]', 'list[...]') that are not spec keys, and an index 0 where a
    one-or-many field ("dtypes: foo") was validated as a list. Returns the path,
    the union branch the error came from ("dict", "list" or None) and where in
    the path that union field ends.
    """
    out: list[Any] = []
    cur: Any = raw
    branch: str | None = None
    branch_at = 0
    for part in loc:
        if isinstance(part, str) and isinstance(cur, dict) and part in cur:
            out.append(part)
            cur = cur[part]
        elif isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur):
            out.append(part)
            cur = cur[part]
        elif isinstance(part, str) and ("[" in part or part in _MODEL_NAMES):
            if branch is None:
                if part.startswith("list["):
                    branch = "list"
                elif any(name in part for name in _MODEL_NAMES):
                    branch = "dict"
                branch_at = len(out)
        elif isinstance(part, int) and cur is not _MISSING and not isinstance(cur, list):
            continue  # "dtypes: foo" validated as [foo]: the error is about foo itself
        else:
            out.append(part)
            cur = _MISSING
    return tuple(out), branch, branch_at


def _validation_problems(
    exc: ValidationError, raw: dict[str, Any], lines: dict[YPath, int], source: str
) -> tuple[list[SpecError], list[tuple[Any, ...]]]:
    """Every pydantic error as a SpecError in benchfab's words, and the broken paths."""
    problems: list[SpecError] = []
    broken: list[tuple[Any, ...]] = []
    unions_done: set[tuple[Any, ...]] = set()
    for err in exc.errors(include_url=False):
        loc, branch, branch_at = _clean_loc(tuple(err["loc"]), raw)
        if branch is not None:
            # A union (sizes: a range or a list) reports one error per branch:
            # keep the branch that matches what the user wrote.
            at = loc[:branch_at]
            value = _get(raw, at)
            wrote = ("dict" if isinstance(value, dict)
                     else "list" if isinstance(value, (list, str, int)) and not isinstance(value, bool) else None)
            if wrote is None:
                if at not in unions_done:
                    unions_done.add(at)
                    broken.append(at)
                    problems.append(_union_problem(at, value, lines, source))
                continue
            if wrote != branch:
                continue
        if err["type"] == "invalid_key" and loc and loc[-1] in (err.get("input"), str(err.get("input"))):
            loc = loc[:-1]  # the path ends at the mapping that holds the bad key
        broken.append(loc)
        problems.append(_problem(err, loc, raw, lines, source))
    return problems, broken


def _union_problem(loc: tuple[Any, ...], value: Any, lines: dict[YPath, int], source: str) -> SpecError:
    key = _key_of(loc)
    if key == "sizes":
        message = f"expected a size, a list of sizes or a range, got {_show(value)}"
        hint = "write e.g. sizes: 1M, sizes: [8, 1K, 1M] or sizes: {min: 8, max: 1M, factor: 2}"
    else:
        message = f"a {_kind(value)} does not fit here, got {_show(value)}"
        hint = f"see docs/SPEC.md for what {key} accepts"
    return SpecError(message, source=source, line=_line_for(loc, lines), field=_format_loc(loc), hint=hint)


# Example values for fixes ("write ranks: 2"); anything else gets 1.
_EXAMPLES: dict[str, str] = {
    "ranks": "2", "iterations": "20", "warmup": "5", "root": "0", "repeat": "1", "cuda_graph": "0",
    "nodes": "1", "gpus_per_node": "8", "k": "2", "factor": "2", "gid_index": "3", "version": "1",
    "tx_depth": "128", "cq_mod": "100", "max_inline": "220", "cuda_device": "0", "master_port": "29500",
    "mtu": "4096", "max_rounds": "10", "rails": "8", "port": "1", "post_list": "1",
}
_MAPPING_EXAMPLES: dict[str, str] = {
    "placement": "{pattern: local}", "sizes": "{min: 8, max: 1M, factor: 2}", "rdma": "{device: mlx5_0}",
    "nodes": "{selector: 'nvidia.com/gpu.present=true'}", "kubernetes": "{reuse_pods: true}",
    "env": "{NCCL_DEBUG: INFO}", "defaults": "{iterations: 20}", "profiles": "{ib: {fabric: ib, mode: shared}}",
}
_SECONDS = ("duration", "timeout", "start_timeout", "active_deadline")
_NOUNS = {"dtypes": "dtype", "ops": "op", "profiles": "profile", "tests": "test"}
_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 characters"


def _key_of(loc: tuple[Any, ...]) -> str:
    keys = [p for p in loc if isinstance(p, str)]
    return keys[-1] if keys else "spec"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, bool):
        return "true/false value"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _bound(key: str, value: Any) -> str:
    return f"{value:g} s" if key in _SECONDS and isinstance(value, (int, float)) else str(value)


def _problem(err: Any, loc: tuple[Any, ...], raw: dict[str, Any], lines: dict[YPath, int], source: str) -> SpecError:
    message, hint = _wording(err, loc, raw)
    return SpecError(message, source=source, line=_line_for(loc, lines), field=_format_loc(loc), hint=hint)


def _wording(err: Any, loc: tuple[Any, ...], raw: dict[str, Any]) -> tuple[str, str]:
    """(what is wrong, how to fix it) for one pydantic error, in benchfab's words."""
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    key = _key_of(loc)
    got = _get(raw, loc)
    if got is _MISSING:
        got = err.get("input")
    shown = _show(got)
    example = _EXAMPLES.get(key, "1")

    if kind == "extra_forbidden":
        name = loc[-1] if loc else "?"
        model = _model_at(loc[:-1])
        allowed = _allowed_keys(model) if model else []
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = (f"did you mean {close[0]!r}?" if close
                else f"remove it; the keys allowed here are {', '.join(allowed)}" if allowed else "remove it")
        return f"unknown key {str(name)!r}", hint
    if kind == "missing":
        if loc == ("tests",):
            return "required field 'tests' is missing", "add a tests: list, e.g. tests: [{workload: allreduce}]"
        if loc and isinstance(loc[-1], int):
            return f"item {loc[-1]} of {key} is missing", "write each pair as [node-a, node-b]"
        if key in ("min", "max"):
            return f"required field '{key}' is missing", "give both ends, e.g. sizes: {min: 8, max: 1M, factor: 2}"
        return f"required field '{key}' is missing", f"add {key}:"
    if kind == "literal_error":
        accepted = [v.strip().strip("'") for v in re.split(r", | or ", str(ctx.get("expected", ""))) if v.strip()]
        listed = ", ".join(accepted)
        noun = _NOUNS.get(key, key)
        if isinstance(got, str):
            close = difflib.get_close_matches(got, accepted, n=1, cutoff=0.6)
            if not close:
                close = [a for a in accepted if a.lower() == got.lower().strip()]
            if close:
                return f"unknown {noun} {shown}; accepted: {listed}", f"did you mean {close[0]!r}?"
            return f"unknown {noun} {shown}", f"use one of: {listed}"
        if len(accepted) == 1:
            return f"{noun} cannot be {shown}", f"use {key}: {accepted[0]}"
        return f"{noun} cannot be {shown}", f"use one of: {listed}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        limit = next(iter(ctx.values()), "?")
        b = _bound(key, limit)
        unit = "s" if key in _SECONDS else ""
        if kind == "greater_than_equal":
            what, fix = f"at least {b}", f"set {key}: {limit}{unit} or more"
        elif kind == "greater_than":
            what, fix = f"more than {b}", f"set {key} above {limit}{unit}" + (", e.g. 30s" if unit else "")
        elif kind == "less_than_equal":
            what, fix = f"at most {b}", f"set {key}: {limit}{unit} or less"
        else:
            what, fix = f"less than {b}", f"set {key} below {limit}{unit}"
        if key == "factor":
            fix += ", or use step: for a linear sweep"
        return f"{key} must be {what}, got {shown}", fix
    if kind == "too_short":
        if loc == ("tests",):
            return "the list is empty", "add at least one test, e.g. - workload: allreduce"
        need = ctx.get("min_length", 1)
        if not ctx.get("actual_length"):
            return "the list is empty", f"give at least {need} value{'s' if need != 1 else ''}"
        return f"needs at least {need} items, got {ctx.get('actual_length')}", "add the missing items"
    if kind == "too_long":
        return (f"at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}",
                "write each pair as [node-a, node-b]" if key == "suspects" else "remove the extra items")
    if kind in ("int_parsing", "int_type", "int_from_float", "int_parsing_size"):
        return f"expected a whole number, got {shown}", f"write a whole number without quotes or units, e.g. {key}: {example}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {shown}", f"write {key}: true or {key}: false"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {shown}", f"write a number, e.g. {key}: {example}"
    if kind == "finite_number":
        return f"expected a finite number, got {shown}", f"write a number, e.g. {key}: {example}"
    if kind in ("string_type", "str_type"):
        if got is not None and not isinstance(got, (dict, list)):
            plain = shown if not isinstance(got, str) else got
            return f"expected text, got {shown}", f"quote it: {key}: \"{plain}\""
        return f"expected text, got a {_kind(got)}", f"write a plain value, e.g. {key}: some-text"
    if kind == "list_type":
        if loc == ("tests",):
            return (f"tests must be a list of test entries, got {shown}",
                    "write each test on its own line under tests:, e.g. - workload: allreduce")
        return f"expected a list, got {shown}", f"write {key}: [a, b], or one '- item' per line"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if len(loc) == 2 and loc[0] == "tests":
            wl = got if isinstance(got, str) and got in COLLECTIVES else "allreduce"
            return f"each test must be a mapping of fields, got {shown}", f"write it as - workload: {wl}"
        if len(loc) == 2 and loc[0] == "profiles":
            return f"a profile must be a mapping, got {shown}", "write it as {fabric: ib, mode: shared}"
        return f"{key} must be a mapping, got {shown}", f"write {key}: {_MAPPING_EXAMPLES.get(key, '{key: value}')}"
    if kind == "invalid_key":
        return f"a key must be a word, got {_show(err.get('input'))}", "quote the key, or remove it"
    if kind in ("tuple_type",):
        return f"expected a pair, got {shown}", "write each pair as [node-a, node-b]"
    if kind == "string_pattern_mismatch":
        suggestion = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(got)).strip("-_.")[:63] or "my-test"
        return f"{key} {shown} may only hold {_NAME_RULE}", f"use e.g. {key}: {suggestion}"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        hint = getattr(error, "hint", None) or f"see docs/SPEC.md for what {key} accepts"
        text = str(error) if error is not None else str(err.get("msg", "")).removeprefix("Value error, ")
        return text, hint
    # Anything else pydantic may say, reworded as far as it goes.
    text = str(err.get("msg", "invalid value")).replace("Input should be", "expected")
    return f"{text}, got {shown}", f"see docs/SPEC.md for what {key} accepts"


_MISSING = object()


def _get(raw: Any, loc: tuple[Any, ...]) -> Any:
    cur = raw
    for part in loc:
        if not isinstance(cur, (dict, list)):
            return _MISSING
        try:
            cur = cur[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return cur


def spec_to_dict(spec: SweepSpec) -> dict[str, Any]:
    """JSON-ready form of a spec for run.json (resolved tests included)."""
    data = spec.model_dump(mode="json", exclude={"tests", "defaults"})
    data["tests"] = [t.model_dump(mode="json") for t in spec.resolved_tests()]
    return data
