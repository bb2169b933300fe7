"""How one YAML value becomes a field's value, and the names a field accepts.

The BeforeValidators here turn what a user writes (``4K``, ``30s``, ``dtypes:
float32``, ``in_place: both``) into what the models hold, and complain in
benchfab's words through _Invalid. ``_show`` and ``_kind`` describe a value the
way the user wrote it, for these complaints and for the error wording.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

from ..units import MAX_SIZE_BYTES, parse_duration, parse_rate, parse_size

MAX_SIZES_PER_TEST = 512


class _Invalid(ValueError):
    """A validator's complaint in benchfab's words plus its fix; pydantic keeps the
    exception in the error's ctx, and wording._wording reads the hint back."""

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
        size = parse_size(value)
    except ValueError:
        pass
    else:
        if size > MAX_SIZE_BYTES:
            raise _Invalid(f"size {_show(value)} is {size} bytes, more than one node can hold (benchfab's limit is "
                           f"{MAX_SIZE_BYTES} = 1T)", "use sizes up to 1T; fabric curves flatten long before that")
        return size
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


def _rate(value: object) -> float:
    try:
        return parse_rate(value)
    except ValueError:
        raise _Invalid(f"{_show(value)} is not a line rate",
                       "write a positive rate in bit/s such as 400Gbit, 100G or 200Mbit") from None


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
Rate = Annotated[float, BeforeValidator(_rate)]  # bit/s
# Spelled out for type checkers and pydantic; tests check they match workloads.WORKLOADS
# and workloads.catalog.DTYPES / REDOPS.
Workload = Literal["allreduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all", "reduce", "gather", "scatter",
                   "sendrecv", "rdma_write_bw", "rdma_write_lat", "rdma_read_bw", "rdma_read_lat", "rdma_send_bw",
                   "rdma_send_lat"]
DType = Literal["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
RedOp = Literal["sum", "prod", "max", "min", "avg"]
Fabric = Literal["ib", "roce", "tcp", "loopback"]
Mode = Literal["shared", "sriov", "none"]
Device = Literal["auto", "cpu", "cuda"]
Engine = Literal["native", "perftest", "nccl-tests"]
Pattern = Literal["local", "group", "all-pairs", "ring", "k-groups", "topology", "retest"]
LeafScope = Literal["same-leaf", "cross-leaf", "any"]


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


# Extra environment variables for ranks (a profile's env, a backend's): names checked against RESERVED_ENV.
EnvVars = Annotated[dict[str, str], AfterValidator(_env_names)]

# A test's own settings (env:, sweep_env:): the communication libraries' variables only, so a
# test cannot change what benchfab itself relies on (PATH, LD_PRELOAD, PYTHON*...). Values
# reach the ranks as environment entries of the process or pod, never through a shell.
TEST_ENV_PREFIXES = ("NCCL_", "UCX_")
TEST_ENV_ALLOWED = frozenset({"CUDA_DEVICE_MAX_CONNECTIONS", "OMP_NUM_THREADS", "TORCH_NCCL_AVOID_RECORD_STREAMS",
                              "TORCH_NCCL_HIGH_PRIORITY"})
# NCCL must keep writing its INFO log where benchfab reads it (the rank's output).
TEST_ENV_REFUSED = frozenset({"NCCL_DEBUG_FILE"})
MAX_ENV_VARIANTS = 64  # combinations one sweep_env may expand a test into


def _env_value(name: str, value: object) -> str:
    """A variable's value as text: text, or a whole number (NCCL_MIN_NCHANNELS: 4)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Invalid(f"{name}: a value is text or a whole number, not {_show(value)}",
                       f"quote it, e.g. {name}: \"1\"")
    text = str(value)
    if any(c in text for c in "\n\r\0"):
        raise _Invalid(f"{name}: the value holds a line break or NUL", "write the value on one line")
    return text


def _test_env_name(name: object) -> str:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise _Invalid(f"{_show(name)} is not a valid environment variable name",
                       "use letters, digits and '_', not starting with a digit")
    if name in TEST_ENV_REFUSED:
        raise _Invalid(f"{name} would move NCCL's log away from where benchfab reads it (the rank's output)",
                       f"remove {name}")
    if not name.startswith(TEST_ENV_PREFIXES) and name not in TEST_ENV_ALLOWED:
        raise _Invalid(f"{name} is not a setting a test may change: env and sweep_env take NCCL_* and UCX_* "
                       f"variables and {', '.join(sorted(TEST_ENV_ALLOWED))}",
                       "set other variables in a profile's env or kubernetes.env")
    return name


def _test_env(value: object) -> object:
    if not isinstance(value, dict):
        raise _Invalid(f"env is a mapping of variable to value, got {_kind(value)}", "write env: {NCCL_ALGO: Ring}")
    return {_test_env_name(k): _env_value(str(k), v) for k, v in value.items()}


def _sweep_env(value: object) -> object:
    if not isinstance(value, dict) or not value:
        raise _Invalid(f"sweep_env is a mapping of variable to a list of values, got {_kind(value)}",
                       "write sweep_env: {NCCL_ALGO: [Ring, Tree]}")
    out: dict[str, list[str]] = {}
    combinations = 1
    for name, values in value.items():
        name = _test_env_name(name)
        listed = values if isinstance(values, list) else [values]
        texts = [_env_value(name, v) for v in listed]
        if not texts:
            raise _Invalid(f"sweep_env.{name} lists no value", f"give at least one, e.g. {name}: [Ring, Tree]")
        if len(set(texts)) != len(texts):
            raise _Invalid(f"sweep_env.{name} repeats {_show(next(t for i, t in enumerate(texts) if t in texts[:i]))}",
                           "list each value once")
        out[name] = texts
        combinations *= len(texts)
    if combinations > MAX_ENV_VARIANTS:
        raise _Invalid(f"sweep_env expands into {combinations} variants; at most {MAX_ENV_VARIANTS} per test",
                       "split the values over several tests")
    return out


TestEnv = Annotated[dict[str, str], BeforeValidator(_test_env)]
SweepEnv = Annotated[dict[str, list[str]], BeforeValidator(_sweep_env)]


# Names that become parts of file names (rank logs, Parquet parts) and of Kubernetes
# labels: no '/', no spaces, nothing a path or a label would misread.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


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
