"""The `course` command line: one verb per course step."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from course_lib.config import PROFILES, ConfigError

Handler = Callable[[argparse.Namespace], int]


def cmd_apply(args: argparse.Namespace) -> int:
    """Register the feature definitions and print what changed."""
    from course_lib.config import load_store, resolve_profile
    from course_lib.serving import apply

    profile = resolve_profile(args.profile)
    print(apply(load_store(profile), profile))
    return 0


def add_profile(parser: argparse.ArgumentParser) -> None:
    """Add the shared `--profile` option."""
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="course profile (default: $COURSE_PROFILE, else local)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, one sub-command per verb."""
    parser = argparse.ArgumentParser(prog="course", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    apply_p = verbs.add_parser("apply", help="register entities, feature views and the service")
    add_profile(apply_p)
    apply_p.set_defaults(handler=cmd_apply)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"course: configuration error: {exc}", file=sys.stderr)
        return 2
