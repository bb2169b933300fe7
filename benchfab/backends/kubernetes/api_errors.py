"""The API server's refusals as types: callers catch ``NotFound``, not " 404 " in a message.

``api_error`` is the one place an ``ApiException``'s status becomes one of these; the
client raises it ``from`` the exception, so ``benchfab --debug`` shows the HTTP response
under it. Every class is a BackendError (benchfab.errors): the CLI prints its one line
and exits 1 like any backend failure.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import BackendError


class ApiError(BackendError):
    """The API server answered a call with an error status (``status``)."""

    def __init__(self, message: str, *, status: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class Unauthorized(ApiError):
    """401: the credentials were refused."""


class Forbidden(ApiError):
    """403: the account lacks a permission (RBAC)."""


class NotFound(ApiError):
    """404: no such object, namespace or resource type (a CRD that is not installed)."""


class Conflict(ApiError):
    """409: the object exists already, or changed under an update."""


class Gone(ApiError):
    """410: a watch's resourceVersion was compacted away (relist)."""


class ServerError(ApiError):
    """5xx (and 429 after the client's retries): the API server could not serve the call."""


class Unreachable(BackendError):
    """No HTTP answer at all: the connection failed or dropped (after the client's retries)."""


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 429: ServerError}

_HINTS: dict[int, str] = {
    401: "your credentials were refused: refresh the kubeconfig",
    403: "the service account lacks a permission: apply jobs/k8s/rbac.yaml",
    404: "check the namespace (--namespace) and that the object exists",
}


def api_error(what: str, exc: Any) -> ApiError:
    """The typed error of a failed call ``what`` (e.g. "create pod x") from the client's ApiException."""
    status = exc.status if isinstance(getattr(exc, "status", None), int) else None
    cls = _BY_STATUS.get(status or 0) or (ServerError if status is not None and status >= 500 else ApiError)
    return cls(f"{what}: {status} {_message(exc)}", status=status, hint=_HINTS.get(status or 0))


def _message(exc: Any) -> str:
    """The Status object's message when the body holds one, else the HTTP reason."""
    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)
