"""Loader of the compiled hot path, ``benchfab._native`` (built from native/).

The extension is optional: it builds only where the verbs headers are present
(see setup.py). Everything that needs it asks ``require_native()``, which
raises NativeUnavailable with the reason instead of an ImportError.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from .errors import NativeUnavailable

_native: ModuleType | None
_why: str
if os.environ.get("BENCHFAB_NO_NATIVE"):
    _native, _why = None, "disabled by BENCHFAB_NO_NATIVE"
else:
    try:
        from . import _native  # type: ignore[no-redef, unused-ignore]

        _why = ""
    except ImportError as exc:
        _native, _why = None, f"benchfab._native is not built ({exc})"

HAVE_NATIVE = _native is not None


def require_native() -> ModuleType:
    if _native is None:
        raise NativeUnavailable(
            _why,
            hint="install libibverbs-dev, then reinstall with BENCHFAB_REQUIRE_NATIVE=1 pip install -e .",
        )
    return _native


def native_status() -> dict[str, Any]:
    return {"available": HAVE_NATIVE, "reason": _why or None}
