"""Environment checks behind `course doctor` and notebook 00.

Every check catches its own errors and reports them as a failed `health.Check` with its fix.
Service checks use short timeouts, so an unreachable server fails in seconds, never hangs.
The checks import the packages they check when they run, so a broken install still gets a report.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from course_lib.config import SCALEOUT, ConfigError, Profile
from course_lib.errors import reason
from course_lib.health import REDIS_FIX, SERVICES_FIX, Check, ms_since
from feature_repo.names import FEATURE_VIEWS

DISTRIBUTION = "course-lib"
MAINTENANCE_DB = "postgres"  # libpq's default database, present on every server
JAVA_MIN = 17  # Spark 4 runs on Java 17 or 21
JAVA_FIX = ("install a Java 17 runtime: `sudo apt-get install openjdk-17-jre-headless`, "
            "`brew install openjdk@17` or `conda install -c conda-forge openjdk=17`")


def elapsed_ms(start: float) -> str:
    """Milliseconds since a `time.perf_counter()` reading, formatted."""
    return f"{ms_since(start):.1f} ms"


def declared_requirements() -> list[Requirement]:
    """The installed course package's own requirements (pyproject's `dependencies`, without extras)."""
    requirements = [Requirement(line) for line in metadata.requires(DISTRIBUTION) or []]
    return [req for req in requirements if req.marker is None or req.marker.evaluate({"extra": ""})]


def requirement_problem(req: Requirement) -> str | None:
    """Why the installed distribution does not satisfy `req`, or None when it does."""
    try:
        installed = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return f"{req.name} not installed"
    if not req.specifier.contains(installed, prereleases=True):
        return f"{req.name} {installed} does not match {req.specifier}"
    return None


def extra_problems(req: Requirement) -> list[str]:
    """Problems with the packages that `req`'s extras pull in (one level deep)."""
    problems = []
    for line in metadata.requires(req.name) or []:
        dep = Requirement(line)
        if dep.marker and any(dep.marker.evaluate({"extra": extra}) for extra in req.extras):
            problem = requirement_problem(dep)
            if problem:
                problems.append(problem)
    return problems


def check_python() -> Check:
    """The interpreter version is one the course package supports."""
    version = ".".join(map(str, sys.version_info[:3]))
    try:
        supported = SpecifierSet(metadata.metadata(DISTRIBUTION)["Requires-Python"])
    except metadata.PackageNotFoundError:
        return Check("python", False, f"{version}, but {DISTRIBUTION} is not installed",
                     fix="`pip install -e .` in the course folder")
    detail = f"{version} at {sys.executable} (course needs {supported})"
    if supported.contains(version):
        return Check("python", True, detail)
    return Check("python", False, detail, fix="create the course environment: `conda env create -f environment.yml`")


def check_package(req: Requirement) -> Check:
    """One declared package is installed at a version in its declared range."""
    name = f"package {req.name}"
    try:
        problem = requirement_problem(req)
        problems = [problem] if problem else extra_problems(req)
        if problems:
            return Check(name, False, "; ".join(problems), fix=f"pip install '{req}'")
        extras = f" with [{','.join(sorted(req.extras))}]" if req.extras else ""
        return Check(name, True, f"{metadata.version(req.name)}{extras} (needs {req.specifier})")
    except Exception as exc:  # noqa: BLE001 - a broken install must still produce a report
        return Check(name, False, reason(exc), fix=f"pip install '{req}'")


def check_packages() -> list[Check]:
    """Every package the course declares, at a version in its declared range."""
    try:
        requirements = declared_requirements()
    except metadata.PackageNotFoundError:
        return [Check("packages", False, f"{DISTRIBUTION} is not installed, so its requirements are unknown",
                      fix="`make venv` (or `pip install -r requirements.lock && pip install --no-deps -e .`)")]
    return [check_package(req) for req in requirements]


def kernel_prefix(argv0: str) -> str:
    """`sys.prefix` of the interpreter a kernelspec's argv[0] starts (as jupyter_client resolves it)."""
    if argv0 in {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}:
        return sys.prefix  # jupyter_client runs these names with its own interpreter
    result = subprocess.run([argv0, "-c", "import sys; print(sys.prefix)"],
                            capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.strip()


def check_kernel() -> Check:
    """Jupyter's `python3` kernel runs in this same environment."""
    fix = f"`{sys.executable} -m ipykernel install --sys-prefix`"
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec("python3")
        prefix = kernel_prefix(spec.argv[0])
    except Exception as exc:  # noqa: BLE001 - any failure means no usable kernel: reported
        return Check("kernel", False, f"no usable python3 kernel: {reason(exc)}", fix=fix)
    detail = f"python3 kernel ({spec.resource_dir}) starts {spec.argv[0]} in {prefix}"
    if Path(prefix).resolve() == Path(sys.prefix).resolve():
        return Check("kernel", True, detail)
    return Check("kernel", False, f"{detail}, not in {sys.prefix}", fix=f"{fix} (or remove {spec.resource_dir})")


def check_redis(profile: Profile) -> Check:
    """Redis answers PING with the profile's host, port, db and password."""
    s = profile.settings
    where = f"{s.redis_host}:{s.redis_port} db={s.redis_db}"
    fix = (f"start Redis ({SERVICES_FIX}) or point FEAST_REDIS_HOST/FEAST_REDIS_PORT/"
           "FEAST_REDIS_PASSWORD at your server")
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # no retries: redis-py retries 3x with backoff by default
        client = redis.Redis(**{**profile.redis_client_kwargs(), "retry": Retry(NoBackoff(), 0)})
        with client:
            start = time.perf_counter()
            client.ping()
            latency = elapsed_ms(start)
            version = cast(dict[str, Any], client.info("server"))["redis_version"]
    except Exception as exc:  # noqa: BLE001 - an unreachable or broken server is reported, never raised
        return Check("redis", False, f"{where}: {reason(exc)}", fix=fix)
    return Check("redis", True, f"{where}, Redis {version}, connect + PING in {latency}")


def check_postgres(profile: Profile) -> list[Check]:
    """PostgreSQL accepts the profile's login, and the registry and offline databases exist."""
    s = profile.settings
    where = f"{s.pg_host}:{s.pg_port} user={s.pg_user}"
    wanted = profile.pg_databases
    fix = (f"start PostgreSQL ({SERVICES_FIX}) or point FEAST_PG_HOST/FEAST_PG_PORT/FEAST_PG_USER/"
           "FEAST_PG_PASSWORD/FEAST_PG_SSLMODE at your server")
    try:
        import psycopg

        start = time.perf_counter()
        with psycopg.connect(profile.pg_conninfo(MAINTENANCE_DB)) as conn:
            ((version,),) = conn.execute("SHOW server_version").fetchall()
            latency = elapsed_ms(start)
            rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (wanted,))
            existing = {row[0] for row in rows.fetchall()}
    except Exception as exc:  # noqa: BLE001 - an unreachable or broken server is reported, never raised
        return [Check("postgres", False, f"{where}: {reason(exc)}", fix=fix),
                *(Check(f"database {db}", False, "not checked: PostgreSQL is unreachable", fix=fix)
                  for db in wanted)]
    return [Check("postgres", True, f"{where}, PostgreSQL {version}, connect + query in {latency}"),
            *(database_check(profile, db, db in existing) for db in wanted)]


def database_check(profile: Profile, database: str, exists: bool) -> Check:
    """Report whether one course database exists on the server."""
    s = profile.settings
    if exists:
        return Check(f"database {database}", True, f"exists on {s.pg_host}:{s.pg_port}")
    return Check(f"database {database}", False,
                 f"missing on {s.pg_host}:{s.pg_port}",
                 fix=f"`createdb -h {s.pg_host} -p {s.pg_port} -U {s.pg_user} "
                     f"{database}` or `make services`")


def check_feast_registry(profile: Profile) -> Check:
    """Feast loads the profile's repo and its registry lists the course feature views."""
    from course_lib.config import load_store

    name, fix = "feast registry", f"`course apply --profile {profile.name}`"
    try:
        store = load_store(profile)
    except Exception as exc:  # noqa: BLE001 - a registry that cannot be read is reported, never raised
        return Check(name, False, f"cannot load the feature repo {profile.repo_dir}: {reason(exc)}",
                     fix=f"make sure COURSE_WORKDIR ({profile.workdir}) is writable "
                         "and the FEAST_* settings are valid")
    try:
        start = time.perf_counter()
        views = {fv.name for fv in store.list_feature_views()}
        latency = elapsed_ms(start)
    except Exception as exc:  # noqa: BLE001 - a registry that cannot be read is reported, never raised
        return Check(name, False, f"cannot read the registry: {reason(exc)}",
                     fix="fix the failed service checks above, then run " + fix)
    registry = f"project {profile.project}, {store.config.registry.registry_type} registry, listed in {latency}"
    missing = [view for view in FEATURE_VIEWS if view not in views]
    if missing:
        return Check(name, False, f"{len(views)} feature views ({registry}); missing {', '.join(missing)}", fix=fix)
    return Check(name, True, f"{len(views)} feature views ({registry})")


def java_major(version_text: str) -> int | None:
    """The major version in `java -version` output (`"17.0.15"` -> 17, `"1.8.0_392"` -> 8)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java() -> Check:
    """A Java runtime Spark 4 accepts is on PATH."""
    if not shutil.which("java"):
        return Check("java", False, "java is not on PATH (Spark needs it)", fix=JAVA_FIX)
    try:
        result = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("java", False, f"`java -version` failed: {reason(exc)}", fix=JAVA_FIX)
    text = (result.stderr or result.stdout).strip()
    first = text.splitlines()[0] if text else "no output"
    major = java_major(text)
    if major is None or major < JAVA_MIN:
        return Check("java", False, f"{first} (Spark 4 needs Java {JAVA_MIN} or newer)", fix=JAVA_FIX)
    return Check("java", True, first)


def check_redis_cluster(profile: Profile) -> Check:
    """Every node of FEAST_REDIS_CLUSTER_NODES answers, and all report cluster_state:ok."""
    import redis

    from course_lib.cluster import cluster_info, node_name

    fix = "`make services-cluster` (or point FEAST_REDIS_CLUSTER_NODES at your cluster's masters)"
    try:
        nodes = profile.redis_cluster_nodes()
    except ConfigError as exc:
        return Check("redis cluster", False, str(exc), fix="fix FEAST_REDIS_CLUSTER_NODES")
    problems, masters, assigned = [], set(), set()
    for node in nodes:
        try:
            info = cluster_info(node, profile.settings.redis_password.get_secret_value())
        except redis.RedisError as exc:
            problems.append(f"{node_name(node)}: {reason(exc)}")
            continue
        if info["cluster_state"] != "ok":
            problems.append(f"{node_name(node)}: cluster_state:{info['cluster_state']}")
        masters.add(info["cluster_size"])
        assigned.add(info["cluster_slots_assigned"])
    if problems:
        return Check("redis cluster", False, "; ".join(problems), fix=fix)
    return Check("redis cluster", True, f"{len(nodes)} nodes answer, cluster_state:ok, "
                                        f"{'/'.join(sorted(masters))} masters, {'/'.join(sorted(assigned))} slots")


def check_cluster_available(profile: Profile) -> Check:
    """The cluster already answers, or `redis-server` and `redis-cli` are installed to start it."""
    running = check_redis_cluster(profile)
    if running.ok:
        return running
    missing = [tool for tool in ("redis-server", "redis-cli") if not shutil.which(tool)]
    if missing:
        return Check("redis cluster", False, f"not running, and {' and '.join(missing)} not installed", fix=REDIS_FIX)
    return Check("redis cluster", True, "not running yet; redis-server is installed, so it can be started")


def service_checks(profile: Profile) -> list[Check]:
    """The service checks of a profile: Redis and PostgreSQL (enterprise); Java, the Redis Cluster
    and PostgreSQL (scaleout); none for local."""
    if profile.name == "enterprise":
        return [check_redis(profile), *check_postgres(profile)]
    if profile.name == SCALEOUT:
        return [check_java(), check_redis_cluster(profile), *check_postgres(profile)]
    return []


def run_checks(profile: Profile) -> list[Check]:
    """Run every check that applies to the profile, in report order."""
    checks = [check_python(), *check_packages(), check_kernel(), *service_checks(profile)]
    postgres_down = next((c for c in checks if c.name == "postgres" and not c.ok), None)
    if postgres_down:  # the SQL registry lives there; trying it could wait for a TCP timeout
        checks.append(Check("feast registry", False, "not tried: the registry's PostgreSQL server is unreachable",
                            fix=postgres_down.fix))
    else:
        checks.append(check_feast_registry(profile))
    return checks


def format_report(checks: list[Check]) -> str:
    """One aligned line per check: `OK   name  detail` or `FAIL name  detail -> fix`."""
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        line = f"{'OK' if c.ok else 'FAIL':<4} {c.name:<{width}}  {c.detail}"
        lines.append(line if c.ok or not c.fix else f"{line} -> {c.fix}")
    return "\n".join(lines)
