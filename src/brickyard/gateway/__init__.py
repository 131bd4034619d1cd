"""The AI Gateway: rate limits, usage tracking, inference tables, guardrails and fallbacks around every
model call."""

from ..serving._aigateway import validate_config
from ._gateway import Gateway
from ._guardrails import SAFETY_PATTERNS
from ._limits import RateLimiter
from ._usage import PAYLOAD_SCHEMA, USAGE_SCHEMA, USAGE_TABLE, BufferedSink

__all__ = ["PAYLOAD_SCHEMA", "USAGE_SCHEMA", "USAGE_TABLE", "BufferedSink", "Gateway", "RateLimiter",
           "SAFETY_PATTERNS", "validate_config"]
