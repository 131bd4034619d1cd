"""Jobs (API 2.2): multi-task jobs over workspace files and notebooks, run by the server as their run-as
principal. See :mod:`._service`."""

from ._notify import Destinations
from ._service import Jobs
from ._spec import check_settings, order

__all__ = ["Destinations", "Jobs", "check_settings", "order"]
