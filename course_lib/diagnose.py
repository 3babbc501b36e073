"""Expected failures of the `course` command line, as one line that names the problem and its fix.

Every verb runs through `run_verb`: a `CourseError` prints its own message; a service or setup
failure raised by a library (psycopg, SQLAlchemy, redis-py, duckdb, Feast) is recognised here,
anywhere in its exception chain, and turned into what is wrong and which command fixes it. Nothing
prints a traceback unless `--debug` or `COURSE_DEBUG=1` asks for one; an exception nobody expected
still gets one line, which says how to see the traceback.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from course_lib.config import SCALEOUT, ConfigError, Profile, resolve_profile
from course_lib.errors import CourseError, reason
from course_lib.messages import say

DEBUG_VARIABLE = "COURSE_DEBUG"
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C
MISSING_DATABASE = re.compile(r'database "([^"]+)" does not exist')
MISSING_RELATION = re.compile(r'relation "([^"]+)" does not exist')
MISSING_FILES = re.compile(r'No files found that match the pattern "([^"]+)"')
BAD_LOGIN = ("password authentication failed", "no password supplied", "role \"")


@dataclass(frozen=True)
class Diagnosis:
    """What went wrong and how to fix it, and the exit code to leave with."""

    problem: str
    fix: str = ""
    exit_code: int = 1
    of_the_command: bool = False  # a bad setting or option: reported as `course: ...`, whatever the verb

    def line(self, verb: str) -> str:
        """The one line printed for it: `course VERB: problem. Fix: fix` (`해결 방법:` in Korean)."""
        text = say("diagnose.line_with_fix", problem=self.problem, fix=self.fix) if self.fix else self.problem
        return f"course{'' if self.of_the_command else ' ' + verb}: {' '.join(text.split())}"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then what caused it (`__cause__`, `__context__`, SQLAlchemy's `orig`), each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        todo += [orig if isinstance(orig, BaseException) else None, current.__cause__, current.__context__]


def _name(profile: Profile | None) -> str:
    """The profile's name for a `--profile` option in a fix (`local` when unknown)."""
    return profile.name if profile else "local"


def postgres(exc: BaseException, profile: Profile | None) -> Diagnosis | None:
    """A PostgreSQL server that is down, refuses the login, lacks a course database or an offline table."""
    text = str(exc)
    s = profile.settings if profile else None
    where = f"{s.pg_host}:{s.pg_port}" if s else say("diagnose.configured_address")
    if match := MISSING_DATABASE.search(text):
        create = f"`createdb -h {s.pg_host} -p {s.pg_port} -U {s.pg_user} {match[1]}`" if s else "`createdb`"
        return Diagnosis(say("diagnose.database_missing", database=match[1], where=where),
                         say("diagnose.database_fix", create=create))
    if match := MISSING_RELATION.search(text):
        return Diagnosis(say("diagnose.table_missing", table=match[1]),
                         say("diagnose.data_fix", profile=_name(profile)))
    if any(marker in text for marker in BAD_LOGIN):
        return Diagnosis(say("diagnose.pg_login_refused", where=where, detail=first_line(text)),
                         say("diagnose.pg_login_fix"))
    return Diagnosis(say("diagnose.pg_unreachable", where=where, detail=first_line(text)),
                     say("diagnose.pg_unreachable_fix", profile=_name(profile)))


def redis_failure(exc: BaseException, profile: Profile | None) -> Diagnosis:
    """A Redis server or cluster that is down or refuses the password."""
    import redis

    if profile and profile.name == SCALEOUT:
        return Diagnosis(say("diagnose.cluster_down", nodes=profile.settings.redis_cluster_nodes,
                             detail=first_line(str(exc))),
                         say("diagnose.cluster_down_fix"))
    s = profile.settings if profile else None
    where = say("diagnose.redis_at", address=f"{s.redis_host}:{s.redis_port}") if s else "Redis"
    if isinstance(exc, redis.AuthenticationError):
        return Diagnosis(say("diagnose.redis_password_refused", where=where, detail=first_line(str(exc))),
                         say("diagnose.redis_password_fix"))
    return Diagnosis(say("diagnose.redis_unreachable", where=where, detail=first_line(str(exc))),
                     say("diagnose.redis_unreachable_fix"))


def first_line(text: str) -> str:
    """The first non-empty line of a message, without libpq's `connection failed:` prefixes."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return re.sub(r"^(\(\S+\) )?(connection failed: )?", "", line)


def library_failure(exc: BaseException, profile: Profile | None) -> Diagnosis | None:
    """One exception of the chain recognised as a service or set-up problem, or None."""
    from feast.errors import FeastObjectNotFoundException

    module = type(exc).__module__
    if module.startswith("psycopg") and type(exc).__name__ in {"OperationalError", "UndefinedTable"}:
        return postgres(exc, profile)
    if module.startswith("redis"):
        import redis

        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError)) or (
                type(exc).__name__ == "RedisClusterException"):
            return redis_failure(exc, profile)
    if isinstance(exc, FeastObjectNotFoundException):
        project = say("diagnose.project_named", project=profile.project) if profile else say("diagnose.the_project")
        return Diagnosis(say("diagnose.not_registered", detail=first_line(str(exc)).rstrip("."), project=project),
                         say("diagnose.apply_fix", profile=_name(profile)))
    if match := MISSING_FILES.search(str(exc)):
        return Diagnosis(say("diagnose.no_offline_data", path=match[1]),
                         say("diagnose.data_fix", profile=_name(profile)))
    return None


def diagnose(exc: BaseException, profile: Profile | None) -> Diagnosis | None:
    """What an exception means for the learner, or None when nobody expected it (a bug)."""
    if isinstance(exc, ConfigError):
        return Diagnosis(say("diagnose.configuration_error", error=exc), exit_code=2, of_the_command=True)
    # A library's failure names the precise problem, also under a CourseError that wraps it.
    found = next(filter(None, (library_failure(cause, profile) for cause in chain(exc))), None)
    if found is None and isinstance(exc, CourseError):
        return Diagnosis(str(exc))
    return found


def debugging(flag: bool) -> bool:
    """Whether tracebacks were asked for: `--debug`, or COURSE_DEBUG set to anything but empty or 0."""
    return flag or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def profile_or_none(name: str | None) -> Profile | None:
    """The profile a verb ran with, for the messages; None when it cannot be resolved."""
    try:
        return resolve_profile(name)
    except ConfigError:
        return None


def run_verb(verb: str, handler: Callable[[], int], profile: str | None = None, debug: bool = False) -> int:
    """Run one verb; print an expected failure as one line (traceback only when debugging) and return its code."""
    try:
        return handler()
    except KeyboardInterrupt:
        print(f"course {verb}: {say('diagnose.interrupted')}", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        if debugging(debug):
            raise
        found = diagnose(exc, profile_or_none(profile))
        if found is None:
            found = Diagnosis(say("diagnose.unexpected", reason=reason(exc)),
                              say("diagnose.unexpected_fix", variable=DEBUG_VARIABLE))
        print(found.line(verb), file=sys.stderr)
        return found.exit_code
