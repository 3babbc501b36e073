"""A local Redis Cluster for the scaleout profile (follow-up to 2.7.5), run with the machine's own `redis-server`.

`LocalCluster` runs one process per master on loopback ports, each in its own folder under
`COURSE_WORKDIR/redis-cluster/<port>` with its pid file, log, `nodes.conf` and append-only
file, joined with `redis-cli --cluster create`. It only ever stops processes it can prove are
its own: the pid in a node's pid file, running `redis-server` on that node's port.
`python -m course_lib.cluster up|down|status` is what `make services-cluster` runs without Docker.

Node settings, and why:
- `cluster-require-full-coverage no`: when a master is down, the others keep serving their slots;
- `cluster-node-timeout 2000`: a dead master is flagged within seconds, not the default 15;
- `appendonly yes`: a restarted master comes back with its keys.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from course_lib.config import LOOPBACK, ConfigError, Profile, resolve_profile
from course_lib.errors import CourseError, reason
from course_lib.messages import say

SLOTS = 16384
NODE_TIMEOUT_MS = 2000
READY_S = 60
STOP_S = 30
Node = tuple[str, int]


class ClusterError(CourseError):
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
    raise ClusterError(say("cluster.no_free_ports", low=low, high=high))


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
            raise ConfigError(say("cluster.off_machine", nodes=off_machine))
        too_high = [node_name(n) for n in nodes if n[1] > 55_535]
        if too_high:
            raise ConfigError(say("cluster.ports_too_high", nodes=too_high))
        if len(nodes) < 3:
            raise ConfigError(say("cluster.too_few_masters", count=len(nodes)))
        self.nodes, self.root, self.password = nodes, root, password
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @classmethod
    def for_profile(cls, profile: Profile) -> LocalCluster:
        """The cluster of FEAST_REDIS_CLUSTER_NODES, with its folders under COURSE_WORKDIR/redis-cluster."""
        return cls(profile.redis_cluster_nodes(), profile.workdir / "redis-cluster",
                   profile.settings.redis_password.get_secret_value())

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
            raise ClusterError(say("cluster.redis_missing", fix=say("health.redis_fix")))
        folder = self.folder(node)
        folder.mkdir(parents=True, exist_ok=True)
        # The password arrives on stdin (`redis-server -` reads configuration there first), never as an argument
        # a process list would show.
        quoted = json.dumps(self.password)
        auth = f"requirepass {quoted}\nmasterauth {quoted}\n" if self.password else ""
        command = ["redis-server", "-", "--port", str(node[1]), "--bind", node[0], "--cluster-enabled", "yes",
                   "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                   "--cluster-require-full-coverage", "no", "--appendonly", "yes", "--save", "",
                   "--dir", str(folder), "--pidfile", str(self.pidfile(node)),
                   "--logfile", str(folder / "redis.log")]
        # Own session: interrupting the notebook or `make` does not take the cluster down with it.
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        assert process.stdin is not None
        process.stdin.write(auth.encode())
        process.stdin.close()
        self._children[node[1]] = process
        deadline = time.monotonic() + READY_S
        while not (self.answers(node) and self.pidfile(node).exists()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(say("cluster.node_no_start", node=node_name(node), code=process.poll(),
                                       log=folder / "redis.log"))
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
                raise ClusterError(say("cluster.node_no_stop", node=node_name(node), pid=pid, seconds=STOP_S))
            time.sleep(0.05)
        return True

    def _form(self) -> None:
        """Join fresh nodes into one cluster, slots split evenly, no replicas."""
        env = {**os.environ, "REDISCLI_AUTH": self.password} if self.password else None
        result = subprocess.run(["redis-cli", "--cluster", "create", *map(node_name, self.nodes),
                                 "--cluster-replicas", "0", "--cluster-yes"],
                                capture_output=True, text=True, timeout=READY_S, env=env)
        if result.returncode != 0:
            raise ClusterError(say("cluster.create_failed", stdout=result.stdout[-2000:],
                                   stderr=result.stderr[-2000:]))

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
                raise ClusterError(say("cluster.not_ok", timeout_s=timeout_s, summary=self.summary(),
                                       root=self.root))
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
            raise ClusterError(say("cluster.not_cluster_enabled", nodes=not_cluster))
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


# --- command line (used by .ci/cluster.sh) --------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """`up`, `down` or `status` of the local cluster of FEAST_REDIS_CLUSTER_NODES."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.cluster", description=main.__doc__)
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
