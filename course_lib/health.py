"""Health checks (2.7.4): one result type, `Check`, for `course doctor`, the API's `GET /health`
and the monitoring gauges.

A check is timed, catches its own failure and reports it with its reason and the fix; the
API's three component checks do real work: an online read, an uncached registry listing and a
look at the offline tables. The API runs them side by side in the background, each with a
deadline (`BoundedHealth`), so a hung PostgreSQL shows as failed within seconds. Only `Check`
and the fix texts are needed by `course doctor`, which must run before Feast is known to
import, so the component checks import the stores' clients when they run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from course_lib.config import SCALEOUT, Profile
from course_lib.errors import CourseError, reason
from course_lib.messages import Language, render
from feature_repo.names import FEATURE_VIEWS

if TYPE_CHECKING:
    from feast import FeatureStore

# In English: `course doctor` reports and the API's bodies (an API contract) use them; course_lib.catalog has both.
SERVICES_FIX = render("health.services_fix", "en")
REDIS_FIX = render("health.redis_fix", "en")
HEALTH_COMPONENTS = ("online_store", "registry", "offline_store")
HEALTH_PROBE_USER = 1  # any id works: the probe checks that a read round trip succeeds


@dataclass(frozen=True)
class Check:
    """The outcome of one check: its name, whether it passed, what was seen, how to fix it, how long it took."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    latency_ms: float | None = None  # measured duration, for the timed component checks


class ComponentError(CourseError):
    """A component answered but is not usable; carries its own fix."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.fix = fix


def ms_since(start: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - start) * 1000


def probe(name: str, action: Callable[[], str], fix: str) -> Check:
    """Run one check, timing it; any failure becomes a failed check with its reason and fix."""
    start = time.perf_counter()
    try:
        detail = action()
    except ComponentError as exc:
        return Check(name, False, str(exc), exc.fix, ms_since(start))
    except Exception as exc:  # noqa: BLE001 - a failing component is reported, never raised
        return Check(name, False, reason(exc), fix, ms_since(start))
    return Check(name, True, detail, latency_ms=ms_since(start))


def registry_location(profile: Profile) -> str:
    """Where the profile's registry lives, without credentials."""
    if profile.name == "local":
        return profile.feature_store_config()["registry"]["path"]
    s = profile.settings
    return f"PostgreSQL {s.pg_host}:{s.pg_port}/{profile.registry_database}"


def registry_hint(profile: Profile, language: Language = "en") -> str:
    """How to fix a registry that cannot be read; in English unless a command line asks for the learner's language."""
    if profile.name == "local":
        return render("health.registry_hint_local", language, location=registry_location(profile))
    return render("health.registry_hint_postgres", language, services=render("health.services_fix", language),
                  profile=profile.name)


def online_store_hint(profile: Profile) -> str:
    """How to fix an online store that cannot be read."""
    if profile.name == "local":
        return (f"the SQLite online store under {profile.data_dir} could not be read: run "
                "`course apply --profile local` and `course materialize --profile local`")
    s = profile.settings
    if profile.name == SCALEOUT:
        return (f"the Redis Cluster {s.redis_cluster_nodes} did not answer: start it with "
                "`make services-cluster` or point FEAST_REDIS_CLUSTER_NODES at it")
    return (f"Redis at {s.redis_host}:{s.redis_port} db={s.redis_db} did not answer: "
            f"start it ({SERVICES_FIX}) or point FEAST_REDIS_HOST/FEAST_REDIS_PORT at it; the API reconnects "
            "by itself once Redis is back, no restart needed")


def offline_store_hint(profile: Profile) -> str:
    """How to fix an offline store that cannot be read."""
    if profile.offline_is_parquet:
        return f"write the parquet tables with `course data --profile {profile.name}` (folder {profile.offline_dir})"
    return (f"start PostgreSQL ({SERVICES_FIX}) or point FEAST_PG_HOST/FEAST_PG_PORT at it; "
            f"`course data --profile {profile.name}` writes the tables into schema {profile.offline_schema}")


def read_online(store: FeatureStore, profile: Profile) -> str:
    """One real online read round trip; a read that fails on the registry says so."""
    from feast.errors import FeastObjectNotFoundException
    from sqlalchemy.exc import SQLAlchemyError

    from course_lib import serving

    try:
        found = serving.user_features(store, HEALTH_PROBE_USER)
    except FeastObjectNotFoundException as exc:
        raise ComponentError(f"the online read needs feature views the registry lacks: {reason(exc)}",
                             f"`course apply --profile {profile.name}`") from exc
    except SQLAlchemyError as exc:
        raise ComponentError(f"the online read could not load the registry: {reason(exc)}",
                             registry_hint(profile)) from exc
    return f"read user_id={HEALTH_PROBE_USER}: {found.status}"


def missing_views(store: FeatureStore) -> list[str]:
    """Course feature views the registry (read now, uncached) does not list."""
    from course_lib import compat  # Feast itself: `course doctor` imports this module before checking it

    names = compat.feature_view_names(store)
    return [view for view in FEATURE_VIEWS if view not in names]


def list_registry(store: FeatureStore, profile: Profile) -> str:
    """The registry (uncached) lists every course feature view."""
    missing = missing_views(store)
    where = registry_location(profile)
    if missing:
        raise ComponentError(f"{where} lacks feature views {missing}", f"`course apply --profile {profile.name}`")
    return f"{where} lists all {len(FEATURE_VIEWS)} course feature views"


def reach_offline(profile: Profile) -> str:
    """The offline tables exist: readable parquet files (local, scaleout) or tables in PostgreSQL (enterprise)."""
    if profile.offline_is_parquet:
        import pyarrow.parquet as pq

        rows = sum(pq.read_metadata(profile.offline_location(view)).num_rows for view in FEATURE_VIEWS)
        return f"{len(FEATURE_VIEWS)} parquet tables readable ({rows} rows)"
    import psycopg

    s = profile.settings
    with psycopg.connect(profile.pg_conninfo(bounded=True)) as conn:
        present = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [profile.offline_schema])}
    where = f"PostgreSQL {s.pg_host}:{s.pg_port}/{s.offline_db} schema {profile.offline_schema}"
    missing = [view for view in FEATURE_VIEWS if view not in present]
    if missing:
        raise ComponentError(f"{where}: missing tables {missing}", offline_store_hint(profile))
    return f"{where}: {len(FEATURE_VIEWS)} tables present"


Component = tuple[Callable[[], str], str]  # a check's action (returns what it saw) and the fix if it fails


def components(store: FeatureStore, profile: Profile) -> dict[str, Component]:
    """The API's three component checks, in `HEALTH_COMPONENTS` order."""
    return {"online_store": (lambda: read_online(store, profile), online_store_hint(profile)),
            "registry": (lambda: list_registry(store, profile), registry_hint(profile)),
            "offline_store": (lambda: reach_offline(profile), offline_store_hint(profile))}


def health_report(profile: Profile, checks: dict[str, Check]) -> tuple[bool, dict[str, Any]]:
    """(all ok, the JSON-ready report) of some finished checks."""
    failed = [name for name, check in checks.items() if not check.ok]
    return not failed, {"status": "unavailable" if failed else "ok", "profile": profile.name,
                        "project": profile.project, "failed": failed,
                        "components": {name: asdict(c) for name, c in checks.items()}}


def health(store: FeatureStore, profile: Profile) -> tuple[bool, dict[str, Any]]:
    """Check the online store, the registry and the offline store, one after the other; (all ok, report)."""
    return health_report(profile, {name: probe(name, action, fix)
                                   for name, (action, fix) in components(store, profile).items()})


class BoundedHealth:
    """`health` for a server: the checks run side by side, each given `timeout_s`.

    A check still running after that counts as failed (a PostgreSQL that accepts connections and
    never answers), and it is not started again until it ends, so a hang never piles up threads.
    """

    def __init__(self, store: FeatureStore, profile: Profile, timeout_s: float) -> None:
        self._profile, self._timeout = profile, timeout_s
        self._components = components(store, profile)
        self._pool = ThreadPoolExecutor(max_workers=len(self._components), thread_name_prefix="health")
        self._running: dict[str, tuple[float, Future[Check]]] = {}

    def __call__(self) -> tuple[bool, dict[str, Any]]:
        """Start every check not already running, wait at most `timeout_s`, report what is known then."""
        for name, (action, fix) in self._components.items():
            if name not in self._running or self._running[name][1].done():
                self._running[name] = (time.perf_counter(), self._pool.submit(probe, name, action, fix))
        wait([future for _, future in self._running.values()], timeout=self._timeout)
        checks = {}
        for name, (started, future) in self._running.items():
            checks[name] = future.result() if future.done() else Check(
                name, False, f"no answer within {self._timeout:g} s: the service accepts connections but does "
                             "not reply, or is overloaded", self._components[name][1], ms_since(started))
        return health_report(self._profile, checks)

    def close(self) -> None:
        """Let running checks end on their own; start no more."""
        self._pool.shutdown(wait=False, cancel_futures=True)
