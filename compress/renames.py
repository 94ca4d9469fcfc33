"""Fields that were renamed keep working under their old name for a while, with a one-line
deprecation message that says the new name (once per process and name)."""

from __future__ import annotations

import sys
from typing import Any

from pydantic import model_validator

_SAID: set[str] = set()


def renamed_fields(owner: str, renames: dict[str, str]):
    """A `before` model validator for a config class: each old key in `renames` is read as its
    new name. Both given at once is an error (which one was meant is unclear)."""

    def rename(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(old in data for old in renames):
            return data
        data = dict(data)
        for old, new in renames.items():
            if old not in data:
                continue
            if new in data:
                raise ValueError(f"'{old}' is the old name of '{new}': give '{new}' only")
            data[new] = data.pop(old)
            if f"{owner}.{old}" not in _SAID:
                _SAID.add(f"{owner}.{old}")
                print(f"deprecated: {owner} field '{old}' is now '{new}'; the old name still "
                      "works for now", file=sys.stderr)
        return data

    return model_validator(mode="before")(rename)
