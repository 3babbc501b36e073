"""The course's one error base: an expected failure whose message says what is wrong and how to fix it.

The `course` command line prints a `CourseError` as one line (`course_lib.diagnose`, which also
recognises the service errors of the libraries); `--debug` or `COURSE_DEBUG=1` shows the traceback.
"""
from __future__ import annotations


class CourseError(Exception):
    """An expected failure (bad input, missing setup, unreachable service); the message says how to fix it."""


def reason(exc: BaseException) -> str:
    """A one-line description of an exception: its type and the first line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
