"""The ``ai_gateway`` section of a serving endpoint: validated here (with the endpoint's config),
enforced by ``brickyard.gateway``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.errors import InvalidParameterValue

KEYS = ("endpoint", "user", "user_group", "service_principal")
BEHAVIORS = ("NONE", "BLOCK", "MASK")


@dataclass(frozen=True)
class Limit:
    key: str
    principal: str | None
    calls: int | None
    tokens: int | None


def parse_limits(value: Any) -> list[Limit]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidParameterValue("rate_limits must be a list")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidParameterValue(f"rate_limits[{i}] must be an object")
        key = item.get("key", "user")
        if key not in KEYS:
            raise InvalidParameterValue(f"rate_limits[{i}].key must be one of {', '.join(KEYS)}")
        if item.get("renewal_period", "minute") != "minute":
            raise InvalidParameterValue("renewal_period must be minute")
        calls, tokens = item.get("calls"), item.get("tokens")
        for name, v in (("calls", calls), ("tokens", tokens)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise InvalidParameterValue(f"rate_limits[{i}].{name} must be a non-negative integer")
        if calls is None and tokens is None:
            raise InvalidParameterValue(f"rate_limits[{i}] needs calls or tokens")
        principal = item.get("principal")
        if key == "endpoint" and principal:
            raise InvalidParameterValue("an endpoint-wide limit has no principal")
        if key == "user_group" and not principal:
            raise InvalidParameterValue("a user_group limit names its group in principal")
        out.append(Limit(key, principal, calls, tokens))
    return out


def validate_config(config: Any) -> dict[str, Any]:
    """The stored form of an ``ai_gateway`` config; refuses what is not enforced yet."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidParameterValue("ai_gateway must be an object")
    out: dict[str, Any] = {}
    usage = config.get("usage_tracking_config")
    if usage is not None:
        if not isinstance(usage, dict) or not isinstance(usage.get("enabled", False), bool):
            raise InvalidParameterValue("usage_tracking_config must be {\"enabled\": true|false}")
        out["usage_tracking_config"] = {"enabled": bool(usage.get("enabled", False))}
    if config.get("rate_limits") is not None:
        parse_limits(config["rate_limits"])
        out["rate_limits"] = config["rate_limits"]
    table = config.get("inference_table_config")
    if table is not None:
        if not isinstance(table, dict):
            raise InvalidParameterValue("inference_table_config must be an object")
        if table.get("enabled"):
            from ..core.names import validate_part

            prefix = table.get("table_name_prefix") or "payload"
            out["inference_table_config"] = {
                "enabled": True,
                "catalog_name": validate_part(table.get("catalog_name") or "", "inference_table_config.catalog_name"),
                "schema_name": validate_part(table.get("schema_name") or "", "inference_table_config.schema_name"),
                "table_name_prefix": validate_part(prefix, "inference_table_config.table_name_prefix"),
            }
        else:
            out["inference_table_config"] = {"enabled": False}
    fallback = config.get("fallback_config")
    if fallback is not None:
        if not isinstance(fallback, dict) or not isinstance(fallback.get("enabled", False), bool):
            raise InvalidParameterValue("fallback_config must be {\"enabled\": true|false}")
        out["fallback_config"] = {"enabled": bool(fallback.get("enabled"))}
    if config.get("guardrails") is not None:
        out["guardrails"] = validate_guardrails(config["guardrails"])
    return out


def validate_guardrails(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InvalidParameterValue("guardrails must be {\"input\": {...}, \"output\": {...}}")
    out: dict[str, Any] = {}
    for side in ("input", "output"):
        part = config.get(side)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise InvalidParameterValue(f"guardrails.{side} must be an object")
        clean: dict[str, Any] = {}
        if part.get("safety") is not None:
            if not isinstance(part["safety"], bool):
                raise InvalidParameterValue(f"guardrails.{side}.safety must be true or false")
            clean["safety"] = part["safety"]
        if part.get("pii") is not None:
            behavior = (part["pii"] or {}).get("behavior", "NONE") if isinstance(part["pii"], dict) else None
            if behavior not in BEHAVIORS:
                raise InvalidParameterValue(f"guardrails.{side}.pii.behavior must be NONE, BLOCK or MASK")
            clean["pii"] = {"behavior": behavior}
        for key in ("invalid_keywords", "valid_topics"):
            words = part.get(key)
            if words is None:
                continue
            if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words) \
                    or len(words) > 100:
                raise InvalidParameterValue(f"guardrails.{side}.{key} must be a list of up to 100 strings")
            clean[key] = [w.strip() for w in words]
        out[side] = clean
    return out



def payload_table(config: dict[str, Any]) -> str | None:
    """The full name of the inference table an ``ai_gateway`` config logs to, if any."""
    table = config.get("inference_table_config") or {}
    if not table.get("enabled"):
        return None
    return f"{table['catalog_name']}.{table['schema_name']}.{table['table_name_prefix']}_payload"


