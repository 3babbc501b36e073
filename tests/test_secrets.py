"""Secrets and files (issue 19): private rendered configs, passwords kept out of process arguments,
Grafana without default or anonymous access, a verified model file, finite inputs, clean parquet swaps."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from support import isolated_profile

from course_lib import ranker
from course_lib.adapter import AdapterError, build_feature_tables, validate, write_offline
from course_lib.config import TUNED_YAML, render
from course_lib.datasets import Dataset, synthetic
from course_lib.offline import read_offline
from course_lib.settings import REPO_ROOT


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", ["local", "enterprise"])
def test_rendered_configs_are_readable_by_their_owner_only(name: str, tmp_path: Path) -> None:
    profile = isolated_profile(name, tmp_path, FEAST_PG_PASSWORD="pg-secret")
    config = profile.repo_dir / "feature_store.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("written by an older version\n")
    config.chmod(0o644)
    folder = render(profile)
    assert mode(config) == 0o600 and "written by" not in config.read_text()
    render(profile)  # unchanged content: still private
    assert mode(config) == 0o600
    render(profile, tuned=True)
    assert mode(folder / TUNED_YAML) == 0o600


class Tripwire:
    """A pickle that, when loaded, creates a file: what a tampered model file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_a_model_file_without_its_recorded_hash_is_never_unpickled(tmp_path: Path) -> None:
    profile = isolated_profile("local", tmp_path)
    marker = tmp_path / "code-ran"
    profile.model_path.parent.mkdir(parents=True)
    joblib.dump(Tripwire(marker), profile.model_path)
    with pytest.raises(ranker.RankerError, match="does not match the SHA-256 recorded when it was trained"):
        ranker.load(profile)
    ranker.digest_path(profile.model_path).write_text("0" * 64)
    with pytest.raises(ranker.RankerError, match="course train --profile local"):
        ranker.load(profile)
    assert not marker.exists()


def test_a_saved_model_loads_and_a_changed_byte_is_caught(ready, tmp_path: Path) -> None:
    model = ranker.load(ready)
    copy = isolated_profile(ready.name, tmp_path)
    ranker.save(model, copy)
    assert mode(copy.model_path) == 0o600 and mode(ranker.digest_path(copy.model_path)) == 0o600
    assert ranker.load(copy).features == model.features
    data = bytearray(copy.model_path.read_bytes())
    data[len(data) // 2] ^= 1
    copy.model_path.write_bytes(bytes(data))
    with pytest.raises(ranker.RankerError, match="does not match"):
        ranker.load(copy)


@pytest.mark.parametrize(("table", "column", "value"), [
    ("watch_events", "watch_seconds", np.inf), ("watch_events", "rating", -np.inf),
    ("movies", "runtime", np.inf), ("users", "age", np.inf)])
def test_infinite_values_are_refused_at_ingestion(table: str, column: str, value: float) -> None:
    data = synthetic(seed=2, n_users=20, n_movies=15, n_events=200, days=10)
    frames = {"users": data.users, "movies": data.movies, "watch_events": data.watch_events}
    frame = frames[table].copy()
    frame[column] = frame[column].astype("float64")
    frame.loc[frame.index[3], column] = value
    frames[table] = frame
    bad = Dataset(name=data.name, users=frames["users"], movies=frames["movies"], watch_events=frames["watch_events"],
                  provenance=data.provenance)
    with pytest.raises(AdapterError, match=rf"{table}\.{column}: 1 infinite values; values must be finite"):
        validate(bad)


def test_a_parquet_rewrite_removes_what_an_interrupted_run_left(tmp_path: Path) -> None:
    profile = isolated_profile("local", tmp_path)
    tables = build_feature_tables(synthetic(seed=4, n_users=20, n_movies=15, n_events=200, days=10))
    write_offline(tables, profile)
    leftover = profile.data_dir / f".user_profile_features.parquet.{os.getpid() + 1}.tmp"
    leftover.write_bytes(b"half a table")
    write_offline(tables, profile)
    assert not leftover.exists()
    assert sorted(p.name for p in profile.data_dir.iterdir() if p.name.endswith(".tmp")) == []
    for view, table in read_offline(profile).items():
        pd.testing.assert_frame_equal(table, tables[view])


COMPOSE_FILES = [REPO_ROOT / "docker-compose.feast.yml", REPO_ROOT / "docker" / "docker-compose.cluster.yml",
                 REPO_ROOT / "ops" / "docker-compose.monitoring.yml"]


@pytest.mark.parametrize("path", [*COMPOSE_FILES, REPO_ROOT / "course_lib" / "cluster.py",
                                  REPO_ROOT / "course_lib" / "background.py"], ids=lambda p: p.name)
def test_no_password_is_passed_as_a_process_argument(path: Path) -> None:
    assert "--requirepass" not in path.read_text() and "--masterauth" not in path.read_text()


def test_grafana_needs_an_admin_password_from_the_environment_and_has_no_anonymous_viewers() -> None:
    grafana = yaml.safe_load(COMPOSE_FILES[2].read_text())["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert "GRAFANA_ADMIN_PASSWORD" in " ".join(grafana["entrypoint"]) and "exit 1" in " ".join(grafana["entrypoint"])
