"""Learner-facing messages in English or Korean: `say(key, **values)` renders a catalog entry in the current language.

The catalog (course_lib.catalog) holds one `Message` per key, an English and a Korean `str.format`
template with the same named placeholders; values computed where a message is raised go in as
placeholders. It holds the exercise checks' messages and the expected failures the `course` command line
prints as one line. `render(key, language, **values)` renders one in a given language: the hints the API's
bodies share with the command line stay English there (an API contract).

The language is Korean when COURSE_LANG is `ko`, or, with COURSE_LANG unset or empty, when the Jupyter
kernel runs a notebook of the Korean edition: jupyter_server sets JPY_SESSION_NAME to the notebook's path
in the kernel's environment. Anything else is English.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from course_lib.catalog import Message

Language = Literal["en", "ko"]
LANGUAGE_VARIABLE = "COURSE_LANG"
SESSION_VARIABLE = "JPY_SESSION_NAME"
KOREAN_FOLDERS = frozenset({"notebooks_ko", "exercises_ko"})


def language(environ: Mapping[str, str] | None = None) -> Language:
    """`ko` when COURSE_LANG is `ko`, or when it is unset (or empty) and a Korean notebook runs; else `en`."""
    env = os.environ if environ is None else environ
    chosen = env.get(LANGUAGE_VARIABLE, "").strip().lower()
    if chosen:
        return "ko" if chosen == "ko" else "en"
    return "ko" if in_korean_folder(env.get(SESSION_VARIABLE, "")) else "en"


def in_korean_folder(path: str) -> bool:
    """Whether a notebook path (POSIX or Windows separators) lies in a folder of the Korean edition."""
    return bool(KOREAN_FOLDERS.intersection(re.split(r"[\\/]", path)[:-1]))


@functools.cache
def catalog() -> Mapping[str, Message]:
    """Every message by key; imported on first use, so a command that never says anything never loads it."""
    from course_lib.catalog import CATALOG

    return CATALOG


def say(key: str, /, **values: Any) -> str:
    """The message `key` in the current language, its placeholders filled from `values`."""
    return render(key, language(), **values)


def render(key: str, in_language: Language, /, **values: Any) -> str:
    """The message `key` in `in_language`, its placeholders filled from `values`."""
    message = catalog()[key]
    return (message.ko if in_language == "ko" else message.en).format(**values)
