"""The BERT encoder of ``_minilm`` as an ONNX graph, run by ONNX Runtime.

The graph is written here, node by node, from the same safetensors weights (no export step, no torch):
embeddings + LayerNorm, then per layer ONNX Runtime's fused CPU kernels ``Attention`` (the Q, K and V
projections in one GEMM, masked softmax, context) and ``BiasGelu`` (exact erf GELU), with residual + bias
+ LayerNorm as plain ``Add`` and ``LayerNormalization`` nodes. ORT would fuse those into its
``SkipLayerNormalization`` kernel, which measured 2.4x slower than the unfused pair on one core (AVX-512,
ORT 1.32), so that fusion is switched off. Fewer, larger kernels than numpy's one call per operation: a
short query is about twice as fast per core, and a batch of long inputs spreads over every core.

``precision="int8"`` runs the Q/K/V, attention-output and first feed-forward projections (two thirds of
the multiply-adds) on 8-bit integer kernels:

* weights are quantized per output column, activations per token (row), symmetrically;
* before quantizing, each input channel is divided by a smoothing factor that is multiplied into the
  weight's row instead (SmoothQuant, migration strength ``ALPHA``), so the few channels with outlying
  activations no longer crush the others' resolution;
* the factors come from the largest activation of each channel over a small calibration batch, which
  the caller makes from random vocabulary (it needs no data set: the outlying channels are a property
  of the weights, not of the text);
* the second feed-forward projection stays float: its post-GELU inputs are the hardest to quantize and
  keeping it float is what holds the embeddings at cosine >= 0.999 to float32;
* inputs shorter than ``INT8_MIN_TOKENS`` run on the float graph, which the encoder keeps beside the
  int8 one: with few tokens to average over, the rounding shows (one word: cosine down to 0.996), and a
  short input costs little in float anyway.

The numpy pass stays as the reference (the tests hold fp32 ONNX to cosine 0.99999 of it, int8 to 0.999)
and the fallback where ONNX Runtime is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MS = "com.microsoft"
PRECISIONS = ("fp32", "int8")
ALPHA = 0.7  # SmoothQuant migration strength: 0.5 and 0.85 both measured worse on MiniLM
# passed to ORT; an unknown name is ignored silently, so a test checks that the fusion did not happen
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]
# shorter inputs (CLS and SEP included) run in fp32; from 10 tokens on, int8 measured cosine >= 0.9991
INT8_MIN_TOKENS = 12


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _projections(w: dict[str, np.ndarray], i: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Layer ``i``'s dense weights, (in, out) layout, and biases by the names the graph and the
    calibration use."""
    p = f"encoder.layer.{i}."
    qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=1)
    qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
    return {"qkv": (qkv, qkv_bias),
            "ao": (w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"]),
            "ffn1": (w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]),
            "ffn2": (w[p + "output.dense.weight"], w[p + "output.dense.bias"])}


def smoothing(peak: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per input channel: max|x|^a / max|w|^(1-a), kept away from zero (a channel never seen active)."""
    w_peak = np.maximum(np.abs(weight).max(axis=1), 1e-5)
    return np.maximum(np.maximum(peak, 1e-5) ** ALPHA / w_peak ** (1.0 - ALPHA), 1e-5).astype(np.float32)


def build_graph(w: dict[str, np.ndarray], *, heads: int, layers: int, eps: float,
                peaks: dict[str, np.ndarray] | None = None, taps: bool = False, first_only: bool = False) -> bytes:
    """A serialized ONNX model: inputs ``input_ids``, ``token_type_ids`` (int64, n x l), ``position_ids``
    (int64, 1 x l), ``mask`` (int32, n x l); output ``hidden`` (float32, n x l x hidden). ``w`` holds
    the encoder's weights with dense kernels in (in, out) layout, as ``MiniLMEmbedder`` keeps them.

    ``first_only``: ``hidden`` is n x 1 x hidden, the first position alone (what a cross-encoder's head
    reads). The last layer then projects keys and values for every token but queries, attention output
    and feed-forward for that one position only: the same numbers, a sixth less work on MiniLM-L6.

    ``peaks`` (``"<layer>.<projection>"`` -> largest |activation| per input channel) makes the int8
    graph; ``taps`` adds an output ``tap.<layer>.<projection>`` with the input of each projection int8
    quantizes, which is how the peaks are measured."""
    from onnx import TensorProto, helper, numpy_helper

    initializers: list[Any] = []
    nodes: list[Any] = []
    outputs: list[Any] = []
    hidden = int(w["embeddings.word_embeddings.weight"].shape[1])

    named: dict[str, np.ndarray] = {}

    def const(name: str, value: np.ndarray) -> str:
        """An initializer; a name given twice must hold the same value (small shared constants are)."""
        if name in named:
            if not np.array_equal(named[name], value):
                raise ValueError(f"two different constants are both named {name!r}")
            return name
        named[name] = value
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=value.dtype), name))
        return name

    def op(kind: str, inputs: list[str], *, domain: str = "", outs: int = 1, **attrs: Any) -> Any:
        names = [f"n{len(nodes)}.{j}" for j in range(outs)]
        nodes.append(helper.make_node(kind, inputs, names, domain=domain, name=f"n{len(nodes)}", **attrs))
        return names[0] if outs == 1 else names

    def residual_norm(x: str, residual: str, gain: np.ndarray, shift: np.ndarray, name: str) -> str:
        return op("LayerNormalization", [op("Add", [x, residual]), const(name + ".g", gain), const(name + ".b", shift)],
                  epsilon=eps, axis=-1)

    batch_shape = ""
    if peaks is not None:  # what the int8 projections share
        const("one", np.array(1.0, np.float32))
        const("q.max", np.array(127.0, np.float32))
        const("q.tiny", np.array(1e-12, np.float32))
        const("q.zero", np.array(128, np.uint8))
        batch_shape = op("Slice", [op("Shape", ["input_ids"]), const("at0", np.array([0], np.int64)),
                                   const("at2", np.array([2], np.int64))])
    shapes: dict[tuple[str, int], str] = {}

    def dense_int8(x: str, weight: np.ndarray, peak: np.ndarray, name: str, *, parts: int = 1,
                   lead: str = "") -> list[str]:
        """x @ weight on integer kernels, as ``parts`` equal blocks of output columns (Q, K and V come out
        as three products of one quantized input rather than a Split of one wide product). Per-token int8
        activations (stored as uint8 around 128, the u8 x s8 kernels being ORT's fastest), per-column int8
        weights, both smoothed as the module says. ``lead``: the output's leading (n, l) shape when it is
        not the input ids' (the last layer of a ``first_only`` graph)."""
        s = smoothing(peak, weight)
        smoothed = weight * s[:, None]
        w_scale = (np.maximum(np.abs(smoothed).max(axis=0), 1e-12) / 127.0).astype(np.float32)
        w_int8 = np.clip(np.round(smoothed / w_scale), -127, 127).astype(np.int8)
        rows = op("Reshape", [op("Mul", [x, const(name + ".inv_s", (1.0 / s).astype(np.float32))]),
                              const(name + ".rows", np.array([-1, weight.shape[0]], np.int64))])
        scale = op("Add", [op("Div", [op("ReduceMax", [op("Abs", [rows])], axes=[1], keepdims=0), "q.max"]),
                           "q.tiny"])
        zero = op("ConstantOfShape", [op("Shape", [scale])],
                  value=helper.make_tensor("zero", TensorProto.UINT8, [1], [128]))
        quantized = op("QuantizeLinear", [rows, scale, zero], axis=0)
        row_scale = op("Unsqueeze", [scale, const("axis1", np.array([1], np.int64))])
        width = weight.shape[1] // parts
        key = (lead or batch_shape, width)
        if key not in shapes:
            shapes[key] = op("Concat", [key[0], const(f"width{width}", np.array([width], np.int64))], axis=0)
        outs = []
        for j in range(0, weight.shape[1], width):
            product = op("MatMulIntegerToFloat", [quantized, const(f"{name}.w{j}", w_int8[:, j:j + width]), "one",
                                                  const(f"{name}.w_scale{j}", w_scale[j:j + width]), "q.zero"],
                         domain=MS)
            outs.append(op("Reshape", [op("Mul", [product, row_scale]), shapes[key]]))
        return outs

    def tap(x: str, name: str, width: int) -> None:
        if taps:
            nodes.append(helper.make_node("Identity", [x], [f"tap.{name}"]))
            outputs.append(helper.make_tensor_value_info(f"tap.{name}", TensorProto.FLOAT, ["n", None, width]))

    e = "embeddings."
    x = op("Add", [op("Add", [op("Gather", [const("word", w[e + "word_embeddings.weight"]), "input_ids"]),
                             op("Gather", [const("position", w[e + "position_embeddings.weight"]), "position_ids"])]),
                   op("Gather", [const("token_type", w[e + "token_type_embeddings.weight"]), "token_type_ids"])])
    x = op("LayerNormalization", [x, const("emb.g", w[e + "LayerNorm.weight"]), const("emb.b", w[e + "LayerNorm.bias"])],
           epsilon=eps, axis=-1)
    lead = ""  # the (n, l) of what the int8 projections put out, when it is not the input ids' shape
    for i in range(layers):
        p = f"encoder.layer.{i}."
        dense = _projections(w, i)
        tap(x, f"{i}.qkv", hidden)
        qkv_bias = const(f"{i}.qkv.bias", dense["qkv"][1])
        if first_only and i == layers - 1:  # queries from the first position, keys and values from all
            everyone, x = x, op("Slice", [x, const("at0", np.array([0], np.int64)), const("at1", np.array([1], np.int64)),
                                          const("axis1", np.array([1], np.int64))])
            qkv_w = dense["qkv"][0]
            if peaks is not None:
                lead = op("Slice", [op("Shape", [x]), "at0", "at2"])
                q = dense_int8(x, qkv_w[:, :hidden], peaks[f"{i}.qkv"], f"{i}.q", lead=lead)[0]
                k, v = dense_int8(everyone, qkv_w[:, hidden:], peaks[f"{i}.qkv"], f"{i}.kv", parts=2)
            else:
                q = op("MatMul", [x, const(f"{i}.q.w", qkv_w[:, :hidden])])
                k = op("MatMul", [everyone, const(f"{i}.k.w", qkv_w[:, hidden:2 * hidden])])
                v = op("MatMul", [everyone, const(f"{i}.v.w", qkv_w[:, 2 * hidden:])])
            attended = op("MultiHeadAttention", [q, k, v, qkv_bias, "mask"], domain=MS, num_heads=heads)
        elif peaks is not None:
            q, k, v = dense_int8(x, dense["qkv"][0], peaks[f"{i}.qkv"], f"{i}.qkv", parts=3)
            attended = op("MultiHeadAttention", [q, k, v, qkv_bias, "mask"], domain=MS, num_heads=heads)
        else:
            attended = op("Attention", [x, const(f"{i}.qkv.w", dense["qkv"][0]), qkv_bias, "mask"],
                          domain=MS, num_heads=heads)
        tap(attended, f"{i}.ao", hidden)
        projected = op("Add", [dense_int8(attended, dense["ao"][0], peaks[f"{i}.ao"], f"{i}.ao", lead=lead)[0] if peaks is not None
                               else op("MatMul", [attended, const(f"{i}.ao.w", dense["ao"][0])]),
                               const(f"{i}.ao.bias", dense["ao"][1])])
        x1 = residual_norm(projected, x, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], f"{i}.ln1")
        tap(x1, f"{i}.ffn1", hidden)
        up = (dense_int8(x1, dense["ffn1"][0], peaks[f"{i}.ffn1"], f"{i}.ffn1", lead=lead)[0] if peaks is not None
              else op("MatMul", [x1, const(f"{i}.ffn1.w", dense["ffn1"][0])]))
        inner = op("BiasGelu", [up, const(f"{i}.ffn1.bias", dense["ffn1"][1])], domain=MS)
        down = op("Add", [op("MatMul", [inner, const(f"{i}.ffn2.w", dense["ffn2"][0])]),
                          const(f"{i}.ffn2.bias", dense["ffn2"][1])])
        x = residual_norm(down, x1, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"],
                          f"{i}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "l"]),
         helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["n", "l"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "l"]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["n", "l"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", 1 if first_only else "l", hidden]), *outputs],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
                              producer_name="brickyard")
    return bytes(model.SerializeToString())


Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # token ids, segment ids, attention mask (n x l each)


class OnnxEncoder:
    """One ONNX Runtime session over the graph above. ``threads``: intra-op threads per call (None: one
    per physical core, ONNX Runtime's default). Calls from several threads at once are safe.
    ``precision="int8"`` needs ``calibration``, a padded batch of typical inputs (see the module).
    ``first_only``: ``hidden`` gives the first position alone (see ``build_graph``)."""

    def __init__(self, w: dict[str, np.ndarray], *, heads: int, layers: int, eps: float,
                 threads: int | None = None, precision: str = "fp32", calibration: Batch | None = None,
                 first_only: bool = False) -> None:
        import onnxruntime as ort

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are ours to fix, not the user's
        # The word-embedding table (47 MB for MiniLM) is the same in the float and int8 graphs: both
        # sessions read this one copy instead of each keeping its own.
        self.word_table = np.ascontiguousarray(w["embeddings.word_embeddings.weight"], dtype=np.float32)
        self._word = ort.OrtValue.ortvalue_from_numpy(self.word_table)  # read in place, never copied
        options.add_initializer("word", self._word)
        self.options = options
        self.precision = precision
        shape = {"heads": heads, "layers": layers, "eps": eps, "first_only": first_only}
        # the float graph; for int8 it also taps the activations the calibration measures, at no cost
        # when only ``hidden`` is asked for, and it stays to run short inputs
        self.exact = self._session(build_graph(w, taps=precision == "int8", **shape))
        self.session = self.exact
        if precision == "int8":
            if calibration is None:
                raise ValueError("the int8 graph needs a calibration batch")
            self.session = self._session(build_graph(w, peaks=self.peaks(*calibration), **shape))

    def _session(self, graph: bytes) -> Any:
        import onnxruntime as ort

        return ort.InferenceSession(graph, self.options, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=DISABLED_OPTIMIZERS)

    def _run(self, names: list[str], ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray, *,
             exact: bool = False) -> list[np.ndarray]:
        positions = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        return list((self.exact if exact else self.session).run(names, {"input_ids": ids, "token_type_ids": type_ids, "position_ids": positions,
                                             "mask": mask.astype(np.int32)}))

    def release(self) -> None:
        """Give back what the sessions' memory arenas grew to: a tiny run of each with arena shrinkage on frees
        every arena chunk not in use. Runs keep the arena between calls (shrinking on every run costs a fifth
        of the throughput), so this is for the end of a large job."""
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        ids = np.zeros((1, 2), dtype=np.int64)
        feeds = {"input_ids": ids, "token_type_ids": ids, "position_ids": np.arange(2, dtype=np.int64)[None, :],
                 "mask": np.ones((1, 2), dtype=np.int32)}
        for session in {id(s): s for s in (self.session, self.exact)}.values():
            session.run([session.get_outputs()[0].name], feeds, options)

    def hidden(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray, *, exact: bool = False) -> np.ndarray:
        return np.asarray(self._run(["hidden"], ids, type_ids, mask, exact=exact)[0])

    def peaks(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """The largest |activation| per channel at each tap, over the real (unpadded) tokens (the first
        alone at the last layer's taps of a ``first_only`` graph)."""
        names = [o.name for o in self.exact.get_outputs() if o.name.startswith("tap.")]
        real = mask.astype(bool)
        return {name.removeprefix("tap."): np.abs(value[real[:, :value.shape[1]]]).max(axis=0)
                for name, value in zip(names, self._run(names, ids, type_ids, mask, exact=True), strict=True)}
