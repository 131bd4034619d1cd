"""Jobs (API 2.2): multi-task jobs over workspace files and notebooks, run by the server as their run-as
principal. See :mod:`._service`."""

from ._service import Jobs
from ._spec import check_settings, order

__all__ = ["Jobs", "check_settings", "order"]
