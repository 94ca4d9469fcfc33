"""`compress inspect`: what an ONNX (or ORT-format) file is, read from the file alone: opsets, IR
version, inputs and outputs, parameters, size, op histogram, how much of the weights is int8,
its compress.* metadata and the oldest onnxruntime that loads it. Works on any ONNX file, with
or without our metadata.

Weights are counted by element over the initializers: parameters are the elements of float
(fp32/fp16/bf16/fp64) and 8-bit integer initializers; the int8 share is 8-bit elements over
8-bit plus float elements, leaving out scalars (per-tensor scales) and int32/int64 tensors
(quantized biases, shapes), so a fully quantized model reads close to 100 %.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from compress.errors import ArtifactError
from compress.onnx.ort_compat import min_onnxruntime

# ONNX TensorProto element types (the ORT format uses the same codes).
FLOATS = {1: "float", 10: "float16", 16: "bfloat16", 11: "double"}
EIGHT_BIT = {2: "uint8", 3: "int8"}
DTYPE_NAMES = {**FLOATS, **EIGHT_BIT, 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
               8: "string", 9: "bool", 12: "uint32", 13: "uint64"}
COUNTING = ("parameters = elements of float and 8-bit initializers; int8 share = 8-bit elements "
            "/ (8-bit + float elements), scalars and int32/int64 tensors left out")


def weight_summary(tensors: Iterable[tuple[int, int]]) -> dict[str, object]:
    """From (element type, element count) per initializer: parameters, elements per dtype and
    the share of weights stored in 8 bits (see the module docstring for what counts)."""
    per_dtype: Counter[str] = Counter()
    params = n8 = nf = 0
    for dtype, size in tensors:
        per_dtype[DTYPE_NAMES.get(dtype, f"type{dtype}")] += size
        if dtype in EIGHT_BIT:
            params += size
            n8 += size
        elif dtype in FLOATS:
            params += size
            nf += size if size > 1 else 0
    return {"params": params, "int8_weight_fraction": n8 / max(1, n8 + nf),
            "initializer_elements": dict(sorted(per_dtype.items()))}


def _decode(key: str, value: str) -> object:
    if key.startswith("compress."):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            pass
    return value


def _onnx_info(path: Path) -> dict:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ArtifactError(f"{path}: not an ONNX or ORT-format model ({type(e).__name__}); "
                            "give a .onnx file (or a .ort file)") from e
    if not model.graph.node and not model.graph.input:
        raise ArtifactError(f"{path}: not an ONNX or ORT-format model (no graph); give a .onnx "
                            "file (or a .ort file)")

    def value(v) -> dict:
        t = v.type.tensor_type
        shape = [d.dim_param or d.dim_value if (d.dim_param or d.HasField("dim_value")) else "?"
                 for d in t.shape.dim]
        return {"name": v.name, "shape": shape,
                "dtype": DTYPE_NAMES.get(t.elem_type, f"type{t.elem_type}")}

    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    return {
        "format": "onnx",
        "ir_version": int(model.ir_version),
        "opsets": opsets,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [value(v) for v in model.graph.input],
        "outputs": [value(v) for v in model.graph.output],
        "ops": dict(Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                            for n in model.graph.node).most_common()),
        **weight_summary((t.data_type, _elements(t.dims)) for t in model.graph.initializer),
        "metadata": {p.key: _decode(p.key, p.value) for p in model.metadata_props},
        "min_onnxruntime": min_onnxruntime(int(model.ir_version), opsets),
    }


def _elements(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _ort_info(path: Path, buf: bytearray) -> dict:
    """An ORT-format (flatbuffer) file, read with the reader onnxruntime ships for its tools."""
    import onnxruntime as ort
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    session = fbs.InferenceSession.InferenceSession.GetRootAsInferenceSession(buf, 0)
    model = session.Model()
    graph = model.Graph()
    opsets = {(model.OpsetImport(i).Domain().decode() or "ai.onnx"):
              int(model.OpsetImport(i).Version()) for i in range(model.OpsetImportLength())}
    ops = Counter()
    for i in range(graph.NodesLength()):
        node = graph.Nodes(i)
        domain = node.Domain().decode()
        ops[node.OpType().decode() if domain in ("", "ai.onnx") else
            f"{domain}.{node.OpType().decode()}"] += 1
    inits = [graph.Initializers(i) for i in range(graph.InitializersLength())]
    meta = {}
    for i in range(model.MetadataPropsLength()):
        key, val = model.MetadataProps(i).Key().decode(), model.MetadataProps(i).Value().decode()
        meta[key] = _decode(key, val)
    try:  # shapes and types of the inputs and outputs, as the runtime sees them
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ArtifactError(f"{path}: ORT-format file that onnxruntime {ort.__version__} cannot "
                            f"load ({str(e).splitlines()[0][:200]})") from e

    def value(v) -> dict:
        return {"name": v.name, "shape": [d if d is not None else "?" for d in v.shape],
                "dtype": v.type.removeprefix("tensor(").removesuffix(")")}

    # The file records its ORT-format version, not the runtime that wrote it; our metadata does.
    writer = (meta.get("compress.versions") or {}).get("onnxruntime") if isinstance(
        meta.get("compress.versions"), dict) else None
    # ORT adds every domain it knows to an ORT-format file's imports; only real ones constrain.
    used = {d: v for d, v in opsets.items() if d == "ai.onnx" or any(
        op.startswith(f"{d}.") for op in ops)}
    return {
        "format": f"ort (ORT format version {session.OrtVersion().decode()})",
        "ir_version": int(model.IrVersion()),
        "opsets": used,
        "producer": f"{model.ProducerName().decode()} {model.ProducerVersion().decode()}".strip(),
        "inputs": [value(v) for v in s.get_inputs()],
        "outputs": [value(v) for v in s.get_outputs()],
        "ops": dict(ops.most_common()),
        **weight_summary((t.DataType(), _elements(t.DimsAsNumpy() if t.DimsLength() else []))
                         for t in inits),
        "metadata": meta,
        "min_onnxruntime": min_onnxruntime(int(model.IrVersion()), used,
                                           ort_format_by=writer or ort.__version__),
    }


def inspect_file(path: str | Path, mobile: bool = False) -> dict[str, object]:
    """Everything `compress inspect` shows, as a dict (the `--json` output). `mobile`: run
    onnxruntime's mobile usability checker on an ONNX file; a `target: mobile` build carries
    the checker's result in its metadata either way."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a model file" if path.is_dir() else "file not found"
        raise ArtifactError(f"{path}: {what}; give an .onnx or .ort file")
    try:
        head = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read it ({e.strerror})") from e
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py import fbs

    buf = bytearray(head)
    is_ort = len(buf) >= 8 and fbs.InferenceSession.InferenceSession.\
        InferenceSessionBufferHasIdentifier(buf, 0)
    info = _ort_info(path, buf) if is_ort else _onnx_info(path)
    target = info["metadata"].get("compress.target")
    usability = target.get("usability") if isinstance(target, dict) else None
    if mobile and not is_ort:
        from compress.onnx.mobile import check_usability

        usability = check_usability(path)
    # Weights saved beside the .onnx (external data) are part of the model's size: name them.
    from compress.onnx.external import external_files

    weights = [] if is_ort else [{"file": p.name, "size_bytes": p.stat().st_size}
                                 for p in external_files(path)]
    return {"path": str(path), "size_bytes": len(head) + sum(w["size_bytes"] for w in weights),
            "file_size_bytes": len(head), "external_data": weights, **info,
            "weights_counted": COUNTING, "mobile_usability": usability}


def _parts(info: dict) -> str:
    """' (model.onnx 5,381 + weights file model.onnx.data 213,600)' for a model with external
    data; '' for a self-contained one."""
    weights = info.get("external_data") or []
    if not weights:
        return ""
    files = " + ".join(f"weights file {w['file']} {w['size_bytes']:,}" for w in weights)
    return f" ({Path(info['path']).name} {info['file_size_bytes']:,} + {files})"


def format_inspection(info: dict) -> str:
    """The human-readable `compress inspect` output."""
    def io(vs: list[dict]) -> str:
        return ", ".join(f"{v['name']} {v['dtype']}[{', '.join(map(str, v['shape']))}]"
                         for v in vs)

    mo = info["min_onnxruntime"]
    lines = [
        f"{info['path']}: {info['format']}, {info['size_bytes']:,} bytes" + _parts(info),
        f"ir version     {info['ir_version']}   producer: {info['producer'] or '-'}",
        "opsets         " + ", ".join(f"{d} {v}" for d, v in info["opsets"].items()),
        f"inputs         {io(info['inputs'])}",
        f"outputs        {io(info['outputs'])}",
        f"parameters     {info['params']:,}   initializer elements: "
        + ", ".join(f"{k} {v:,}" for k, v in info["initializer_elements"].items()),
        f"int8 weights   {100 * info['int8_weight_fraction']:.1f} %  ({info['weights_counted']})",
        f"onnxruntime    >= {mo['version']}  ({mo['why']}; {mo['reference']})",
        "ops            " + ", ".join(f"{k} x{v}" for k, v in info["ops"].items()),
    ]
    if info.get("mobile_usability"):
        from compress.onnx.mobile import coverage_text

        lines.append("mobile EPs     " + coverage_text(info["mobile_usability"])
                     + "  (onnxruntime's mobile usability checker)")
    meta = info["metadata"]
    lines.append("metadata       " + ("(none)" if not meta else ""))
    for key, value in meta.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        lines.append(f"  {key}: {text}")
    return "\n".join(lines)


def int8_weight_fraction(path: Path) -> float:
    """Share of weight elements stored as 8-bit integers (counted as `compress inspect` does)."""
    from compress.onnx.inspection import inspect_file

    return float(inspect_file(path)["int8_weight_fraction"])
