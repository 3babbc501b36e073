"""What the enterprise-only notebook cells need, created where possible: the course's PostgreSQL databases.

`make services` creates the databases from the shell (.ci/services.sh). A PostgreSQL server that
runs without them (a developer's laptop, this machine before `make services`) must not fail the
local course, so notebooks 04 and 06 call `postgres` first: when the server answers, the
missing databases are created here the same way; when it does not answer, or refuses to create
them, the result names what is missing and the command that adds it, and the cell skips.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from course_lib.config import Profile
from course_lib.doctor import MAINTENANCE_DB, check_postgres
from course_lib.errors import reason

DATABASE_PREFIX = "database "  # doctor's check names: `database <name>`


@dataclass(frozen=True)
class Provision:
    """Whether a profile's PostgreSQL is usable now, what was created, and else what is missing and its fix."""

    ok: bool
    created: list[str] = field(default_factory=list)
    missing: str = ""
    fix: str = ""

    @property
    def problem(self) -> str | None:
        """One line naming the missing piece and the command that adds it; None when ready."""
        return None if self.ok else f"{self.missing} -> {self.fix}"

    def notes(self) -> list[str]:
        """One line per database created here."""
        return [f"created database {name} (as `make services` does)" for name in self.created]


def create_databases(profile: Profile, names: list[str]) -> None:
    """Create each named database on the profile's server (CREATE DATABASE cannot run in a transaction)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(profile.pg_conninfo(MAINTENANCE_DB), autocommit=True) as conn:
        for name in names:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.DuplicateDatabase:
                pass  # created meanwhile by someone else: what we wanted


def postgres(profile: Profile) -> Provision:
    """Make the profile's PostgreSQL usable: create its missing course databases when the server answers."""
    server, *databases = check_postgres(profile)
    if not server.ok:
        return Provision(False, missing=f"the {profile.name} profile's PostgreSQL is not reachable: {server.detail}",
                         fix=server.fix)
    missing = [check.name.removeprefix(DATABASE_PREFIX) for check in databases if not check.ok]
    try:
        create_databases(profile, missing)
    except Exception as exc:  # noqa: BLE001 - no right to create them (or a race): reported with its fix
        return Provision(False, missing=f"the databases {', '.join(missing)} do not exist and could not be "
                                        f"created ({reason(exc)})",
                         fix="`make services`, or ask the server's administrator to create them")
    return Provision(True, created=missing)
