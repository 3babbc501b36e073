"""course_lib.registry_view: printable config and registry tables, checked against a real registry."""
from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
from feast import FeatureStore

from course_lib.background import start_feast_ui
from course_lib.config import ENV_DEFAULTS, PROFILES, REPO_ROOT, ConfigError, Profile, load_store, resolve_profile
from course_lib.registry_view import (
    config_table,
    definition_source,
    display_config,
    entity_table,
    env_table,
    feast_argv,
    redact,
    redact_frame,
    schema_table,
    scratch_store,
    service_table,
    timed_run,
    view_table,
)
from course_lib.serving import apply
from feature_repo.definitions import RECOMMENDATION_FEATURES, VIEWS
from feature_repo.names import GENRE_MATCH_VIEW


@pytest.fixture(scope="module")
def applied(profile: Profile) -> FeatureStore:
    """The isolated test store with the course definitions registered."""
    store = load_store(profile)
    apply(store, profile)
    return store


def secret_profile(name: str, workdir: Path) -> Profile:
    """A default profile (whatever the shell exports) whose workdir and passwords must never be printed."""
    env = {"COURSE_WORKDIR": str(workdir), "FEAST_PG_PASSWORD": "pg-s3cret", "FEAST_REDIS_PASSWORD": "redis-s3cret"}
    return resolve_profile(name, env)


def test_redact_hides_local_paths_and_passwords(tmp_path: Path) -> None:
    profile = secret_profile("enterprise", tmp_path)
    text = redact(f"{tmp_path}/a.db {REPO_ROOT}/notebooks/x.ipynb {sys.prefix}/bin/feast "
                  "postgresql+psycopg://postgres:pg-s3cret@h:5432/db h:6379,password=redis-s3cret", profile)
    assert text == ("<workdir>/a.db notebooks/x.ipynb <env>/bin/feast "
                    "postgresql+psycopg://postgres:****@h:5432/db h:6379,password=****")


def test_redact_frame_rewrites_only_string_cells(tmp_path: Path) -> None:
    profile = secret_profile("local", tmp_path)
    frame = pd.DataFrame({"detail": [f"{sys.prefix}/bin/python", f"{Path.home()}/x"], "ok": [True, False]})
    assert redact_frame(frame, profile).to_dict("list") == {"detail": ["<env>/bin/python", "~/x"],
                                                           "ok": [True, False]}
    assert frame.loc[0, "detail"] == f"{sys.prefix}/bin/python"


def test_display_config_masks_every_password(tmp_path: Path) -> None:
    enterprise = display_config(secret_profile("enterprise", tmp_path))
    assert "s3cret" not in str(enterprise)
    assert enterprise["offline_store"]["password"] == "****"
    assert enterprise["registry"]["path"].startswith("postgresql+psycopg://postgres:****@")
    local = display_config(secret_profile("local", tmp_path))
    assert local["registry"]["path"] == "<workdir>/local/movie_recommendation/data/registry.db"


def test_env_table_lists_every_variable_with_passwords_masked(tmp_path: Path) -> None:
    table = env_table(secret_profile("enterprise", tmp_path)).set_index("variable")
    assert list(table.index) == list(ENV_DEFAULTS)
    assert table.loc["FEAST_PG_PASSWORD"].tolist() == ["", "****"]
    assert table.loc["FEAST_REDIS_PASSWORD", "in effect"] == "****"
    assert table.loc["COURSE_WORKDIR", "in effect"] == "<workdir>"
    assert table.loc["FEAST_REGISTRY_CACHE_TTL"].tolist() == ["10", "10"]


def test_config_table_puts_profiles_side_by_side(tmp_path: Path) -> None:
    table = config_table(secret_profile(name, tmp_path) for name in PROFILES)
    assert list(table.columns) == list(PROFILES)
    assert table.loc["online_store.type"].tolist() == ["sqlite", "redis"]
    assert table.loc["offline_store.type"].tolist() == ["duckdb", "postgres"]
    assert table.loc["registry.registry_type"].tolist() == ["file", "sql"]
    assert table.loc["offline_store.sslmode", "local"] == "-"
    assert str(tmp_path) not in table.to_string() and "s3cret" not in table.to_string()


def test_entity_table_matches_registry(applied: FeatureStore) -> None:
    table = entity_table(applied.list_entities())
    assert table.to_dict("records") == [
        {"entity": "movie_id", "join_key": "movie_id", "value_type": "INT64",
         "description": "A title in the catalogue"},
        {"entity": "user_id", "join_key": "user_id", "value_type": "INT64",
         "description": "A viewer of the streaming service"},
    ]


def test_view_table_matches_registry(applied: FeatureStore, profile: Profile) -> None:
    table = view_table(applied.list_feature_views(), profile).set_index("feature_view")
    assert table["ttl"].to_dict() == {name: ttl for name, (_, ttl, _) in VIEWS.items()}
    assert table["features"].to_dict() == {name: len(schema) for name, (_, _, schema) in VIEWS.items()}
    assert table.loc["user_movie_interaction_features", "entities"] == "movie_id, user_id"
    expected_source = "FileSource" if profile.name == "local" else "PostgreSQLSource"
    assert set(table["source"]) == {expected_source}
    assert str(profile.workdir) not in table.to_string()


def test_schema_table_matches_registry(applied: FeatureStore) -> None:
    rows = [tuple(r) for r in schema_table(applied.list_feature_views()).itertuples(index=False)]
    expected = [(name, f.name, str(f.dtype)) for name in sorted(VIEWS) for f in VIEWS[name][2]]
    assert rows == expected
    assert ("user_profile_features", "favorite_genre", "String") in rows


def test_service_table_lists_the_ten_features(applied: FeatureStore) -> None:
    table = service_table(applied.list_feature_services())
    assert set(table["feature_service"]) == {"movie_recommendation_service"}
    assert table["reference"].tolist() == RECOMMENDATION_FEATURES


def test_feast_cli_lists_the_registered_views(applied: FeatureStore, profile: Profile) -> None:
    stdout, seconds = timed_run(feast_argv(profile.repo_dir, "feature-views", "list"))
    listed = {line.split()[0] for line in stdout.splitlines()[1:] if line.strip()}
    assert listed == {*VIEWS, GENRE_MATCH_VIEW}  # the CLI lists on-demand views with the others
    assert seconds > 0


def test_timed_run_reports_the_failing_command() -> None:
    with pytest.raises(RuntimeError, match="(?s)exited with 3.*boom"):
        timed_run([sys.executable, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"])


def test_scratch_store_is_deleted_and_spares_the_course_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path))
    monkeypatch.delenv("FEAST_PROJECT", raising=False)
    with scratch_store("scratch_test") as store:
        assert store.project == "scratch_test"
        repo = Path(store.repo_path)
        assert (repo / "feature_store.yaml").exists()
    assert not repo.exists()
    with pytest.raises(ConfigError, match="course project"):
        with scratch_store("movie_recommendation"):
            pass


def test_definition_source_shows_the_file_text_of_each_name() -> None:
    """Notebook 01 prints definitions.py's own code: each segment is verbatim file text, in file order."""
    text = (REPO_ROOT / "feature_repo" / "definitions.py").read_text()
    names = ("user", "VIEWS", "feature_view")
    assert all(definition_source(name) in text for name in names)
    assert [text.index(definition_source(name)) for name in names] == sorted(text.index(definition_source(n))
                                                                             for n in names)
    assert definition_source("feature_view", "user", "VIEWS") == "\n\n".join(definition_source(n) for n in names)
    assert definition_source("user").startswith("user = Entity(")
    with pytest.raises(ValueError, match=r"no top-level \['nowhere'\]"):
        definition_source("user", "nowhere")


def test_feast_ui_shows_the_registry_on_loopback_only(applied: FeatureStore, profile: Profile, tmp_path: Path) -> None:
    """Notebook 01's optional `feast ui`: bound to 127.0.0.1 (Feast's default is 0.0.0.0), it lists
    the registered feature views through the REST API its pages use, and stops."""
    with start_feast_ui(profile, tmp_path / "ui.log") as ui:
        listening = [c.laddr for c in psutil.Process(ui.process.pid).net_connections() if c.status == "LISTEN"]
        assert listening and {address.ip for address in listening} == {"127.0.0.1"}, listening
        body = httpx.get(f"{ui.url}/api/v1/feature_views", params={"project": profile.project}, timeout=30).json()
        assert {v["spec"]["name"] for v in body["featureViews"]} == {v.name for v in applied.list_all_feature_views()}
    assert ui.process.poll() is not None

