"""Every bad file or cell of a user's data in one message (up to a limit), so that k problems
take one rerun to see, not k."""

from __future__ import annotations

LIMIT = 20


def listed(problems: list[str], limit: int = LIMIT) -> str:
    """'a; b; c' for up to `limit` problems, then '; and N more'."""
    shown = "; ".join(problems[:limit])
    more = len(problems) - limit
    return shown + (f"; and {more} more" if more > 0 else "")
