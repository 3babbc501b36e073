"""Showing the configuration and the registry as tables that are safe to print (2.7.1).

Paths inside the course workdir appear as `<workdir>`, the Python environment as `<env>`,
other paths under the repo as repo-relative paths and the home folder as `~`; passwords
appear as `****` (the profile knows them: they are `SecretStr` settings). Notebook outputs
therefore carry nothing machine-local.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from feast import Entity, FeatureService, FeatureStore, FeatureView, FileSource
from feast.data_source import DataSource

from course_lib.config import ENV_DEFAULTS, REPO_ROOT, ConfigError, Profile, load_store, resolve_profile
from course_lib.messages import say

WORKDIR_TOKEN = "<workdir>"
ENV_TOKEN = "<env>"
MASK = "****"


def secrets(profile: Profile) -> list[str]:
    """The profile's non-empty passwords, as set and as quoted into URLs, longest first."""
    values = {field.get_secret_value() for field in (profile.settings.pg_password, profile.settings.redis_password)}
    return sorted({form for value in values if value for form in (value, quote(value, safe=""))}, key=len, reverse=True)


def redact(text: str, profile: Profile) -> str:
    """Mask the profile's passwords, replace the workdir, Python environment and home with tokens, make repo paths
    relative."""
    for secret in secrets(profile):
        text = text.replace(secret, MASK)
    text = text.replace(str(profile.workdir), WORKDIR_TOKEN)
    text = text.replace(sys.prefix, ENV_TOKEN).replace(f"{REPO_ROOT}{os.sep}", "")
    home = Path.home()
    if len(home.parts) > 1:  # never rewrite a bare "/" home
        text = text.replace(str(home), "~")
    return text


def redact_frame(frame: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """A copy of `frame` with `redact` applied to every string cell."""
    return frame.map(lambda value: redact(value, profile) if isinstance(value, str) else value)


def _redact_tree(value: Any, profile: Profile, key: str = "") -> Any:
    """`redact` every string in a nested dict; a non-empty value under a password key becomes `****`."""
    if isinstance(value, dict):
        return {k: _redact_tree(v, profile, k) for k, v in value.items()}
    if "password" in key.lower() and value:
        return MASK
    return redact(value, profile) if isinstance(value, str) else value


def display_config(profile: Profile) -> dict[str, Any]:
    """The profile's `feature_store.yaml` content, safe to print."""
    return _redact_tree(profile.feature_store_config(), profile)


def env_table(profile: Profile) -> pd.DataFrame:
    """Every course environment variable: its default and the value in effect, safe to print."""
    effective = profile.settings.env()
    rows = [{"variable": key, "default": _redact_tree(default, profile, key),
             "in effect": _redact_tree(effective[key], profile, key)} for key, default in ENV_DEFAULTS.items()]
    return pd.DataFrame(rows)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict to dotted keys: {"registry": {"path": p}} -> {"registry.path": p}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_table(profiles: Iterable[Profile]) -> pd.DataFrame:
    """Each profile's `feature_store.yaml` side by side: one row per dotted key, one column per profile."""
    columns = {p.name: _flatten(display_config(p)) for p in profiles}
    return pd.DataFrame(columns).fillna("-").astype(str)


def entity_table(entities: Iterable[Entity]) -> pd.DataFrame:
    """One row per entity: name, join key, value type and description, sorted by name."""
    rows = [{"entity": e.name, "join_key": e.join_key, "value_type": e.value_type.name,
             "description": e.description} for e in entities]
    return pd.DataFrame(rows).sort_values("entity", ignore_index=True)


def _location(source: DataSource | None) -> str:
    """Where a batch source reads: a parquet path or a `schema.table` ("-" for a view without one)."""
    if source is None:
        return "-"
    return source.path if isinstance(source, FileSource) else source.get_table_query_string()


def view_table(views: Iterable[FeatureView], profile: Profile) -> pd.DataFrame:
    """One row per feature view: entities, TTL, feature count and batch source, sorted by name."""
    rows = [{"feature_view": v.name, "entities": ", ".join(sorted(v.entities)), "ttl": v.ttl,
             "features": len(v.features), "source": type(v.batch_source).__name__,
             "location": redact(_location(v.batch_source), profile)} for v in views]
    return pd.DataFrame(rows).sort_values("feature_view", ignore_index=True)


def schema_table(views: Iterable[FeatureView]) -> pd.DataFrame:
    """One row per feature (view name, feature, Feast dtype), views sorted, schema order kept."""
    rows = [{"feature_view": v.name, "feature": f.name, "dtype": str(f.dtype)}
            for v in sorted(views, key=lambda view: view.name) for f in v.features]
    return pd.DataFrame(rows)


def service_table(services: Iterable[FeatureService]) -> pd.DataFrame:
    """One row per feature a feature service serves, as `view:feature` references."""
    rows = [{"feature_service": s.name, "feature_view": p.name, "feature": f.name,
             "reference": f"{p.name}:{f.name}"}
            for s in sorted(services, key=lambda service: service.name)
            for p in s.feature_view_projections for f in p.features]
    return pd.DataFrame(rows)


@contextmanager
def scratch_store(project: str) -> Iterator[FeatureStore]:
    """A throwaway local-profile store in its own Feast project, deleted on exit."""
    profile = resolve_profile("local", {**os.environ, "FEAST_PROJECT": project})
    if project == resolve_profile("local").project:
        raise ConfigError(say("registry_view.scratch_is_course", project=project))
    try:
        yield load_store(profile)
    finally:
        shutil.rmtree(profile.repo_dir, ignore_errors=True)


def feast_argv(repo_dir: Path, *args: str) -> list[str]:
    """Command line for this environment's `feast` CLI on a repo (there is no `python -m feast`)."""
    executable = shutil.which("feast", path=str(Path(sys.executable).parent))
    if executable is None:
        raise FileNotFoundError(f"no `feast` script next to {sys.executable}; "
                                "install the course environment (pip install -e .)")
    return [executable, "-c", str(repo_dir), *args]


def timed_run(argv: Sequence[str]) -> tuple[str, float]:
    """Run a command; return its stdout and wall-clock seconds, raising with stderr if it fails."""
    start = time.perf_counter()
    result = subprocess.run(list(argv), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} {' '.join(argv[1:])} exited with {result.returncode}; "
                           f"its error output was:\n{result.stderr.strip()[-2000:]}")
    return result.stdout, seconds


def definition_source(*names: str, path: Path = REPO_ROOT / "feature_repo" / "definitions.py") -> str:
    """The source text of the named top-level assignments and functions of a module, in file order."""
    source = path.read_text()
    wanted = set(names)
    segments = []
    for node in ast.parse(source).body:
        targets = ([t.id for t in node.targets if isinstance(t, ast.Name)] if isinstance(node, ast.Assign)
                   else [node.target.id] if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                   else [node.name] if isinstance(node, ast.FunctionDef) else [])
        if wanted & set(targets):
            segments.append(ast.get_source_segment(source, node) or "")
            wanted -= set(targets)
    if wanted:
        raise ValueError(f"{path.name} defines no top-level {sorted(wanted)}")
    return "\n\n".join(segments)

