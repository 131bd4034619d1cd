"""The metastore: principals and tokens, securables, grants, lineage and audit."""

from ._acl import access_entries, acl_level
from ._catalog import Catalog, Securable, securable_kind
from ._db import Database
from ._identity import ACCOUNT_USERS, ADMINS, Identity, Principal
from ._objects import uc_type_name
from ._privileges import APPLICABLE, Decision, decide, normalize_privilege

__all__ = [
    "access_entries",
    "acl_level",
    "ACCOUNT_USERS",
    "ADMINS",
    "APPLICABLE",
    "Catalog",
    "Database",
    "Decision",
    "Identity",
    "Principal",
    "Securable",
    "decide",
    "normalize_privilege",
    "securable_kind",
    "uc_type_name",
]
