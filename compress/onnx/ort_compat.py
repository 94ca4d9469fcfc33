"""The oldest onnxruntime that loads a model, from what the file declares: its IR version and the
opset of each domain it imports (and, for an ORT-format file, the runtime that wrote it).

ONNX Runtime refuses a model whose IR version or opsets are newer than the ONNX release it was
built with, and runs every older one (opset >= 7). The table is ORT's own version matrix,
https://onnxruntime.ai/docs/reference/compatibility.html (columns: ONNX opset, ONNX ML opset,
supported IR version), from 1.10 on; older runtimes are not worth naming for new exports.
"""

from __future__ import annotations

# (onnxruntime release, ai.onnx opset, ai.onnx.ml opset, highest IR version), oldest first.
ORT_RELEASES: tuple[tuple[str, int, int, int], ...] = (
    ("1.10.0", 15, 2, 8),
    ("1.11.0", 16, 2, 8),
    ("1.12.0", 17, 3, 8),
    ("1.14.0", 18, 3, 8),
    ("1.15.0", 19, 3, 9),
    ("1.17.0", 20, 4, 9),
    ("1.18.0", 21, 4, 10),
    ("1.21.0", 22, 4, 10),
    ("1.22.0", 22, 5, 10),
    ("1.23.0", 23, 5, 11),
)
OLDEST = ORT_RELEASES[0][0]
# Contrib ops (com.microsoft: QLinearConv, QGemm, ...) are versioned 1 in every release listed;
# they add no constraint beyond the table's first row.
DOMAINS = {"": 1, "ai.onnx": 1, "ai.onnx.ml": 2}


def version_tuple(version: str) -> tuple[int, ...]:
    """'1.18.0' -> (1, 18, 0); a suffix such as '1.19.0.dev' or '+cpu' is ignored."""
    out = []
    for part in version.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def min_onnxruntime(ir_version: int, opsets: dict[str, int], ort_format_by: str | None = None
                    ) -> dict[str, object]:
    """{"version": oldest onnxruntime that loads it, "why": what decided it, "reference": url}.

    `opsets` maps domain ('' or 'ai.onnx', 'ai.onnx.ml', ...) to the opset the model imports.
    `ort_format_by` is the onnxruntime version that wrote an ORT-format file: ORT guarantees
    that newer runtimes read older ORT-format files, not the reverse, so that version is the floor.
    """
    needs: list[tuple[tuple[int, ...], str, str]] = [(version_tuple(OLDEST), OLDEST,
                                                      "the oldest release this table lists")]

    def first(column: int, value: int, what: str) -> None:
        for row in ORT_RELEASES:
            if row[column] >= value:
                needs.append((version_tuple(row[0]), row[0], what))
                return
        newest = ORT_RELEASES[-1][0]
        needs.append((version_tuple(newest) + (1,), f"> {newest}",
                      f"{what}, newer than any release in the table"))

    first(3, ir_version, f"IR version {ir_version}")
    for domain, version in opsets.items():
        if DOMAINS.get(domain) == 1:
            first(1, version, f"ai.onnx opset {version}")
        elif DOMAINS.get(domain) == 2:
            first(2, version, f"ai.onnx.ml opset {version}")
    if ort_format_by:
        needs.append((version_tuple(ort_format_by), ort_format_by,
                      f"ORT format written by onnxruntime {ort_format_by}"))
    _, version, why = max(needs, key=lambda n: n[0])
    return {"version": version, "why": why,
            "reference": "https://onnxruntime.ai/docs/reference/compatibility.html"}


def min_onnxruntime_of(model) -> dict[str, object]:
    """`min_onnxruntime` of a loaded onnx.ModelProto."""
    return min_onnxruntime(int(model.ir_version),
                           {o.domain: int(o.version) for o in model.opset_import})
