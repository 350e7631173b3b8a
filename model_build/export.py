"""Export a SentenceClassifier to ONNX, fuse it for onnxruntime and quantize it to int8 (per channel)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.fusion_options import FusionOptions
from onnxruntime.transformers.optimizer import optimize_model
from torch import nn

log = logging.getLogger(__name__)
OPSET = 17


def export_onnx(model: nn.Module, path: Path, *, output_name: str, probabilities: bool = True,
                embedding_name: str | None = None) -> Path:
    """TorchScript export: unlike the dynamo route, its attention pattern gets fully fused.
    `embedding_name`: also output the sentence embedding under that name (a SentenceClassifier)."""
    model = copy.deepcopy(model).eval()
    if hasattr(model, "probabilities"):
        model.probabilities = probabilities
    output_names = [output_name]
    if embedding_name:
        model.with_embedding = True
        output_names.append(embedding_name)
    dummy_ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    dummy_mask = (dummy_ids != 0).to(torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (dummy_ids, dummy_mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=output_names,
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                **{name: {0: "batch"} for name in output_names},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    return path


def fuse(path_in: Path, path_out: Path, *, num_heads: int, hidden_size: int, attention_mask: bool = True) -> Path:
    """Attention, embedding and GELU fused; residual + LayerNormalization left as two plain ops.

    `attention_mask=False`: the fused attention takes no mask, for a graph only ever run on unpadded rows. The
    serving engine never pads (engine/classifier.py: a text alone, or texts of one token length together), and
    its attention then skips the mask's per-call set-up: `session.run` in 0.964x the time, outputs bit-identical
    (docs/model.md, speed levers). The mean pooling still reads `attention_mask`. The training embeddings
    (model_build/train.py `embed`) run padded chunks and keep the mask.

    onnxruntime 1.32's SkipLayerNormalization kernel takes ~45 us more per call than Add + LayerNormalization
    on these CPUs for a short text (12 calls: ~0.35 ms of a 2 ms forward pass; docs/model.md, "Engine"), so
    the fusion is off here and in the engine's sessions (`create_session` disables ORT's own SkipLayerNormFusion).
    GELU uses the tanh approximation (FastGelu): 7 % faster per text, BANKING77 test accuracy unchanged
    (94.29 against 94.25 %); training embeddings go through the same graph, so train and serve agree.
    """
    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    options.enable_gelu_approximation = True
    if not attention_mask:
        options.disable_attention_mask()
    optimized = optimize_model(str(path_in), model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                               optimization_options=options)
    log.info("fused operators: %s", optimized.get_fused_operator_statistics())
    optimized.save_model_to_file(str(path_out))
    return path_out


# The classifier head (one 384 x labels product per text) stays fp32: quantizing its input costs a
# DynamicQuantizeLinear and three more nodes for a product too small to gain from int8 (~2 % of a text's
# forward pass; docs/model.md, "Engine").
HEAD_PREFIX = "/head/"


def quantize_int8(path_in: Path, path_out: Path) -> Path:
    # Per-channel weights keep BANKING77 accuracy (per-tensor loses ~1 point); the fused graph
    # needs a default tensor type for the quantizer to type the fused nodes' outputs.
    # The quantizer first rewrites a Gemm as `<name>_MatMul` + `<name>_Add`, then matches names to exclude.
    head_nodes = [name for node in onnx.load(str(path_in), load_external_data=False).graph.node
                  if node.name.startswith(HEAD_PREFIX) for name in (node.name, f"{node.name}_MatMul")]
    quantize_dynamic(
        str(path_in),
        str(path_out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        nodes_to_exclude=head_nodes,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return path_out


def export_int8(model: nn.Module, workdir: Path, *, output_name: str = "probabilities",
                probabilities: bool = True, embedding_name: str | None = None) -> Path:
    """Full route: fp32 export -> fused (no attention mask: the engine runs it unpadded) -> int8. Returns the int8
    model path inside `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = _encoder_config(model)
    raw = export_onnx(model, workdir / "model.fp32.onnx", output_name=output_name, probabilities=probabilities,
                      embedding_name=embedding_name)
    fused = fuse(raw, workdir / "model.fused.onnx", num_heads=config.num_attention_heads,
                 hidden_size=config.hidden_size, attention_mask=False)
    return quantize_int8(fused, workdir / "model.int8.onnx")


def _encoder_config(model: nn.Module):
    for module in model.modules():
        if hasattr(module, "config") and hasattr(module.config, "num_attention_heads"):
            return module.config
    raise ValueError("model has no transformer encoder with a config")


def freeze_activation_scales(path_in: Path, path_out: Path, calibration: Sequence[Sequence[int]]) -> Path:
    """Replace every DynamicQuantizeLinear with a QuantizeLinear of constant scale and zero point.

    Dynamic quantization computes one activation scale per tensor per call, so texts run together would share a
    scale: that is why the engine ran each text alone. With constant scales every row is quantized alone, and
    texts of one token length can share a forward pass bit for bit (engine/classifier.py). The scales are the
    ones DynamicQuantizeLinear computes (uint8 over [min(0, min x), max(0, max x)]) from the range each tensor
    takes over `calibration` (training texts' token ids, each run alone). The fused attention (QAttention) stays;
    onnxruntime no longer fuses the other int8 products into MatMulIntegerToFloat (it folds the scale product
    first), which measured no slower (docs/model.md, speed levers). Measured: bench/results/*-static-scales.md."""
    model = onnx.load(str(path_in))
    ranges = _activation_ranges(model, calibration)
    nodes = []
    for node in model.graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        low, high = ranges[node.input[0]]
        scale = (high - low) / 255.0 if high > low else 1.0
        zero_point = min(255, max(0, round(-low / scale)))
        quantized, scale_name, zero_point_name = node.output
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name),
            numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), zero_point_name)])
        nodes.append(helper.make_node("QuantizeLinear", [node.input[0], scale_name, zero_point_name], [quantized],
                                      name=f"{node.name}_static"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.save(model, str(path_out))
    return path_out


def _activation_ranges(model: onnx.ModelProto, calibration: Sequence[Sequence[int]]) -> dict[str, tuple[float, float]]:
    """(min(0, min x), max(0, max x)) of every DynamicQuantizeLinear input over the calibration texts."""
    probe = copy.deepcopy(model)
    names = [node.input[0] for node in probe.graph.node if node.op_type == "DynamicQuantizeLinear"]
    for name in names:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the tensors as written
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    low = dict.fromkeys(names, 0.0)
    high = dict.fromkeys(names, 0.0)
    for ids in calibration:
        input_ids = np.array([list(ids)], dtype=np.int64)
        values = session.run(names, {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)})
        for name, value in zip(names, values, strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
    return {name: (low[name], high[name]) for name in names}
