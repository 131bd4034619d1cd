from pathlib import Path

import pytest

from brickyard.core import errors
from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import SETTINGS_HELP, Settings


def test_settings_from_env_and_overrides(tmp_path: Path) -> None:
    s = Settings.from_env({"BRICKYARD_HOME": str(tmp_path), "BRICKYARD_PORT": "9000"}, port=None, host="::1")
    assert s.home == tmp_path and s.port == 9000 and s.host == "::1"
    assert Settings.from_env({}).host == "127.0.0.1"
    timed = Settings.from_env({"BRICKYARD_MONITOR_INTERVAL_SECONDS": "2.5", "BRICKYARD_SCALE_TO_ZERO_SECONDS": "60"})
    assert timed.monitor_interval_seconds == 2.5 and timed.scale_to_zero_seconds == 60.0  # numbers, not text


@pytest.mark.parametrize("env, fragment", [
    ({"BRICKYARD_PORT": "eighty"}, "must be an integer"),
    ({"BRICKYARD_PORT": "70000"}, "between 0 and 65535"),
    ({"BRICKYARD_METASTORE_URL": "mysql://x"}, "must start with postgresql://"),
    ({"BRICKYARD_LOG_LEVEL": "loud"}, "log level"),
    ({"BRICKYARD_MODEL_PRECISION": "fp16"}, "auto, fp32 or int8"),
    ({"BRICKYARD_MODEL_TIMEOUT_SECONDS": "soon"}, "must be a number"),
    ({"BRICKYARD_MODEL_TIMEOUT_SECONDS": "0"}, "must be positive"),
])
def test_bad_settings_say_how_to_fix(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match=fragment):
        Settings.from_env(env)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "settings.md").read_text()
    for var in SETTINGS_HELP:
        assert f"`{var}`" in doc, f"{var} is missing from docs/settings.md"


def test_only_settings_reads_the_environment() -> None:
    src = Path(__file__).parents[2] / "src" / "brickyard"
    offenders = [p for p in src.rglob("*.py") if "os.environ" in p.read_text() and p.name != "settings.py"]
    assert offenders == []


@pytest.mark.parametrize("cls, status, code", [
    (errors.InvalidParameterValue, 400, "INVALID_PARAMETER_VALUE"),
    (errors.Unauthenticated, 401, "UNAUTHENTICATED"),
    (errors.PermissionDenied, 403, "PERMISSION_DENIED"),
    (errors.NotFound, 404, "RESOURCE_DOES_NOT_EXIST"),
    (errors.AlreadyExists, 409, "RESOURCE_ALREADY_EXISTS"),
    (errors.RateLimited, 429, "REQUEST_LIMIT_EXCEEDED"),
])
def test_error_tree_maps_to_databricks(cls: type[errors.BrickyardError], status: int, code: str) -> None:
    exc = cls("boom")
    assert exc.http_status == status and exc.to_dict() == {"error_code": code, "message": "boom"}
