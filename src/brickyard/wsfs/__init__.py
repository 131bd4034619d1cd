"""The workspace file system: folders, notebooks and files under ``/``, as ``/api/2.0/workspace`` serves them.

Objects live in the metastore (``workspace_objects``: path, type, language, owner, times, size; and
``workspace_acl``) and their bytes in ``<home>/wsfs/<object id>``, written whole and renamed into place
before the metastore row that names them commits; a crash leaves at most an unnamed file, never a row
without its bytes. See :mod:`._tree`.
"""

from ._tree import LEVELS, MAX_IMPORT_BYTES, WorkspaceFiles, notebook_cells

__all__ = ["LEVELS", "MAX_IMPORT_BYTES", "WorkspaceFiles", "notebook_cells"]
