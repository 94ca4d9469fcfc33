"""Per-node placement of int8 vs fp32, chosen by measurement: the settings that keep narrow
convs (fewer than ~8 input channels: the first conv of an image model) in fp32 are built beside
the all-int8 ones, timed with them, and kept only where they are faster at every batch size
that decides.

Why narrow convs: an int8 conv quantizes its input and, on x86, reorders it to NHWC; with one
input channel there is almost no arithmetic to amortize that (measured on the digits student:
its first conv costs 2.7x its fp32 version in int8).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from compress.onnx.quantization import Setting


def narrow_convs(path: Path, max_in_channels: int) -> list[str]:
    """Names of the Conv nodes of `path` with fewer than `max_in_channels` input channels
    (weight (out, in / group, k...) x group), in graph order."""
    import onnx

    graph = onnx.load(str(path)).graph
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in shapes:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if shapes[node.input[1]][1] * group < max_in_channels:
            out.append(node.name)
    return out


def placement_variants(settings: list[Setting], narrow: list[str]) -> list[Setting]:
    """One variant per static setting with the narrow convs kept in fp32 (none without any)."""
    if not narrow:
        return []
    return [replace(s, keep_float=tuple(narrow)) for s in settings if s.mode == "static"]


def sibling_name(setting_name: str) -> str:
    """The all-int8 setting a placement variant is compared with."""
    return setting_name.removesuffix("+fp32-narrow")


def placement_verdict(variant: dict, sibling: dict) -> tuple[bool, str]:
    """(keep?, why): a variant (latency {"b1": {"speedup": x}, ...}) is kept only when it is
    faster than its all-int8 sibling at every batch size measured."""
    slower = [b for b, v in variant.items() if v["speedup"] <= sibling[b]["speedup"]]
    text = ", ".join(f"{b}: {variant[b]['speedup']:.2f}x vs {sibling[b]['speedup']:.2f}x"
                     for b in variant)
    if slower:
        return False, f"not faster than all-int8 at {', '.join(slower)} ({text} over fp32)"
    return True, f"faster than all-int8 at every batch size ({text} over fp32)"
