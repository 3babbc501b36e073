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
from course_lib.files import generations, swap_folder
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
    half_built = profile.data_dir / f".{profile.offline_dir.name}.{'9' * 20}"  # an interrupted run's generation
    half_built.mkdir()
    (half_built / "user_profile_features.parquet").write_bytes(b"half a table")
    write_offline(tables, profile)
    assert not half_built.exists()
    assert len(generations(profile.offline_dir)) == 2, "the current generation and the previous one"
    for view, table in read_offline(profile).items():
        pd.testing.assert_frame_equal(table, tables[view])


def test_a_reader_sees_the_whole_old_table_set_or_the_whole_new_one(tmp_path: Path) -> None:
    """Whenever a write renames something into place, a reader finds either every old table or every new one."""
    profile = isolated_profile("local", tmp_path)
    old = build_feature_tables(synthetic(seed=4, n_users=20, n_movies=15, n_events=200, days=10))
    new = build_feature_tables(synthetic(seed=5, n_users=30, n_movies=15, n_events=300, days=10))
    write_offline(old, profile)
    sizes = {"old": {v: len(t) for v, t in old.items()}, "new": {v: len(t) for v, t in new.items()}}
    assert sizes["old"] != sizes["new"]
    seen: list[dict[str, int]] = []
    real_replace = os.replace

    def observing(src, dst, *args, **kwargs):  # a reader's view just before and just after each rename
        seen.append({view: len(table) for view, table in read_offline(profile).items()})
        real_replace(src, dst, *args, **kwargs)
        seen.append({view: len(table) for view, table in read_offline(profile).items()})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "replace", observing)
        write_offline(new, profile)
    assert seen and all(view in sizes.values() for view in seen), seen
    assert seen[-1] == sizes["new"] and profile.offline_dir.is_symlink()


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


def test_a_plain_offline_folder_becomes_the_first_generation(tmp_path: Path) -> None:
    """A copy that followed the link (or an earlier layout) keeps the tables a partial write does not replace."""
    link = tmp_path / "offline"
    link.mkdir()
    (link / "kept.parquet").write_bytes(b"kept")
    swap_folder(link, lambda folder: (folder / "new.parquet").write_bytes(b"new"))
    assert link.is_symlink() and sorted(p.name for p in link.iterdir()) == ["kept.parquet", "new.parquet"]
    assert (link / "kept.parquet").read_bytes() == b"kept"
