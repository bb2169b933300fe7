"""The base of every model of the spec: unknown keys refused, and no YAML true/false where a
number belongs (pydantic's lax mode would read ``ranks: true`` as 1)."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from .fields import _Invalid

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


# The base of every model of the spec, and of a backend's section (benchfab.backends: its
# options model): unknown keys refused, no true/false for a number.
SpecSection = _Model
