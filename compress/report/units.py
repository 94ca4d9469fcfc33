"""Numbers as people read them (bytes, milliseconds, energy, accuracies with their intervals):
the formatting every report module shares."""

from __future__ import annotations


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms * 1000:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def fmt_ci(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return ""
    if hi < 1:
        return f" [{lo * 1000:.0f}-{hi * 1000:.0f}]"
    if lo < 1:  # the bounds in different units: say each
        return f" [{fmt_ms(lo)} - {fmt_ms(hi)}]"
    return f" [{lo:.2f}-{hi:.2f}]"


def fmt_energy(mj: float | None, method: str | None = None) -> str:
    if mj is None:
        return "-"
    text = f"{mj * 1000:.3g} uJ" if mj < 0.1 else f"{mj:.3g} mJ"
    return text + (" (est.)" if method and "estimate" in method else "")


def fmt_joules(j: float) -> str:
    if j >= 3600:
        return f"{j / 3600:.3g} Wh"
    return f"{j / 1000:.3g} kJ" if j >= 1000 else f"{j:.3g} J"


def fmt_accuracy(acc: float, ci: list[float] | None = None) -> str:
    """'97.22 % [95.0-98.5]': the accuracy and its 95 % Wilson interval, where recorded."""
    return f"{acc:.2f} %" + (f" [{ci[0]:.1f}-{ci[1]:.1f}]" if ci else "")


def fmt_drop(drop: float, test: dict | None) -> str:
    """'+0.28 pts (p 1.0)': the drop and McNemar's exact p-value against the baseline."""
    if test is None:
        return f"{drop:+.2f} pts"
    mark = ", significant" if test["significant"] else ""
    return f"{drop:+.2f} pts (p {test['p_value']:.2g}{mark})"
