"""One error tree for the whole library.

Every error carries a Databricks ``error_code`` and an HTTP status, so the REST layer can turn it into
``{"error_code": ..., "message": ...}`` and the official clients raise the exception type users expect::

    BrickyardError                      500 INTERNAL_ERROR
    +-- InvalidParameterValue           400 INVALID_PARAMETER_VALUE
    |   +-- PayloadTooLarge             413 INVALID_PARAMETER_VALUE
    |   +-- IngestionError              400 INVALID_PARAMETER_VALUE (carries kind)
    +-- BadRequest                      400 BAD_REQUEST
    +-- FunctionFailed                  400 FUNCTION_EXECUTION_FAILED
    +-- InvalidState                    400 INVALID_STATE
    +-- Unauthenticated                 401 UNAUTHENTICATED
    +-- PermissionDenied                403 PERMISSION_DENIED
    +-- NotFound                        404 RESOURCE_DOES_NOT_EXIST (or NOT_FOUND)
    +-- AlreadyExists                   409 RESOURCE_ALREADY_EXISTS
    +-- Conflict                        409 ABORTED
    +-- RateLimited                     429 REQUEST_LIMIT_EXCEEDED  (carries retry_after seconds)
    +-- TemporarilyUnavailable          503 TEMPORARILY_UNAVAILABLE (carries retry_after seconds)
    +-- DeadlineExceeded                504 DEADLINE_EXCEEDED
    +-- NotSupported                    501 NOT_IMPLEMENTED

Messages say what is wrong and, where there is one, how to fix it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "BrickyardError",
    "Conflict",
    "DeadlineExceeded",
    "FunctionFailed",
    "InvalidParameterValue",
    "InvalidState",
    "NotFound",
    "NotSupported",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "TemporarilyUnavailable",
    "Unauthenticated",
    "IngestionError",
]


class BrickyardError(Exception):
    error_code = "INTERNAL_ERROR"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str, *, error_code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


class InvalidParameterValue(BrickyardError):
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400
    exit_code = 2


class PayloadTooLarge(InvalidParameterValue):
    http_status = 413


class IngestionError(InvalidParameterValue):
    """A document that cannot be ingested. ``kind``: CORRUPT, UNSUPPORTED, TOO_LARGE, UNSAFE or TIMEOUT."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}", kind=kind)
        self.kind = kind


class BadRequest(BrickyardError):
    error_code = "BAD_REQUEST"
    http_status = 400
    exit_code = 2


class FunctionFailed(BrickyardError):
    """A UC function ran and failed: its own exception, a resource limit, or an operation its sandbox refused."""

    error_code = "FUNCTION_EXECUTION_FAILED"
    http_status = 400
    exit_code = 1


class InvalidState(BrickyardError):
    error_code = "INVALID_STATE"
    http_status = 400
    exit_code = 2


class Unauthenticated(BrickyardError):
    error_code = "UNAUTHENTICATED"
    http_status = 401
    exit_code = 3


class PermissionDenied(BrickyardError):
    error_code = "PERMISSION_DENIED"
    http_status = 403
    exit_code = 3


class NotFound(BrickyardError):
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404
    exit_code = 4


class AlreadyExists(BrickyardError):
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 409
    exit_code = 5


class Conflict(BrickyardError):
    error_code = "ABORTED"
    http_status = 409
    exit_code = 5


class RateLimited(BrickyardError):
    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 429
    exit_code = 6

    def __init__(self, message: str, *, retry_after: float = 1.0, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class TemporarilyUnavailable(BrickyardError):
    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503
    exit_code = 6

    def __init__(self, message: str, *, retry_after: float = 1.0, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class DeadlineExceeded(BrickyardError):
    """Work that did not finish within its time limit (a served model that hangs, for example)."""

    error_code = "DEADLINE_EXCEEDED"
    http_status = 504
    exit_code = 6


class NotSupported(BrickyardError):
    error_code = "NOT_IMPLEMENTED"
    http_status = 501
    exit_code = 2
