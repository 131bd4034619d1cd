"""T26: every atheris target runs briefly in ``make test`` (BRICKYARD_TEST_SCALE=nightly: ten minutes
each) from its committed seed corpus; a crash, a timeout or a memory blow-up fails the test, and the
input that caused it is left in the test's directory to become a regression seed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scaled

pytest.importorskip("atheris", reason="atheris is a dev dependency (make test installs it)")

from tests.fuzz.targets import TARGETS  # noqa: E402

ROOT = Path(__file__).parents[2]
SEEDS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz_target(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = SEEDS / target
    seconds = scaled(8, 600)
    args = [sys.executable, "-m", "tests.fuzz.targets", target, str(corpus), *([str(seeds)] if seeds.exists() else []),
            f"-max_total_time={seconds}", "-seed=1", "-rss_limit_mb=1024", "-timeout=5", "-max_len=16384",
            f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    # Through a shell that forks it, not directly: Linux carries a process's peak RSS (ru_maxrss, what libFuzzer's
    # -rss_limit_mb reads) across fork and exec, so a child of this big test process would start "over the limit".
    # The shell's own child starts from the shell's small peak.
    launch = ["sh", "-c", '"$@"; exit $?', "sh", *args]
    done = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 120)
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-", "leak-")))
    assert done.returncode == 0 and not crashes, (crashes, done.stderr[-4000:])
    assert "stat::number_of_executed_units" in done.stderr
