"""The command line: click commands only (parse, call, print). Heavy libraries are imported
inside the commands, so `compress --help` starts without torch."""

from compress.cli.main import cli, main

__all__ = ["cli", "main"]
