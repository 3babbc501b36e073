"""`make course` on every machine state: (a) no PostgreSQL or Redis at all, (b) PostgreSQL without the
course databases, (c) everything. The enterprise-only notebook cells either create what they need
(`provision.postgres`) or skip with one line naming the missing piece and its fix.

State (a) points the profile at ports nothing listens on; state (b) at database names that do not
exist (dropped again afterwards). Notebook 04's outage drill failed in state (b) before this; it
runs here end to end.
"""
from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import nbformat
import psycopg
import pytest
from support import isolated_env

from course_lib import provision, scaleout
from course_lib.background import free_port
from course_lib.config import REPO_ROOT, Profile, resolve_profile
from course_lib.doctor import MAINTENANCE_DB

# A phrase from each notebook-04 cell the outage drill needs.
DRILL_CELLS = ("PIPELINE_STALE_S = 30", "ds = datasets.synthetic(", "api = background.start_course_api(",
               "users = events[", "DRILL = f", "def probe(moment)", "api.stop()")


def no_servers(workdir: Path) -> dict[str, str]:
    """State (a): every service setting points at a loopback port nothing listens on."""
    ports = [str(free_port()) for _ in range(4)]
    return isolated_env(workdir, FEAST_PG_PORT=ports[0], FEAST_REDIS_PORT=ports[1],
                        FEAST_REDIS_CLUSTER_NODES=",".join(f"127.0.0.1:{p}" for p in ports[1:]))


@pytest.fixture
def without_databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    """State (b): the real PostgreSQL, with course database names that do not exist yet (dropped afterwards)."""
    tag = uuid.uuid4().hex[:8]
    names = {"FEAST_REGISTRY_DB": f"course_test_fd_reg_{tag}", "FEAST_OFFLINE_DB": f"course_test_fd_off_{tag}",
             "FEAST_SCALEOUT_REGISTRY_DB": f"course_test_fd_sreg_{tag}"}
    env = isolated_env(tmp_path, **names)
    yield env
    with psycopg.connect(resolve_profile("enterprise", env).pg_conninfo(MAINTENANCE_DB), autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def existing(profile: Profile) -> set[str]:
    """The profile's course databases that exist on its server."""
    with psycopg.connect(profile.pg_conninfo(MAINTENANCE_DB)) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (profile.pg_databases,))
        return {row[0] for row in rows.fetchall()}


def test_no_servers_skip_with_one_line_naming_the_fix(tmp_path: Path) -> None:
    env = no_servers(tmp_path)
    found = provision.postgres(resolve_profile("enterprise", env))
    assert not found.ok and found.created == []
    assert found.problem and "\n" not in found.problem and "not reachable" in found.problem
    assert "`make services`" in found.problem
    ready = scaleout.readiness(resolve_profile("scaleout", env), resolve_profile("enterprise", env))
    assert not ready.scaleout and not ready.enterprise
    assert all(row.fix for row in ready.table().query("result == 'FAIL'").itertuples())


@pytest.mark.enterprise
def test_missing_databases_are_created(without_databases: dict[str, str]) -> None:
    profile = resolve_profile("enterprise", without_databases)
    assert existing(profile) == set()
    found = provision.postgres(profile)
    assert found.ok and found.problem is None and sorted(found.created) == sorted(profile.pg_databases)
    assert existing(profile) == set(profile.pg_databases)
    assert provision.postgres(profile).created == []  # nothing left to create
    scale = resolve_profile("scaleout", without_databases)
    scaleout.readiness(scale, profile)
    assert existing(scale) == {scale.registry_database}


def run_notebook(name: str, env: dict[str, str], out: Path, keep: Callable[[str], bool] | None = None) -> str:
    """Execute one course notebook headless under `env` (only the code cells whose source `keep` accepts, from a
    copy beside `out`); return its text outputs (the run must succeed)."""
    source = REPO_ROOT / "notebooks" / name
    if keep is not None:
        notebook = nbformat.read(source, as_version=4)
        notebook.cells = [cell for cell in notebook.cells if cell.cell_type != "code" or keep(cell.source)]
        source = out.parent / "kept" / name
        source.parent.mkdir(parents=True)
        nbformat.write(notebook, source)
    result = subprocess.run([sys.executable, "-m", "course_lib.notebooks", "--out", str(out), str(source)],
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    executed = nbformat.read(out / name, as_version=4)
    return "\n".join(output.get("text", "") for cell in executed.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []))


def test_notebook_00_with_no_servers(tmp_path: Path) -> None:
    text = run_notebook("00_check_setup.ipynb", no_servers(tmp_path), tmp_path / "out")
    assert "Expected until you run `make services`" in text


@pytest.mark.enterprise
def test_notebook_04_drill_without_the_course_databases(without_databases: dict[str, str], tmp_path: Path) -> None:
    """The failure of the issue: PostgreSQL runs, the course databases do not exist, the drill still runs.

    Only the cells the drill needs run (setup, data, the API, the sample users, the drill, the stop):
    nbval runs the whole notebook, and the freshness walk-through alone waits half a minute."""
    def needed(source: str) -> bool:
        return any(mark in source for mark in DRILL_CELLS)

    text = run_notebook("04_monitoring.ipynb", without_databases, tmp_path / "out", keep=needed)
    assert "created database course_test_fd_reg_" in text and "drill API up" in text
    assert "/health while Redis is stopped" in text and "background servers stopped" in text  # every step ran
