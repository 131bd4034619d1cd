"""The BERT encoder of ``_minilm`` as an ONNX graph, run by ONNX Runtime.

The graph is written here, node by node, from the same safetensors weights (no export step, no torch):
embeddings + LayerNorm, then per layer ONNX Runtime's fused CPU kernels: ``Attention`` (the Q, K and V
projections in one GEMM, masked softmax, context), ``SkipLayerNormalization`` (residual + bias +
LayerNorm) and ``BiasGelu`` (exact erf GELU). Fewer, larger kernels than numpy's one call per operation:
a short query is about twice as fast per core, and a batch of long inputs spreads over every core.
The numpy pass stays as the reference (the tests hold the two to cosine 0.99999) and the fallback
where ONNX Runtime is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MS = "com.microsoft"


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def build_graph(w: dict[str, np.ndarray], *, heads: int, layers: int, eps: float) -> bytes:
    """A serialized ONNX model: inputs ``input_ids``, ``token_type_ids`` (int64, n x l), ``position_ids``
    (int64, 1 x l), ``mask`` (int32, n x l); output ``hidden`` (float32, n x l x hidden). ``w`` holds
    the encoder's weights with dense kernels in (in, out) layout, as ``MiniLMEmbedder`` keeps them."""
    from onnx import TensorProto, helper, numpy_helper

    initializers: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=value.dtype), name))
        return name

    def op(kind: str, inputs: list[str], *, domain: str = "", **attrs: Any) -> str:
        out = f"n{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], domain=domain, **attrs))
        return out

    e = "embeddings."
    x = op("Add", [op("Add", [op("Gather", [const("word", w[e + "word_embeddings.weight"]), "input_ids"]),
                             op("Gather", [const("position", w[e + "position_embeddings.weight"]), "position_ids"])]),
                   op("Gather", [const("token_type", w[e + "token_type_embeddings.weight"]), "token_type_ids"])])
    x = op("LayerNormalization", [x, const("emb.g", w[e + "LayerNorm.weight"]), const("emb.b", w[e + "LayerNorm.bias"])],
           epsilon=eps, axis=-1)
    for i in range(layers):
        p = f"encoder.layer.{i}."
        qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=1)
        qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
        attended = op("Attention", [x, const(p + "qkv.w", qkv), const(p + "qkv.b", qkv_bias), "mask"],
                      domain=MS, num_heads=heads)
        projected = op("MatMul", [attended, const(p + "ao.w", w[p + "attention.output.dense.weight"])])
        x1 = op("SkipLayerNormalization", [projected, x, const(p + "ln1.g", w[p + "attention.output.LayerNorm.weight"]),
                                           const(p + "ln1.b", w[p + "attention.output.LayerNorm.bias"]),
                                           const(p + "ao.b", w[p + "attention.output.dense.bias"])],
                domain=MS, epsilon=eps)
        inner = op("BiasGelu", [op("MatMul", [x1, const(p + "in.w", w[p + "intermediate.dense.weight"])]),
                                const(p + "in.b", w[p + "intermediate.dense.bias"])], domain=MS)
        out = op("MatMul", [inner, const(p + "out.w", w[p + "output.dense.weight"])])
        x = op("SkipLayerNormalization", [out, x1, const(p + "ln2.g", w[p + "output.LayerNorm.weight"]),
                                          const(p + "ln2.b", w[p + "output.LayerNorm.bias"]),
                                          const(p + "out.b", w[p + "output.dense.bias"])], domain=MS, epsilon=eps)
    nodes.append(helper.make_node("Identity", [x], ["hidden"]))
    hidden = int(w[e + "word_embeddings.weight"].shape[1])
    graph = helper.make_graph(
        nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "l"]),
         helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["n", "l"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "l"]),
         helper.make_tensor_value_info("mask", TensorProto.INT32, ["n", "l"])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["n", "l", hidden])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)],
                              producer_name="brickyard")
    return bytes(model.SerializeToString())


class OnnxEncoder:
    """One ONNX Runtime session over the graph above. ``threads``: intra-op threads per call (None: one
    per physical core, ONNX Runtime's default). Calls from several threads at once are safe."""

    def __init__(self, w: dict[str, np.ndarray], *, heads: int, layers: int, eps: float,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or 0)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # warnings about unused initializers are ours to fix, not the user's
        self.session = ort.InferenceSession(build_graph(w, heads=heads, layers=layers, eps=eps), options,
                                            providers=["CPUExecutionProvider"])

    def hidden(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        positions = np.arange(ids.shape[1], dtype=np.int64)[None, :]
        out = self.session.run(["hidden"], {"input_ids": ids, "token_type_ids": type_ids, "position_ids": positions,
                                            "mask": mask.astype(np.int32)})
        return np.asarray(out[0])
