"""Kernel shared by every capability: errors, settings, names, ids."""

from .errors import (
    AlreadyExists,
    BadRequest,
    BrickyardError,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from .names import FullName, parse_name
from .settings import Settings

__all__ = [
    "AlreadyExists",
    "BadRequest",
    "BrickyardError",
    "FullName",
    "InvalidParameterValue",
    "NotFound",
    "PermissionDenied",
    "Settings",
    "Unauthenticated",
    "parse_name",
]
