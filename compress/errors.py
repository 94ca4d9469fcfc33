"""Errors a user can cause. The CLI prints their message on one line and exits with `exit_code`."""

from __future__ import annotations


class CompressError(Exception):
    """Base class: something the user can fix. The message says what, where and how."""

    exit_code = 2


class ConfigError(CompressError):
    """A pipeline file or CLI option is malformed, mistyped or inconsistent."""


class DataError(CompressError):
    """A data source cannot be loaded or its arrays are unusable."""


class ArtifactError(CompressError):
    """A checkpoint or ONNX file is missing, corrupt or of the wrong kind."""


class StageError(CompressError):
    """A stage could not do its work with the inputs and settings it was given."""


class ParityError(StageError):
    """The exported ONNX model disagrees with the PyTorch model beyond the tolerance."""


class MirroredError(CompressError):
    """Another rank (rank 0) failed and printed why; this rank stops with the same exit code."""

    def __init__(self, exit_code: int = 2):
        super().__init__(f"stopped because rank 0 failed (exit code {exit_code})")
        self.exit_code = exit_code


class GateError(CompressError):
    """One or more pipeline gates failed; `results` holds every gate's outcome."""

    exit_code = 1

    def __init__(self, message: str, results: list | None = None):
        super().__init__(message)
        self.results = results or []
