"""One catalog entry: the English and the Korean template of a learner-facing message."""
from __future__ import annotations

from typing import NamedTuple


class Message(NamedTuple):
    """`str.format` templates with the same named placeholders; `{{` and `}}` are literal braces."""

    en: str
    ko: str
