"""What a run reports as it goes, as typed events: the runner emits them, and the console, the
CI writers (JUnit, Markdown, JSON) and anything else a caller plugs in consume them. Nothing
reads our own log lines back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StageStarted:
    stage_id: str
    stage: str


@dataclass(frozen=True)
class StageCached:
    stage_id: str
    stage: str
    wall_time_s: float  # when it ran


@dataclass(frozen=True)
class StageFinished:
    stage_id: str
    stage: str
    wall_time_s: float
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFailed:
    stage_id: str
    stage: str
    error: BaseException


@dataclass(frozen=True)
class GatesChecked:
    results: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [g for g in self.results if not g["passed"]]


Event = StageStarted | StageCached | StageFinished | StageFailed | GatesChecked
Listener = Callable[[Event], None]

HEADLINE = ("test_accuracy_pct", "ort_test_accuracy_pct", "parity_max_abs_diff", "size_bytes")


def console_line(event: Event) -> str | None:
    """The one line the console prints for an event (None: nothing to say)."""
    if isinstance(event, StageStarted):
        return f"[{event.stage_id}] running {event.stage} ..."
    if isinstance(event, StageCached):
        return f"[{event.stage_id}] cached ({event.stage}, {event.wall_time_s:.1f} s when run)"
    if isinstance(event, StageFinished):
        shown = [f"{k} {event.metrics[k]:.4g}" for k in HEADLINE
                 if isinstance(event.metrics.get(k), int | float)]
        return (f"[{event.stage_id}] done in {event.wall_time_s:.1f} s"
                + (f": {', '.join(shown)}" if shown else ""))
    return None  # failures and gates are printed by the command, once, as a table or one line


def to_console(log: Callable[[str], None]) -> Listener:
    """A listener printing each event's console line through `log`."""

    def listen(event: Event) -> None:
        line = console_line(event)
        if line is not None:
            log(line)

    return listen


def fan_out(*listeners: Listener | None) -> Listener:
    """One listener calling every given one in order."""
    live = [fn for fn in listeners if fn is not None]

    def listen(event: Event) -> None:
        for fn in live:
            fn(event)

    return listen
