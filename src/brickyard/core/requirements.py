"""Whether this Python environment has what a piece of user code asks for (an app's requirements.txt, a job's
wheel's ``Requires-Dist``): Brickyard runs offline and installs nothing at run time, so an unmet requirement is
an error that names it, before anything starts."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import InvalidRequirement, Requirement


def unmet(lines: Iterable[str], *, extra: str | None = None) -> list[str]:
    """The requirements (requirements.txt lines or PEP 508 strings) this environment does not satisfy: a missing
    distribution by its name, a version outside the range with the version there is. Comments, options and
    requirements whose markers do not apply (another platform, an extra not asked for) are skipped."""
    missing = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            missing.append(f"{line[:80]} (not a requirement)")
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": extra or ""}):
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            missing.append(req.name)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{req} (have {have})")
    return missing
