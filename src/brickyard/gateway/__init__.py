"""The AI Gateway: rate limits and usage tracking around every model call (guardrails, inference
tables and fallbacks are next)."""

from ..serving._aigateway import validate_config
from ._gateway import Gateway
from ._limits import RateLimiter
from ._usage import USAGE_SCHEMA, USAGE_TABLE, BufferedSink

__all__ = ["USAGE_SCHEMA", "USAGE_TABLE", "BufferedSink", "Gateway", "RateLimiter", "validate_config"]
