"""Export a converted torch module to ONNX (opset 18, dynamic batch), with an FP16 variant.

The FP16 file keeps float32 inputs and outputs and carries the half precision
in its weights and compute, because TensorRT 11 has no FP16 builder flag: the
precision must be in the ONNX file. Each file records the sha256 of the model
it came from and the exporter version in its metadata; a cached file whose
record does not match is exported again.

Example:
    >>> path = export_onnx(module, "selfie.onnx", source_sha256="ab" * 32)  # doctest: +SKIP
    >>> fp16 = export_fp16(path, "selfie.fp16.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from engines.errors import ModelFormatError, OutputError

if TYPE_CHECKING:
    import torch  # imported by export_onnx alone: a cached model's run need not load it

OPSET = 18
EXPORTER_VERSION = "5"
INPUT_NAME, OUTPUT_NAME = "image", "mask"


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def is_current(path: Path, source_sha256: str) -> bool:
    """True when ``path`` is an export of the model with that sha256 by this exporter version."""
    if not path.is_file():
        return False
    try:
        meta = _metadata(onnx.load(str(path), load_external_data=False))
    except Exception:
        return False
    return meta.get("source_sha256") == source_sha256 and meta.get("exporter_version") == EXPORTER_VERSION


def _stamp(model: onnx.ModelProto, source_sha256: str, precision: str) -> None:
    del model.metadata_props[:]
    for key, value in (("source_sha256", source_sha256), ("exporter_version", EXPORTER_VERSION),
                       ("precision", precision), ("producer", "realtime-masking")):
        model.metadata_props.add(key=key, value=value)


def _save(model: onnx.ModelProto, out: Path) -> Path:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".part")
        onnx.save(model, str(partial))
        partial.replace(out)
    except OSError as exc:
        raise OutputError(f"cannot write ONNX file {out}: {exc.strerror}; choose a writable --out path") from exc
    return out


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    return {
        info.name: [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        for info in [*graph.value_info, *graph.input, *graph.output]
    }


def simplify_for_runtimes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite two exporter habits that slow ONNX Runtime and TensorRT, keeping the maths identical.

    * ``ReduceMean`` over H and W (keepdims) becomes ``GlobalAveragePool`` (ONNX Runtime keeps it in its
      blocked NCHWc layout instead of reordering around it);
    * ``Resize`` whose output size is computed at run time (``Shape``/``Concat`` for the dynamic batch)
      gets constant ``scales`` instead; the dead shape arithmetic is dropped.
    """
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    shapes = _static_shapes(model)
    rewritten = []
    for node in graph.node:
        if node.op_type == "ReduceMean" and len(node.input) > 1 and node.input[1] in constants:
            axes = sorted(int(a) % 4 for a in np.atleast_1d(constants[node.input[1]]))
            keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
            if axes == [2, 3] and keepdims == 1 and len(shapes.get(node.input[0], [])) == 4:
                rewritten.append(helper.make_node("GlobalAveragePool", [node.input[0]], [node.output[0]], name=node.name))
                continue
        if node.op_type == "Resize" and len(node.input) == 4 and node.input[3] and node.input[3] not in constants:
            before, after = shapes.get(node.input[0], []), shapes.get(node.output[0], [])
            if len(before) == 4 and len(after) == 4 and all(before[2:]) and all(after[2:]):
                ratio_h, ratio_w = int(after[2] or 1) / int(before[2] or 1), int(after[3] or 1) / int(before[3] or 1)
                scales = numpy_helper.from_array(np.array([1.0, 1.0, ratio_h, ratio_w], np.float32), f"{node.output[0]}_scales")
                graph.initializer.append(scales)
                replacement = helper.make_node("Resize", [node.input[0], "", scales.name], [node.output[0]], name=node.name)
                replacement.attribute.extend(node.attribute)
                rewritten.append(replacement)
                continue
        rewritten.append(node)
    del graph.node[:]
    graph.node.extend(_drop_dead_nodes(rewritten, {o.name for o in graph.output}))
    used = {i for node in graph.node for i in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def _drop_dead_nodes(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    needed, kept = set(outputs), []
    for node in reversed(nodes):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    return kept[::-1]


def export_onnx(module: torch.nn.Module, out: str | Path, source_sha256: str,
                input_hw: tuple[int, int] | None = None) -> Path:
    """Export an NCHW segmentation module to ONNX with a dynamic batch dimension.

    Args:
        module: takes ``[N, 3, H, W]`` float32 and returns ``[N, C, H, W]``.
        out: destination ``.onnx`` path.
        source_sha256: sha256 of the model file the module came from (stored as metadata).
        input_hw: model input size; default ``module.input_hw``.

    Returns:
        The written path.
    """
    import torch

    out = Path(out)
    height, width = input_hw or module.input_hw  # type: ignore[misc]
    example = torch.rand(2, 3, height, width)
    batch = torch.export.Dim("batch", min=1, max=4096)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(), (example,), None, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            opset_version=OPSET, dynamic_shapes=({0: batch},), dynamo=True, verbose=False,
            optimize=True,
        )
    if program is None:  # pragma: no cover - dynamo export always returns a program
        raise ModelFormatError("torch.onnx.export returned no program")
    model = simplify_for_runtimes(program.model_proto)
    onnx.checker.check_model(model)
    _stamp(model, source_sha256, "fp32")
    return _save(model, out)


def export_fp16(fp32_path: str | Path, out: str | Path) -> Path:
    """Write an FP16 copy of an ONNX model whose inputs and outputs stay float32.

    Example:
        >>> export_fp16("selfie.onnx", "selfie.fp16.onnx")  # doctest: +SKIP
    """
    from onnxconverter_common import float16

    fp32_path, out = Path(fp32_path), Path(out)
    model = onnx.load(str(fp32_path))
    source = _metadata(model).get("source_sha256", "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    onnx.checker.check_model(half)
    _stamp(half, source, "fp16")
    return _save(half, out)
