"""Capacity planning for the scaleout profile (follow-up to 2.7.5): Redis masters and feature-server
replicas for a load, from measured figures and stated assumptions.

Throughput comes from `course bench`'s JSON when it has raw-Redis figures, else it is measured
here on the scaleout store; memory per entity hash is always measured on the cluster.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from redis.crc import key_slot

from course_lib import serving
from course_lib.cluster import ClusterError, client
from course_lib.config import Profile
from course_lib.messages import say
from course_lib.placement import masters, owner_of
from course_lib.redis_format import redis_key
from course_lib.timing import time_calls

if TYPE_CHECKING:
    from feast import FeatureStore

BENCH_CANDIDATES = 100  # course_lib.bench sends 100 candidate movies per recommendation (`user_x_100`)


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
    owners = masters(profile)
    home = owner_of(key_slot(keys[0]), owners)
    local = [k for k in keys if owner_of(key_slot(k), owners) == home][:batch]
    host, port = home.rsplit(":", 1)
    with client((host, int(port)), profile.settings.redis_password.get_secret_value(), timeout_s=5) as conn:
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
        with client((host, int(port)), profile.settings.redis_password.get_secret_value()) as conn:
            size = conn.memory_usage(key)
        if size:
            sizes.append(size)
    if not sizes:
        raise ClusterError(say("capacity.no_sampled_key"))
    return sum(sizes) / len(sizes)


def capacity_inputs(store: FeatureStore, profile: Profile, user_id: int, movie_ids: list[int],
                    rows: list[dict[str, int]], bench_json: Path, calls: int = 200) -> CapacityInputs:
    """The figures `capacity_plan` needs: throughput from `course bench`'s JSON when it exists, else
    measured here on the scaleout store; memory per entity hash always measured on the cluster."""
    keys = [redis_key(row, profile.project) for row in rows]
    bytes_per_key = mean_key_bytes(profile, keys[:200])
    document = json.loads(bench_json.read_text()) if bench_json.is_file() else {}
    if "raw_redis" in document.get("online", {}).get("user_x_100", {}):  # only on a single-Redis profile
        return bench_capacity_inputs(document, bytes_per_key, bench_json.name)
    request = time_calls(lambda _: serving.candidate_features(store, user_id, movie_ids), list(range(calls)))
    return CapacityInputs(replica_rps=1000.0 / request.mean_ms, key_reads_per_s=measure_key_reads(profile, keys),
                          bytes_per_key=bytes_per_key, keys_per_request=1 + 2 * len(movie_ids),
                          source="measured in this run (no `make bench` results with raw Redis figures): "
                                 f"{request.n} in-process feature reads of "
                                 f"{len(movie_ids)} candidates, HGETALL pipelines to one master, MEMORY USAGE of "
                                 f"{min(len(keys), 200)} keys")


def bench_capacity_inputs(result: dict[str, Any], bytes_per_key: float, name: str) -> CapacityInputs:
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
