"""Loader of the compiled hot path, ``benchfab._native`` (built from native/).

The extension is optional: it builds only where the verbs headers are present
(see setup.py). Code that uses it calls it through ``lib``, which mypy types by the
stub ``benchfab/_native.pyi`` (every call is checked against it); where the module is
not built, the first use of ``lib`` raises NativeUnavailable with the reason and the
fix instead of an ImportError. ``require_native()`` raises the same error up front.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import NativeUnavailable

_loaded: ModuleType | None
_why: str
if os.environ.get("BENCHFAB_NO_NATIVE"):
    _loaded, _why = None, "disabled by BENCHFAB_NO_NATIVE"
else:
    try:
        # By its full name through importlib: `from . import _native` reads, to import-graph
        # tools (grimp, import-linter), as an import of the package root `benchfab`, whose
        # lazy attributes reach the spec and the store, far above this module's layer.
        _loaded = importlib.import_module("benchfab._native")
        _why = ""
    except ImportError as exc:
        _loaded, _why = None, f"benchfab._native is not built ({exc})"

HAVE_NATIVE = _loaded is not None
_FIX = "install libibverbs-dev, then reinstall with BENCHFAB_REQUIRE_NATIVE=1 pip install -e ."


def require_native() -> None:
    """Raise NativeUnavailable (why, and how to build it) unless benchfab._native is loaded."""
    if _loaded is None:
        raise NativeUnavailable(_why, hint=_FIX)


class _Missing:
    """``lib`` where the module is not loaded: any use raises NativeUnavailable."""

    def __getattr__(self, name: str) -> Any:
        require_native()
        return getattr(_loaded, name)


if TYPE_CHECKING:
    import benchfab._native as lib  # the stub, _native.pyi: mypy checks each call against it
else:
    lib = _loaded if _loaded is not None else _Missing()


def native_status() -> dict[str, Any]:
    return {"available": HAVE_NATIVE, "reason": _why or None}


__all__ = ["HAVE_NATIVE", "lib", "native_status", "require_native"]
