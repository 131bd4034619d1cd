"""The AI Gateway: rate limits, usage tracking and inference tables around every model call
(guardrails and fallbacks are next)."""

from ..serving._aigateway import validate_config
from ._gateway import Gateway
from ._limits import RateLimiter
from ._usage import PAYLOAD_SCHEMA, USAGE_SCHEMA, USAGE_TABLE, BufferedSink

__all__ = ["PAYLOAD_SCHEMA", "USAGE_SCHEMA", "USAGE_TABLE", "BufferedSink", "Gateway", "RateLimiter",
           "validate_config"]
