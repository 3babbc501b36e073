"""Classroom mode (`course classroom`): learners sharing one PostgreSQL and one Redis, kept apart by
the servers themselves rather than by project names (issue 19).

For each learner `name` (a project name, which is also the offline schema):
- a PostgreSQL role `name` (LOGIN, a generated password stored as SCRAM-SHA-256) that owns the
  schema `name` in the offline database and nothing else there;
- in the registry database, row-level security on every Feast registry table: a learner's role
  reads and writes only the rows whose `project_id` is its own name;
- a Redis ACL user `name` whose key pattern is `*name` (Feast's keys end with the project name),
  with the data commands only (`-@dangerous`: no FLUSHDB, KEYS, CONFIG, ...).

Redis can isolate key *values* by a glob pattern on key names, but not key *names* (SCAN lists
every key in the database), memory or CPU, and `*name` also matches a project whose name ends
with `name`; so no learner's name may end with another's (refused here). Where names must be
hidden too, give each group its own Redis database or instance.

What was created is recorded in `course_classroom` in the registry database, and
`course classroom --drop` removes exactly that: roles (with what they own), policies, ACL users.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import psycopg
import redis
from psycopg import sql

from course_lib.config import ConfigError, Profile, load_store
from course_lib.messages import say
from course_lib.settings import Settings

MANIFEST = "course_classroom"
POLICY = "course_learner_rows"


@dataclass(frozen=True)
class Learner:
    """One learner's name (project, schema, PostgreSQL role, Redis user) and generated password."""

    name: str
    password: str

    def settings(self, profile: Profile) -> dict[str, str]:
        """The environment variables this learner sets (the instructor hands these out)."""
        shared = ("COURSE_PROFILE", "FEAST_PG_HOST", "FEAST_PG_PORT", "FEAST_REGISTRY_DB", "FEAST_OFFLINE_DB",
                  "FEAST_REDIS_HOST", "FEAST_REDIS_PORT", "FEAST_REDIS_DB")
        env = profile.env()
        return {**{key: env[key] for key in shared}, "FEAST_PROJECT": self.name, "FEAST_OFFLINE_SCHEMA": self.name,
                "FEAST_PG_USER": self.name, "FEAST_PG_PASSWORD": self.password,
                "FEAST_REDIS_USERNAME": self.name, "FEAST_REDIS_PASSWORD": self.password}


def check_names(names: list[str]) -> None:
    """Each name is a valid project, unique, and no name ends with another (Redis key patterns are suffixes)."""
    for name in names:
        Settings.from_env({"FEAST_PROJECT": name})  # the project-name rule, as a ConfigError
    clashes = [(a, b) for a in names for b in names if a != b and a.endswith(b)]
    if len(set(names)) != len(names) or clashes:
        raise ConfigError(say("classroom.names_clash", clashes=clashes[:3], rule=say("settings.identifier_rule")))


def _registry_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """Feast's registry tables: every table of the public schema with a `project_id` column."""
    rows = conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
                        "AND column_name = 'project_id' ORDER BY table_name").fetchall()
    return [row[0] for row in rows]


def _redis(profile: Profile) -> redis.Redis:
    """An administrator's client of the profile's Redis."""
    return redis.Redis(**profile.redis_client_kwargs())


def create(profile: Profile, names: list[str]) -> list[Learner]:
    """Create every learner's role, schema, registry policy and Redis user; returns their passwords."""
    check_names(names)
    load_store(profile).registry  # noqa: B018 - opening the SQL registry creates its tables
    learners = [Learner(name, secrets.token_urlsafe(18)) for name in names]
    with psycopg.connect(profile.pg_conninfo(profile.registry_database), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (learner TEXT PRIMARY KEY)").format(
            sql.Identifier(MANIFEST)))
        conn.execute("SET password_encryption = 'scram-sha-256'")
        tables = _registry_tables(conn)
        for learner in learners:
            role = sql.Identifier(learner.name)
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(learner.password)))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(MANIFEST)), [learner.name])
            for table in tables:
                name = sql.Identifier(table)
                conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(name))
                conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(name, role))
                conn.execute(sql.SQL("CREATE POLICY {} ON {} TO {} USING (project_id = current_user) "
                                     "WITH CHECK (project_id = current_user)").format(
                    sql.Identifier(f"{POLICY}_{learner.name}"), name, role))
    with psycopg.connect(profile.pg_conninfo(), autocommit=True) as conn:
        for learner in learners:
            conn.execute(sql.SQL("CREATE SCHEMA {0} AUTHORIZATION {0}").format(sql.Identifier(learner.name)))
    client = _redis(profile)
    for learner in learners:
        client.acl_setuser(learner.name, enabled=True, passwords=[f"+{learner.password}"], reset_keys=True,
                           reset_channels=True, keys=[f"*{learner.name}"],
                           commands=["+@read", "+@write", "+@connection", "+scan", "-@dangerous"])
    return learners


def created(profile: Profile) -> list[str]:
    """The learners `create` recorded (none when classroom mode was never used)."""
    with psycopg.connect(profile.pg_conninfo(profile.registry_database)) as conn:
        if conn.execute("SELECT to_regclass(%s)", [MANIFEST]).fetchone() == (None,):
            return []
        return [row[0] for row in conn.execute(sql.SQL("SELECT learner FROM {} ORDER BY learner").format(
            sql.Identifier(MANIFEST)))]


def drop(profile: Profile) -> list[str]:
    """Remove exactly what `create` made: each recorded learner's schema (and tables), policies, role and
    Redis user. Registry rows and online keys are the learner's project data: `course reset` removes them."""
    names = created(profile)
    with psycopg.connect(profile.pg_conninfo(), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
    with psycopg.connect(profile.pg_conninfo(profile.registry_database), autocommit=True) as conn:
        tables = _registry_tables(conn)
        for name in names:
            for table in tables:
                conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(
                    sql.Identifier(f"{POLICY}_{name}"), sql.Identifier(table)))
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DELETE FROM {} WHERE learner = %s").format(sql.Identifier(MANIFEST)), [name])
        if names and not created(profile):  # the last learner: the tables are as before classroom mode
            for table in tables:
                conn.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(sql.Identifier(table)))
    if names:
        _redis(profile).acl_deluser(*names)
    return names


def learner_names(count: int | None, names: list[str] | None, prefix: str = "learner_") -> list[str]:
    """Names from `--learners a,b` or `--count N` (learner_01 ... learner_N)."""
    if names:
        return names
    if not count or count < 1:
        raise ConfigError(say("classroom.no_learners"))
    width = max(2, len(str(count)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, count + 1)]
