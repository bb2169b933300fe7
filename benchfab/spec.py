"""The sweep spec: jobs/*.yaml turned into a typed, validated SweepSpec.

A spec has top-level settings, ``defaults`` applied to every test, named fabric
``profiles`` and a list of ``tests``. Validation is done by pydantic models with
``extra="forbid"``; every error is translated into one SpecError line that names
the file, the line and the field path, plus a hint. See docs/SPEC.md.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SpecError
from .units import parse_duration, parse_size
from .workloads.catalog import COLLECTIVES, is_gpu_memory, is_point_to_point
from .yamlpos import Path as YPath
from .yamlpos import YamlPositionError, load_with_lines

MAX_SIZES_PER_TEST = 512


def _size(value: object) -> int:
    return parse_size(value)


def _duration(value: object) -> float:
    return parse_duration(value)


def _one_or_many(value: object) -> object:
    # "dtypes: float32" is as natural to write as "dtypes: [float32]".
    return [value] if isinstance(value, (str, bool, int)) else value


def _in_place(value: object) -> object:
    if value == "both":
        return [False, True]
    if isinstance(value, str):
        raise ValueError(f"expected true, false or both, got {value!r}")
    return _one_or_many(value)


def _sizes(value: object) -> object:
    # "sizes: 1M" means one size.
    return [value] if isinstance(value, (int, str)) and not isinstance(value, bool) else value


Size = Annotated[int, BeforeValidator(_size)]
Seconds = Annotated[float, BeforeValidator(_duration)]
Workload = Literal["allreduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "rdma_write_bw", "rdma_write_lat"]
# Spelled out for type checkers; tests check they match workloads.catalog.
DType = Literal["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
RedOp = Literal["sum", "prod", "max", "min", "avg"]
Fabric = Literal["ib", "roce", "tcp", "loopback"]
Mode = Literal["shared", "sriov", "none"]
Device = Literal["auto", "cpu", "cuda"]
Transport = Literal["verbs", "tcp"]
Engine = Literal["native", "perftest"]
# hugepages: host memory on 2 MiB pages. cuda: DMA-BUF, else nvidia-peermem; cuda-dmabuf /
# cuda-peermem force one registration path.
Memory = Literal["host", "hugepages", "cuda", "cuda-dmabuf", "cuda-peermem"]
Pattern = Literal["local", "group", "all-pairs", "ring", "k-groups", "topology", "retest"]
LeafScope = Literal["same-leaf", "cross-leaf", "any"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class SizeRange(_Model):
    """``{min, max, factor}`` (geometric, like nccl-tests -b/-e/-f) or ``{min, max, step}``."""

    min: Size
    max: Size
    factor: int | None = Field(default=None, ge=2)
    step: Size | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "SizeRange":
        if self.min > self.max:
            raise ValueError(f"min ({self.min} B) is larger than max ({self.max} B)")
        if self.min < 1:
            raise ValueError("min must be at least 1 byte")
        if self.factor is not None and self.step is not None:
            raise ValueError("give either factor or step, not both")
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


class Profile(_Model):
    """How a rank reaches the fabric: labels for records plus what a pod must request."""

    fabric: Fabric = "loopback"
    mode: Mode = "none"
    resource: str | None = None
    network: str | None = None
    hca: str | None = None
    gid_index: int | None = Field(default=None, ge=0)  # RoCE: NCCL_IB_GID_INDEX; None = NCCL picks (>= 2.21.5)


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


class KubeSettings(_Model):
    """How the Kubernetes backend makes and runs pods (all optional)."""

    start_timeout: Seconds = Field(default=300.0, gt=0)  # gang start: every pod Running + attached
    reuse_pods: bool = True  # one long-lived agent pod per (node, slot) for a profile's whole sweep
    service_account: str = "benchfab-agent"
    gpu_resource: str = "nvidia.com/gpu"
    hostname_label: str = "kubernetes.io/hostname"
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)  # extra env for every rank (NCCL_* tuning...)
    cpu: str | None = None  # requests of each rank pod
    memory: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    active_deadline: Seconds | None = Field(default=None, gt=0)  # pod lifetime cap; default from the plan
    master_port: int | None = Field(default=None, ge=1024, le=65535)  # default: varies per test
    force_net: bool = False  # set NCCL_NET=IB on ib/roce profiles: fail instead of falling back


class TestFields(_Model):
    """Fields a test may set; ``defaults`` accepts the same ones."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    workload: Workload | None = None
    ranks: int | None = Field(default=None, ge=1, le=4096)
    sizes: Annotated[Union[SizeRange, list[Size], None], BeforeValidator(_sizes)] = None
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
                raise ValueError("the list of sizes is empty")
            if any(s < 1 for s in v):
                raise ValueError("every size must be at least 1 byte")
            if len(v) > MAX_SIZES_PER_TEST:
                raise ValueError(f"{len(v)} sizes; at most {MAX_SIZES_PER_TEST} per test")
        if isinstance(v, SizeRange) and len(v.expand()) > MAX_SIZES_PER_TEST:
            raise ValueError(f"expands to more than {MAX_SIZES_PER_TEST} sizes; use a larger factor or step")
        return v

    @field_validator("dtypes", "ops", "in_place", "profiles")
    @classmethod
    def _non_empty(cls, v: list[Any] | None) -> list[Any] | None:
        if v is not None and not v:
            raise ValueError("the list is empty; give at least one value")
        if v is not None and len(set(v)) != len(v):
            raise ValueError("the list repeats a value")
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
    name: str = Field(default="sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    description: str = ""
    backend: Literal["local", "kubernetes"] = "local"
    results_dir: str = "results"
    namespace: str | None = None
    image: str | None = None
    profiles: dict[str, Profile] = Field(default_factory=dict)
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
    point_to_point = is_point_to_point(merged["workload"])
    if point_to_point and all(layer.iterations is None and layer.duration is None for layer in (test, spec.defaults)):
        merged["iterations"] = None  # perftest's own defaults: 5000 for bw, 1000 for lat
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
        dtypes=["none"] if point_to_point else merged["dtypes"],
        ops=["none"] if point_to_point or not COLLECTIVES[merged["workload"]].reduces else merged["ops"],
        iterations=merged["iterations"],
        duration=merged["duration"],
        warmup=merged["warmup"],
        in_place=[False] if point_to_point else sorted(merged["in_place"]),
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


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a spec file. Raises SpecError (one line, file:line, field)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("no such file", source=source, hint="check the path; specs usually live in jobs/") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", source=source) from None
    return load_spec_text(text, source=source)


def load_spec_text(text: str, *, source: str = "<spec>") -> SweepSpec:
    """Validate spec text; the parse used by ``load_spec`` and by tests."""
    try:
        raw, lines = load_with_lines(text)
    except YamlPositionError as exc:
        hint = "keep only one of them" if "duplicate key" in str(exc) else "fix the YAML syntax"
        raise SpecError(str(exc), source=source, line=exc.line, hint=hint) from None
    except RecursionError:
        raise SpecError("YAML nested too deeply", source=source) from None
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise SpecError(
            f"the spec is {kind}, expected a mapping with a 'tests' list",
            source=source,
            line=1,
            hint="start from jobs/local.yaml",
        )
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise SpecError(f"keys must be strings, got {bad_keys[0]!r}", source=source, line=lines.get((bad_keys[0],), 1))
    try:
        spec = SweepSpec.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise _translate(exc, raw, lines, source) from None
    except (ValueError, TypeError, OverflowError) as exc:  # from BeforeValidators outside pydantic's wrapping
        raise SpecError(str(exc), source=source) from None
    _check_semantics(spec, raw, lines, source)
    return spec


def _check_semantics(spec: SweepSpec, raw: dict[str, Any], lines: dict[YPath, int], source: str) -> None:
    """Checks that span fields (a test's own fields plus defaults) and the backend."""
    profiles = spec.resolved_profiles()

    def fail(i: int, field: str, message: str, hint: str | None = None) -> None:
        entry = raw["tests"][i] if isinstance(raw.get("tests"), list) else {}
        in_test = isinstance(entry, dict) and field in entry
        path: YPath = ("tests", i, field) if in_test else ("defaults", field)
        where = f"tests[{i}].{field}" if in_test else f"defaults.{field}"
        if not in_test and ("defaults", field) not in lines:
            path, where = ("tests", i), f"tests[{i}]"
        raise SpecError(message, source=source, line=_line_for(path, lines), field=where, hint=hint)

    names: dict[str, int] = {}
    for i, fields in enumerate(spec.tests):
        if fields.iterations is not None and fields.duration is not None:
            fail(i, "duration", "iterations and duration both given", "keep one: fixed iterations or a time budget")
        test = _resolve(spec, i, fields)
        if test.name in names:
            fail(i, "name", f"test name {test.name!r} is already used by tests[{names[test.name]}]", "give each test a unique name")
        names[test.name] = i
        if is_point_to_point(test.workload):
            if test.ranks != 2:
                fail(i, "ranks", f"{test.workload} runs between exactly 2 ranks, not {test.ranks}", "set ranks: 2")
            if test.workload == "rdma_write_lat" and is_gpu_memory(test.memory):
                fail(i, "memory", "the latency test polls the receive buffer with the CPU, which GPU memory does not allow",
                     "use memory: host for rdma_write_lat")
            if test.transport == "tcp" and test.memory != "host":
                fail(i, "memory", "the tcp transport sends from plain host memory only", "use memory: host or transport: verbs")
            if is_gpu_memory(test.memory) and test.device == "cpu":
                fail(i, "device", f"memory: {test.memory} needs a GPU but device is cpu",
                     "set device: auto or cuda, or memory: host")
            if test.engine == "perftest" and test.transport == "tcp":
                fail(i, "engine", "perftest runs over verbs only", "use engine: native for transport: tcp")
            if test.iterations is not None and test.iterations < 5:
                fail(i, "iterations", "perftest's loops need at least 5 iterations", "use iterations: 5 or more")
        collective = COLLECTIVES.get(test.workload)
        if collective is not None and collective.rooted and test.root >= test.ranks:
            fail(i, "root", f"root {test.root} does not exist with {test.ranks} ranks", f"use a root below {test.ranks}")
        for p in test.profiles:
            if p not in profiles:
                fail(i, "profiles", f"unknown profile {p!r}", f"define it under 'profiles:' or use one of {sorted(profiles)}")
        pl = test.placement
        if spec.backend == "local" and pl.pattern not in ("local", "group"):
            fail(i, "placement", f"pattern {pl.pattern!r} places ranks on several nodes", "use backend: kubernetes, or pattern: local")
        if spec.backend == "local" and pl.nodes != 1:
            fail(i, "placement", f"the local backend has one node, placement asks for {pl.nodes}", "set placement.nodes: 1 or use backend: kubernetes")
        if test.cuda_graph and test.device == "cpu":
            fail(i, "cuda_graph", "CUDA graphs need device: cuda or auto", "set cuda_graph: 0 for CPU tests")
    if spec.backend == "kubernetes" and not spec.image:
        raise SpecError("backend kubernetes needs the worker image", source=source, line=_line_for(("backend",), lines), field="image", hint="add image: <registry>/benchfab-worker:<tag>")


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
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic adds union-branch and validator tags ("SizeRange", "list[...]",
    # "function-before[...]") to locations; they are not spec keys.
    out = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in ("SizeRange", "list", "str", "int", "bool")):
            continue
        out.append(part)
    return tuple(out)


def _translate(exc: ValidationError, raw: dict[str, Any], lines: dict[YPath, int], source: str) -> SpecError:
    errors = exc.errors(include_url=False)
    # For unions (sizes: range or list) pydantic reports one error per branch;
    # report the branch that matches what the user wrote.
    def rank(err: Any) -> int:
        loc = err["loc"]
        if "SizeRange" in loc:
            return 0 if isinstance(_get(raw, _clean_loc(loc)[:-1] if err["type"] != "missing" else _clean_loc(loc)[:-1]), dict) else 2
        if any(isinstance(p, str) and p.startswith("list[") for p in loc):
            return 0 if isinstance(_get(raw, _clean_loc(loc)[:3] if loc and loc[0] == "tests" else _clean_loc(loc)[:2]), list) else 2
        return 1

    err = sorted(errors, key=rank)[0]
    loc = _clean_loc(tuple(err["loc"]))
    kind = err["type"]
    msg = err["msg"]
    hint: str | None = None
    if kind == "extra_forbidden":
        key = loc[-1] if loc else "?"
        model = _model_at(loc[:-1])
        allowed = _allowed_keys(model) if model else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        msg = f"unknown key {key!r}"
        hint = f"did you mean {close[0]!r}?" if close else (f"allowed keys: {', '.join(allowed)}" if allowed else "remove it")
    elif kind == "missing":
        msg = "required field is missing"
        hint = f"add '{loc[-1]}:'" if loc else None
    elif kind == "literal_error":
        got = _get(raw, loc)
        msg = f"{got!r} is not one of the accepted values"
        expected = err.get("ctx", {}).get("expected")
        hint = f"use {expected}" if expected else None
    elif kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    else:
        got = _get(raw, loc)
        if got is not _MISSING and not isinstance(got, (dict, list)):
            msg = f"{msg} (got {got!r})"
    field = _format_loc(loc)
    return SpecError(msg, source=source, line=_line_for(loc, lines), field=field, hint=hint)


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
