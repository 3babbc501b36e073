#!/usr/bin/env bash
# Start (`up`), stop (`down`) or check (`status`) the scaleout profile's Redis Cluster: 3 masters at
# FEAST_REDIS_CLUSTER_NODES (default 127.0.0.1:7001-7003, as in course_lib/config.py), no replicas.
# A cluster that already answers with cluster_state:ok is used as it is; otherwise Docker Compose
# (the `cluster` compose profile of docker-compose.feast.yml) if Docker runs, else the machine's own
# redis-server through course_lib.cluster, which keeps each node's folder, pid file and log under
# COURSE_WORKDIR/redis-cluster/<port>. `down` stops only what those two ways started: the compose
# service, and processes whose pid files name redis-server on their node's port.
# Used by `make services-cluster`, `make services-cluster-down` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
COMPOSE=(docker compose -f docker-compose.feast.yml --profile cluster)
COMPOSE_SERVICE=redis-cluster   # service name in docker/docker-compose.cluster.yml

say() { echo "services-cluster: $*"; }
docker_runs() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }
helper() { "$PY" -m course_lib.cluster "$@"; }

if [[ ! -x $PY ]]; then
  say "$PY does not exist: run \`make venv\` first"
  [[ ${1:-} == down ]] && exit 0   # without it, nothing can have been started
  exit 1
fi

case ${1:-} in
  up)
    if helper status >/dev/null 2>&1; then
      say "already running"
    elif docker_runs; then
      say "starting it with ${COMPOSE[*]} up -d --wait $COMPOSE_SERVICE"
      "${COMPOSE[@]}" up -d --wait "$COMPOSE_SERVICE"
    else
      say "Docker is not available; starting the local redis-server nodes"
      helper up
    fi
    helper status ;;
  down)
    if docker_runs; then "${COMPOSE[@]}" rm --stop --force "$COMPOSE_SERVICE"; fi
    helper down ;;
  status)
    helper status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2 ;;
esac
