"""One writer per project: the lock every command that writes the stores takes (issue 19).

`course data` (`adapter.write_offline`), `course materialize` (`serving.materialize`,
`materialize.materialize_once`) and `course reset` (`reset.reset_course`) hold it while they
write. On the server-backed profiles it is a PostgreSQL session advisory lock in the registry
database, keyed by the project, so it holds across hosts and learners sharing the server; on
`local`, which has no server, it is a file lock (fcntl) in the project's folder. Both are
released when their holder exits, however it exits. Not re-entrant: a holder calls the
unlocked steps itself (`serving.materialize(..., lock=False)`).
"""
from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from course_lib.config import Profile
from course_lib.errors import CourseError
from course_lib.messages import say

LOCK_FILE = "materialize.lock"


class StoreBusyError(CourseError):
    """Another command is writing the same project's stores."""


def lock_key(project: str) -> int:
    """The advisory-lock key of a project: 64 bits of a hash of its name, as a signed bigint."""
    digest = hashlib.blake2b(f"feast-course:{project}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def project_lock(profile: Profile) -> Iterator[bool]:
    """Try (without waiting) to hold the project's write lock; yields whether it was acquired."""
    if profile.name == "local":
        path = profile.repo_dir / LOCK_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    import psycopg

    with psycopg.connect(profile.pg_conninfo(profile.registry_database), autocommit=True) as conn:
        ((acquired,),) = conn.execute("SELECT pg_try_advisory_lock(%s)", [lock_key(profile.project)]).fetchall()
        try:
            yield acquired
        finally:
            if acquired:
                conn.execute("SELECT pg_advisory_unlock(%s)", [lock_key(profile.project)])


@contextmanager
def writing(profile: Profile, what: str) -> Iterator[None]:
    """Hold the project's write lock for `what`, or raise StoreBusyError saying who to wait for."""
    with project_lock(profile) as acquired:
        if not acquired:
            raise StoreBusyError(say("store_lock.busy", what=what, project=profile.project, profile=profile.name))
        yield
