"""Model serving: endpoints, served entities, traffic split, and invocation of local and external models."""

from ._catalog import FOUNDATION_STANDINS, LOCAL_MODELS
from ._common import Invocation
from ._ray import RayModels, batch_work
from ._service import Serving

__all__ = ["FOUNDATION_STANDINS", "LOCAL_MODELS", "Invocation", "RayModels", "Serving", "batch_work"]
