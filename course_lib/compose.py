"""The course's Docker Compose file, as notebook 01 shows it: its services, and a validation where
Docker Compose runs (2.7.1). `tests/test_compose.py` keeps the file consistent with the profiles."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import yaml

from course_lib.settings import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.feast.yml"


def services(path: Path = COMPOSE_FILE) -> pd.DataFrame:
    """One row per service the file starts by default: image, published ports, healthcheck."""
    spec = yaml.safe_load(path.read_text())["services"]
    rows = [{"service": name, "image": service["image"], "published on": ", ".join(service.get("ports", [])),
             "healthcheck": "healthcheck" in service} for name, service in spec.items()]
    return pd.DataFrame(rows).set_index("service")


def validate(path: Path = COMPOSE_FILE) -> str:
    """One line: `docker compose config` on the file where Docker Compose exists, else why it was not run."""
    docker = shutil.which("docker")
    if docker is None:
        return "not checked: Docker is not installed here (the native services from `make services` are used instead)"
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        return "not checked: Docker is installed without its Compose plugin here (`docker compose` is missing)"
    checked = subprocess.run([docker, "compose", "-f", str(path), "config", "--quiet"], capture_output=True, text=True)
    return "docker compose config: valid" if checked.returncode == 0 else \
        f"docker compose config: {(checked.stderr.strip().splitlines() or ['failed'])[-1]}"
