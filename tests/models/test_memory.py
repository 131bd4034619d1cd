"""A large embedding job gives its working memory back (issue 18, point 9): ONNX Runtime's arenas keep their
peak between runs, and glibc keeps freed heap memory, so without ``release()`` a server that once embedded a
big index kept that peak for good. Run in a child process, so the measure is this job's alone."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime", reason="needs the 'local' extra")

CHILD = r"""
import json, numpy as np
from brickyard.core.memory import trim
from brickyard.models._minilm import MiniLMEmbedder

def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024

model = MiniLMEmbedder(batch_size=32)
model.embed(["warm up"])
start = rss()
rng = np.random.default_rng(0)
words = "the index keeps vectors and text for every chunk of the documents ingested from a folder".split()
model.embed([" ".join(rng.choice(words, size=200)) for _ in range(600)])  # long inputs: the arena's peak
peak = rss()
trim()
trimmed = rss()
model.release()
trim()
print(json.dumps({"start": start, "peak": peak, "trimmed": trimmed, "released": rss()}))
"""


def test_release_gives_back_what_a_large_embedding_job_took() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300, check=True)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    grown = m["peak"] - m["start"]
    assert grown > 100, m  # the job did need working memory
    assert m["released"] - m["start"] < 0.5 * grown, m  # and most of it is back after release()
    assert m["trimmed"] - m["released"] > 0.3 * grown, m  # trimming alone did not do it: the arenas held it
