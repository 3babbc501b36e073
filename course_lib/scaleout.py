"""Scale-out (follow-up to 2.7.5): a local Redis Cluster, where each online key lives, and capacity planning.

`LocalCluster` runs the `scaleout` profile's Redis Cluster on loopback ports with the machine's
own `redis-server`: one process per master, each in its own folder under
`COURSE_WORKDIR/redis-cluster/<port>` with its pid file, log, `nodes.conf` and append-only
file, joined with `redis-cli --cluster create`. It only ever stops processes it can prove are
its own: the pid in a node's pid file, running `redis-server` on that node's port.
`python -m course_lib.scaleout up|down|status` is what `make services-cluster` runs without Docker.

Node settings, and why:
- `cluster-require-full-coverage no`: when a master is down, the others keep serving their slots;
- `cluster-node-timeout 2000`: a dead master is flagged within seconds, not the default 15;
- `appendonly yes`: a restarted master comes back with its keys.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

from course_lib.bench import LOOPBACK
from course_lib.config import ConfigError, Profile, resolve_profile
from course_lib.doctor import Check, reason

if TYPE_CHECKING:
    from feast import FeatureStore

SLOTS = 16384
NODE_TIMEOUT_MS = 2000
READY_S = 60
STOP_S = 30
JAVA_MIN = 17  # Spark 4 runs on Java 17 or 21
JAVA_FIX = ("install a Java 17 runtime: `sudo apt-get install openjdk-17-jre-headless`, "
            "`brew install openjdk@17` or `conda install -c conda-forge openjdk=17`")
REDIS_FIX = ("install Redis: `sudo apt-get install redis-server redis-tools`, `brew install redis` "
             "or `conda install -c conda-forge redis-server`")
Node = tuple[str, int]
BENCH_CANDIDATES = 100  # course_lib.bench sends 100 candidate movies per recommendation (`user_x_100`)


class ClusterError(RuntimeError):
    """The Redis Cluster cannot be started, formed or reached; the message says how to fix it."""


def free_node_port(low: int = 20_000, high: int = 55_535) -> int:
    """A loopback port for a cluster node: free, with its cluster bus port (port + 10000) free too."""
    for port in random.sample(range(low, high + 1), 200):
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
                return port
        except OSError:
            continue
    raise ClusterError(f"no free port pair (port, port + 10000) found in {low}..{high}")


def node_name(node: Node) -> str:
    """`host:port`."""
    return f"{node[0]}:{node[1]}"


def client(node: Node, password: str = "", timeout_s: float = 0.5) -> redis.Redis:
    """A plain (non-cluster) client of one node, with short timeouts and no retries."""
    return redis.Redis(host=node[0], port=node[1], password=password or None, socket_timeout=timeout_s,
                       socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0))


def cluster_info(node: Node, password: str = "") -> dict[str, str]:
    """`CLUSTER INFO` of one node (raises redis errors when it does not answer)."""
    with client(node, password) as conn:
        return conn.execute_command("CLUSTER INFO")


def _process(pid: int) -> tuple[str, str]:
    """(state, command line) of a process; ("", "") when it does not exist."""
    out = subprocess.run(["ps", "-o", "stat=", "-o", "args=", "-p", str(pid)], capture_output=True, text=True)
    state, _, args = out.stdout.strip().partition(" ")
    return state, args.strip()


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie no longer does)."""
    state, _ = _process(pid)
    return bool(state) and not state.startswith("Z")


class LocalCluster:
    """A Redis Cluster of N masters on this machine, one `redis-server` per node."""

    def __init__(self, nodes: list[Node], root: Path, password: str = "") -> None:
        off_machine = [node_name(n) for n in nodes if n[0] not in LOOPBACK]
        if off_machine:
            raise ConfigError(f"FEAST_REDIS_CLUSTER_NODES lists {off_machine}, which are not on this machine: "
                              "start that cluster where it runs, or list 127.0.0.1 ports here")
        too_high = [node_name(n) for n in nodes if n[1] > 55_535]
        if too_high:
            raise ConfigError(f"FEAST_REDIS_CLUSTER_NODES lists {too_high}: cluster nodes need ports up to 55535, "
                              "because each also listens on its port + 10000 (the cluster bus)")
        if len(nodes) < 3:
            raise ConfigError(f"a Redis Cluster needs at least 3 masters; FEAST_REDIS_CLUSTER_NODES lists {len(nodes)}")
        self.nodes, self.root, self.password = nodes, root, password
        self._children: dict[int, subprocess.Popen] = {}

    @classmethod
    def for_profile(cls, profile: Profile) -> "LocalCluster":
        """The cluster of FEAST_REDIS_CLUSTER_NODES, with its folders under COURSE_WORKDIR/redis-cluster."""
        return cls(profile.redis_cluster_nodes(), Path(profile.get("COURSE_WORKDIR")) / "redis-cluster",
                   profile.get("FEAST_REDIS_PASSWORD"))

    def folder(self, node: Node) -> Path:
        """A node's own folder: pid file, log, nodes.conf and append-only file."""
        return self.root / str(node[1])

    def pidfile(self, node: Node) -> Path:
        """Where the node's redis-server writes its pid."""
        return self.folder(node) / "redis.pid"

    def answers(self, node: Node) -> bool:
        """Whether the node replies to PING."""
        try:
            with client(node, self.password) as conn:
                return bool(conn.ping())
        except redis.RedisError:
            return False

    def start_node(self, node: Node) -> None:
        """Start one node (again, with its own folder and cluster state) and wait until it answers."""
        if not shutil.which("redis-server"):
            raise ClusterError(f"redis-server is not installed: {REDIS_FIX}")
        folder = self.folder(node)
        folder.mkdir(parents=True, exist_ok=True)
        auth = ["--requirepass", self.password, "--masterauth", self.password] if self.password else []
        command = ["redis-server", "--port", str(node[1]), "--bind", node[0], "--cluster-enabled", "yes",
                   "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                   "--cluster-require-full-coverage", "no", "--appendonly", "yes", "--save", "",
                   "--dir", str(folder), "--pidfile", str(self.pidfile(node)),
                   "--logfile", str(folder / "redis.log"), *auth]
        # Own session: interrupting the notebook or `make` does not take the cluster down with it.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        self._children[node[1]] = process
        deadline = time.monotonic() + READY_S
        while not (self.answers(node) and self.pidfile(node).exists()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"redis-server {node_name(node)} did not start (exit code {process.poll()}); "
                                   f"see {folder / 'redis.log'}; is the port taken by another program?")
            time.sleep(0.05)

    def own_pid(self, node: Node) -> int | None:
        """The pid in the node's pid file, if that process is `redis-server` on this node's port."""
        try:
            pid = int(self.pidfile(node).read_text().strip())
        except (OSError, ValueError):
            return None
        _, args = _process(pid)
        return pid if _alive(pid) and "redis-server" in args and f":{node[1]}" in args else None

    def stop_node(self, node: Node) -> bool:
        """Stop one node this cluster started (SIGTERM, so it flushes its append-only file); False if none ran."""
        pid = self.own_pid(node)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        child = self._children.pop(node[1], None)
        if child is not None and child.pid == pid:
            child.wait(timeout=STOP_S)  # reap our own child
        deadline = time.monotonic() + STOP_S
        while _alive(pid):
            if time.monotonic() > deadline:
                raise ClusterError(f"redis-server {node_name(node)} (pid {pid}) did not stop within {STOP_S} s")
            time.sleep(0.05)
        return True

    def _form(self) -> None:
        """Join fresh nodes into one cluster, slots split evenly, no replicas."""
        env = {**os.environ, "REDISCLI_AUTH": self.password} if self.password else None
        result = subprocess.run(["redis-cli", "--cluster", "create", *map(node_name, self.nodes),
                                 "--cluster-replicas", "0", "--cluster-yes"],
                                capture_output=True, text=True, timeout=READY_S, env=env)
        if result.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")

    def states(self) -> dict[str, dict[str, str] | str]:
        """Each node's `CLUSTER INFO`, or the reason it could not be read."""
        out: dict[str, dict[str, str] | str] = {}
        for node in self.nodes:
            try:
                out[node_name(node)] = cluster_info(node, self.password)
            except redis.RedisError as exc:
                out[node_name(node)] = reason(exc)
        return out

    def ok(self) -> bool:
        """Every node reports cluster_state:ok with all slots assigned and knows all the others."""
        return all(isinstance(info, dict) and info["cluster_state"] == "ok"
                   and int(info["cluster_slots_assigned"]) == SLOTS
                   and int(info["cluster_known_nodes"]) == len(self.nodes)
                   for info in self.states().values())

    def wait_ok(self, timeout_s: float = READY_S) -> None:
        """Wait until `ok()`, or raise naming every node's state."""
        deadline = time.monotonic() + timeout_s
        while not self.ok():
            if time.monotonic() > deadline:
                raise ClusterError(f"the cluster did not reach cluster_state:ok within {timeout_s} s: "
                                   f"{self.summary()}. Fix: `make services-cluster-down`, remove the node "
                                   f"folders under {self.root}, then `make services-cluster`")
            time.sleep(0.1)

    def start(self) -> list[int]:
        """Start the nodes that do not answer, form the cluster if it is new, and wait until it is ok.

        Returns the ports started by this call, so a caller stops only what it started.
        """
        started = []
        for node in self.nodes:
            if not self.answers(node):
                self.start_node(node)
                started.append(node[1])
        states = self.states()
        fresh = all(isinstance(i, dict) and int(i["cluster_known_nodes"]) == 1
                    and int(i["cluster_slots_assigned"]) == 0 for i in states.values())
        not_cluster = [name for name, info in states.items() if not isinstance(info, dict)]
        if not_cluster:
            raise ClusterError(f"{not_cluster} answer PING but not CLUSTER INFO: another Redis without "
                               "--cluster-enabled uses those ports; stop it or set FEAST_REDIS_CLUSTER_NODES")
        if fresh:
            self._form()
        self.wait_ok()
        return started

    def stop(self, ports: Iterable[int] | None = None) -> list[int]:
        """Stop this cluster's own node processes (all, or the given ports); returns the ports stopped."""
        chosen = [n for n in self.nodes if ports is None or n[1] in set(ports)]
        return [node[1] for node in chosen if self.stop_node(node)]

    def summary(self) -> str:
        """One line: each node's state, or why it could not be read."""
        parts = []
        for name, info in self.states().items():
            parts.append(f"{name} {info['cluster_state']} ({info['cluster_known_nodes']} nodes, "
                         f"{info['cluster_slots_assigned']} slots)" if isinstance(info, dict) else f"{name} {info}")
        return "; ".join(parts)


# --- where keys live -----------------------------------------------------------------------

def slot_owners(node: Node, password: str = "") -> list[tuple[int, int, str]]:
    """(first slot, last slot, `host:port` of its master) from `CLUSTER SLOTS`, sorted by slot."""
    with client(node, password) as conn:
        ranges = conn.execute_command("CLUSTER SLOTS")
    return sorted((int(first), int(last), f"{master[0].decode()}:{master[1]}") for first, last, master, *_ in ranges)


def owner_of(slot: int, owners: list[tuple[int, int, str]]) -> str:
    """The master (`host:port`) serving a slot."""
    return next(name for first, last, name in owners if first <= slot <= last)


def online_key(project: str, row: dict[str, int]) -> bytes:
    """Feast's Redis key of one entity: its serialized join keys (v3), then the project name."""
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    names = sorted(row)
    entity = EntityKey(join_keys=names, entity_values=[Value(int64_val=int(row[n])) for n in names])
    return _redis_key(project, entity, entity_key_serialization_version=3)


def entity_rows(tables: dict[str, pd.DataFrame]) -> dict[str, list[dict[str, int]]]:
    """Per feature view, every distinct entity key that has an offline row (what materialization writes)."""
    from course_lib.adapter import join_keys

    return {view: table[join_keys(view)].drop_duplicates().astype("int64").to_dict("records")
            for view, table in tables.items()}


def masters(profile: Profile) -> list[tuple[int, int, str]]:
    """The cluster's slot ranges and their masters, asked of the first listed node."""
    return slot_owners(profile.redis_cluster_nodes()[0], profile.get("FEAST_REDIS_PASSWORD"))


def expected_keys_per_node(profile: Profile, rows: Iterable[dict[str, int]],
                           project: str | None = None) -> dict[str, int]:
    """How many of these entities' Redis hashes each master should hold, from CRC16 slots and
    `CLUSTER SLOTS` (for the profile's project, or another project name)."""
    owners = masters(profile)
    counts = {name: 0 for _, _, name in owners}
    for key in {online_key(project or profile.project, row) for row in rows}:
        counts[owner_of(key_slot(key), owners)] += 1
    return counts


def slot_spread(profile: Profile, rows: list[dict[str, int]], project: str) -> dict[str, object]:
    """How the entities' keys under a project name spread: distinct slots used, and each master's share."""
    slots = {key_slot(online_key(project, row)) for row in rows}
    counts = expected_keys_per_node(profile, rows, project)
    return {"project": project, "distinct slots": len(slots),
            **{name: f"{count / len(rows):.1%}" for name, count in counts.items()}}


def stored_keys_per_node(profile: Profile) -> dict[str, int]:
    """How many of the project's Redis hashes each master really holds, counted with SCAN."""
    pattern = b"*" + profile.project.encode()
    counts = {}
    for name in dict.fromkeys(name for _, _, name in masters(profile)):
        host, port = name.rsplit(":", 1)
        with client((host, int(port)), profile.get("FEAST_REDIS_PASSWORD"), timeout_s=5) as conn:
            counts[name] = sum(1 for _ in conn.scan_iter(match=pattern, count=1000))
    return counts


# --- checks for `course doctor --profile scaleout` ---------------------------------------------

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
    fix = "`make services-cluster` (or point FEAST_REDIS_CLUSTER_NODES at your cluster's masters)"
    try:
        nodes = profile.redis_cluster_nodes()
    except ConfigError as exc:
        return Check("redis cluster", False, str(exc), fix="fix FEAST_REDIS_CLUSTER_NODES")
    problems, masters, assigned = [], set(), set()
    for node in nodes:
        try:
            info = cluster_info(node, profile.get("FEAST_REDIS_PASSWORD"))
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


# --- capacity planning ---------------------------------------------------------------------------

@dataclass(frozen=True)
class CapacityInputs:
    """The measured figures a capacity plan rests on, and where they came from."""

    replica_rps: float  # recommendation requests per second one single-process replica serves, fully busy
    key_reads_per_s: float  # entity-hash reads per second one Redis master answered to one pipelining client
    bytes_per_key: float  # mean Redis memory of one entity hash (MEMORY USAGE)
    keys_per_request: int  # entity hashes one request reads
    source: str

    def table(self) -> pd.DataFrame:
        """The figures, rounded for reading."""
        return pd.DataFrame({"figure": ["requests/s per replica at 100 %", "entity hashes read per request",
                                        "hash reads/s per Redis master", "bytes per entity hash"],
                             "value": [round(self.replica_rps, 1), self.keys_per_request, round(self.key_reads_per_s),
                                       round(self.bytes_per_key)]})


@dataclass(frozen=True)
class Assumptions:
    """What the plan assumes rather than measures; shown next to every plan."""

    target_utilization: float = 0.5  # run replicas and shards at half their measured capacity (spikes, failover)
    shard_memory_gib: float = 8.0  # memory of one Redis master
    memory_fill: float = 0.7  # use at most this share of it for data (fork for AOF rewrite, fragmentation)
    replicas_per_shard: int = 1  # Redis replicas per master for failover, on top of the masters

    def table(self) -> pd.DataFrame:
        """The assumptions as a two-column table."""
        return pd.DataFrame({"assumption": [
            "target utilization of replicas and shards",
            "memory per Redis master (GiB)",
            "share of that memory used for data",
            "Redis replicas per master (failover)",
            "one feature-server replica = one Python worker process on one core"],
            "value": [self.target_utilization, self.shard_memory_gib, self.memory_fill,
                      self.replicas_per_shard, "as measured"]})


def capacity_plan(inputs: CapacityInputs, scenarios: list[tuple[int, int]],
                  assumptions: Assumptions = Assumptions()) -> pd.DataFrame:
    """Redis masters and feature-server replicas for each (requests/s, entities) scenario."""
    rows = []
    usable_bytes = assumptions.shard_memory_gib * 2**30 * assumptions.memory_fill
    for qps, entities in scenarios:
        replicas = math.ceil(qps / (inputs.replica_rps * assumptions.target_utilization))
        for_reads = math.ceil(qps * inputs.keys_per_request / (inputs.key_reads_per_s * assumptions.target_utilization))
        data_gib = entities * inputs.bytes_per_key / 2**30
        for_memory = math.ceil(entities * inputs.bytes_per_key / usable_bytes)
        masters = max(for_reads, for_memory, 3)  # Redis Cluster needs 3 masters to vote on failover
        rows.append({"requests/s": qps, "entities": entities, "data GiB": round(data_gib, 2),
                     "masters for reads": for_reads, "masters for memory": for_memory, "Redis masters": masters,
                     "Redis nodes incl. replicas": masters * (1 + assumptions.replicas_per_shard),
                     "feature-server replicas": replicas})
    return pd.DataFrame(rows)


def measure_key_reads(profile: Profile, keys: list[bytes], batch: int = 50, rounds: int = 200) -> float:
    """Entity hashes per second (HGETALL) the master holding `keys[0]` answers to one client
    pipelining `batch` of them at a time."""
    from course_lib.bench import time_calls

    owners = masters(profile)
    home = owner_of(key_slot(keys[0]), owners)
    local = [k for k in keys if owner_of(key_slot(k), owners) == home][:batch]
    host, port = home.rsplit(":", 1)
    with client((host, int(port)), profile.get("FEAST_REDIS_PASSWORD"), timeout_s=5) as conn:
        def read(_: int) -> None:
            with conn.pipeline(transaction=False) as pipe:
                for key in local:
                    pipe.hgetall(key)
                pipe.execute()
        timing = time_calls(read, list(range(rounds)))
    return len(local) * 1000.0 / timing.mean_ms


def mean_key_bytes(profile: Profile, keys: list[bytes]) -> float:
    """Mean `MEMORY USAGE` of the given Redis hashes, each asked of the master holding it."""
    owners = masters(profile)
    sizes = []
    for key in keys:
        host, port = owner_of(key_slot(key), owners).rsplit(":", 1)
        with client((host, int(port)), profile.get("FEAST_REDIS_PASSWORD")) as conn:
            size = conn.memory_usage(key)
        if size:
            sizes.append(size)
    if not sizes:
        raise ClusterError("none of the sampled keys is in the cluster: materialize first")
    return sum(sizes) / len(sizes)


def capacity_inputs(store: "FeatureStore", profile: Profile, user_id: int, movie_ids: list[int],
                    rows: list[dict[str, int]], bench_json: Path, calls: int = 200) -> CapacityInputs:
    """The figures `capacity_plan` needs: throughput from `course bench`'s JSON when it exists, else
    measured here on the scaleout store; memory per entity hash always measured on the cluster."""
    keys = [online_key(profile.project, row) for row in rows]
    bytes_per_key = mean_key_bytes(profile, keys[:200])
    document = json.loads(bench_json.read_text()) if bench_json.is_file() else {}
    if "raw_redis" in document.get("online", {}).get("user_x_100", {}):  # only on a single-Redis profile
        return bench_capacity_inputs(document, bytes_per_key, bench_json.name)
    from course_lib import serving
    from course_lib.bench import time_calls

    request = time_calls(lambda _: serving.candidate_features(store, user_id, movie_ids), list(range(calls)))
    return CapacityInputs(replica_rps=1000.0 / request.mean_ms, key_reads_per_s=measure_key_reads(profile, keys),
                          bytes_per_key=bytes_per_key, keys_per_request=1 + 2 * len(movie_ids),
                          source="measured in this run (no `make bench` results with raw Redis figures): "
                                 f"{request.n} in-process feature reads of "
                                 f"{len(movie_ids)} candidates, HGETALL pipelines to one master, MEMORY USAGE of "
                                 f"{min(len(keys), 200)} keys")


def bench_capacity_inputs(result: dict, bytes_per_key: float, name: str) -> CapacityInputs:
    """Throughput figures from a `course bench` JSON document: the course API's POST /recommendations
    requests per second, and the raw-Redis pipeline of one such request's hashes."""
    keys = 1 + 2 * BENCH_CANDIDATES
    raw = result["online"]["user_x_100"]["raw_redis"]
    api = result["http"]["course_api_recommendations"]
    return CapacityInputs(replica_rps=api["rps"], key_reads_per_s=keys * 1000.0 / raw["mean_ms"],
                          bytes_per_key=bytes_per_key, keys_per_request=keys,
                          source=f"{name} (`course bench --profile {result['profile']}`, {result['measured_at']}): "
                                 f"course API POST /recommendations of {BENCH_CANDIDATES} candidates, raw Redis "
                                 "pipelines of their hashes; memory per hash measured in this run")


# --- notebook 06 ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Readiness:
    """Which parts of the scale-out notebook this machine can run, and the checks behind it."""

    scaleout_checks: list[Check]  # Java, the cluster (running or startable), PostgreSQL and the scaleout registry
    enterprise_checks: list[Check]  # Redis and the enterprise databases, for the side-by-side comparison

    @property
    def scaleout(self) -> bool:
        """Whether the scaleout parts can run."""
        return all(check.ok for check in self.scaleout_checks)

    @property
    def enterprise(self) -> bool:
        """Whether the enterprise comparison can run as well."""
        return self.scaleout and all(check.ok for check in self.enterprise_checks)

    def table(self) -> pd.DataFrame:
        """One row per check: for which profile, name, OK/FAIL, detail, fix."""
        return pd.DataFrame([{"profile": profile, "check": c.name, "result": "OK" if c.ok else "FAIL",
                              "detail": c.detail, "fix": c.fix}
                             for profile, checks in (("scaleout", self.scaleout_checks),
                                                     ("enterprise", self.enterprise_checks)) for c in checks])


def check_cluster_available(profile: Profile) -> Check:
    """The cluster already answers, or `redis-server` and `redis-cli` are installed to start it."""
    running = check_redis_cluster(profile)
    if running.ok:
        return running
    missing = [tool for tool in ("redis-server", "redis-cli") if not shutil.which(tool)]
    if missing:
        return Check("redis cluster", False, f"not running, and {' and '.join(missing)} not installed", fix=REDIS_FIX)
    return Check("redis cluster", True, "not running yet; redis-server is installed, so it can be started")


def readiness(scale: Profile, enterprise: Profile) -> Readiness:
    """Check Java, the cluster and PostgreSQL (scaleout), and Redis and its databases (enterprise)."""
    from course_lib.doctor import check_postgres, check_redis

    enterprise_dbs = [c for c in check_postgres(enterprise) if c.name.startswith("database ")]
    return Readiness([check_java(), check_cluster_available(scale), *check_postgres(scale)],
                     [check_redis(enterprise), *enterprise_dbs])


def prepare_store(profile: Profile, tables: dict[str, pd.DataFrame]) -> "FeatureStore":
    """Write the tables where the profile reads them, register the definitions, and return its store."""
    from course_lib import serving
    from course_lib.adapter import write_offline
    from course_lib.config import load_store

    write_offline(tables, profile)
    store = load_store(profile)
    serving.apply(store, profile)
    return store


def compare_request(stores: dict[str, "FeatureStore"], user_id: int, movie_ids: list[int]) -> pd.DataFrame:
    """The recommendation read (user, movies, pairs) from each store, one row per feature value."""
    from course_lib import serving

    answers = {name: serving.candidate_features(store, user_id, movie_ids) for name, store in stores.items()}
    first, *others = answers
    rows = []
    for i in range(len(movie_ids)):
        for view, found in answers[first][i].items():
            if view == "user_profile_features" and i:
                continue  # the user's row repeats for every candidate
            for feature, value in found.values.items():
                row = {"view": view, "entity": found.key, "feature": feature, first: value}
                row.update({name: answers[name][i][view].values[feature] for name in others})
                row["equal"] = all(row[name] == value or (row[name] is None and value is None) for name in others)
                rows.append(row)
    return pd.DataFrame(rows)


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two normalized training frames hold the same values (float32 tolerance, any column order)."""
    if set(a.columns) != set(b.columns):
        return False
    try:
        pd.testing.assert_frame_equal(a[b.columns], b, check_exact=False, rtol=1e-6)
    except AssertionError:
        return False
    return True


def plot_keys_per_node(expected: dict[str, int], stored: dict[str, int]) -> "matplotlib.figure.Figure":  # noqa: F821
    """Bars of the keys each master holds (SCAN), with the count its slots predict marked."""
    import matplotlib.pyplot as plt

    names = list(expected)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(names, [stored.get(n, 0) for n in names], color="tab:blue", label="stored (SCAN)")
    ax.scatter(names, [expected[n] for n in names], color="tab:orange", zorder=3, label="predicted (CRC16 slot)")
    ax.set_ylabel("entity hashes")
    ax.set_title("Keys per Redis Cluster master")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


# --- Spark ---------------------------------------------------------------------------------------

def stop_spark() -> bool:
    """Stop this process's Spark session (and its JVM) if one runs; True if one was stopped."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        return False
    session.stop()
    return True


# --- command line (used by .ci/cluster.sh) --------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`up`, `down` or `status` of the local cluster of FEAST_REDIS_CLUSTER_NODES."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.scaleout", description=main.__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    action = parser.parse_args(argv).action
    try:
        cluster = LocalCluster.for_profile(resolve_profile("scaleout"))
        if action == "up":
            started = cluster.start()
            print(f"redis-cluster: started {started or 'nothing (already running)'}; {cluster.summary()}")
        elif action == "down":
            print(f"redis-cluster: stopped {cluster.stop() or 'nothing (none of its own nodes ran)'}")
        else:
            print(f"redis-cluster: {cluster.summary()}")
            return 0 if cluster.ok() else 1
    except (ClusterError, ConfigError) as exc:
        print(f"redis-cluster: ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
