#!/usr/bin/env bash
# Make sure Redis and PostgreSQL (the enterprise profile's services) answer, then create the
# course databases. Already running services are used as they are; otherwise Docker Compose is
# tried first, then the machine's own redis-server and PostgreSQL cluster. Exits non-zero with
# what to do when neither way works. Used by `make services` and .ci/run.
# Defaults are those of course_lib/config.py ENV_DEFAULTS (tests/test_readme.py checks they agree).
set -euo pipefail
cd "$(dirname "$0")/.."

REDIS_HOST=${FEAST_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${FEAST_REDIS_PORT:-6379}
PG_HOST=${FEAST_PG_HOST:-127.0.0.1}
PG_PORT=${FEAST_PG_PORT:-5432}
PG_USER=${FEAST_PG_USER:-postgres}
DATABASES=("${FEAST_REGISTRY_DB:-feast_registry}" "${FEAST_OFFLINE_DB:-feast_offline}"
           "${FEAST_SCALEOUT_REGISTRY_DB:-feast_registry_scaleout}")  # the last: the scaleout profile's registry
PG_SSLMODE=${FEAST_PG_SSLMODE:-disable}
if [[ -n ${FEAST_PG_PASSWORD:-} ]]; then export PGPASSWORD=$FEAST_PG_PASSWORD; fi
export PGSSLMODE=$PG_SSLMODE PGCONNECT_TIMEOUT=3

COMPOSE=(docker compose -f docker-compose.feast.yml)
COMPOSE_PG_SERVICE=postgres   # service name of PostgreSQL in docker-compose.feast.yml
WAIT_SECONDS=30
HOW_TO_FIX="either start Docker (then 'docker compose -f docker-compose.feast.yml up -d --wait' is used),
  or install Redis and PostgreSQL natively (Debian/Ubuntu: apt-get install redis-server postgresql),
  or point FEAST_REDIS_HOST/FEAST_REDIS_PORT and FEAST_PG_HOST/FEAST_PG_PORT at running servers"

say() { echo "services: $*"; }
fail() { printf 'services: ERROR: %s\n  Fix: %s\n' "$1" "$HOW_TO_FIX" >&2; exit 1; }
is_local() { [[ $1 == 127.0.0.1 || $1 == localhost || $1 == ::1 ]]; }

redis_up() {
  # PING over a raw socket (no redis-cli needed); a NOAUTH reply also proves the server is up.
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && printf "PING\r\n" >&3 && read -r reply <&3 &&
    [[ $reply == +PONG* || $reply == -NOAUTH* ]]' "$REDIS_HOST" "$REDIS_PORT" 2>/dev/null
}

pg_up() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER"
  else
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$PG_HOST" "$PG_PORT" 2>/dev/null
  fi
}

both_up() { redis_up && pg_up; }

ensure_pg_password() {
  # The Compose PostgreSQL uses password authentication: reuse .env's password, or generate one there (0600).
  if [[ -z ${FEAST_PG_PASSWORD:-} && -f .env ]]; then
    FEAST_PG_PASSWORD=$(sed -n 's/^FEAST_PG_PASSWORD=//p' .env)
  fi
  if [[ -z ${FEAST_PG_PASSWORD:-} ]]; then
    FEAST_PG_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    (umask 077 && echo "FEAST_PG_PASSWORD=$FEAST_PG_PASSWORD" >> .env)
    say "generated a PostgreSQL password into .env; run: export \$(grep FEAST_PG_PASSWORD .env)"
  fi
  export FEAST_PG_PASSWORD PGPASSWORD=$FEAST_PG_PASSWORD
}

start_with_docker() {
  ensure_pg_password
  say "starting Redis and PostgreSQL with ${COMPOSE[*]} up -d --wait"
  "${COMPOSE[@]}" up -d --wait
}

start_redis_locally() {
  local dir=/var/lib/redis logfile=/var/log/redis/ci.log
  if [[ ! -d $dir || ! -d $(dirname "$logfile") ]]; then
    dir=$PWD/var/redis logfile=$PWD/var/redis/redis.log
    mkdir -p "$dir"
  fi
  say "starting redis-server on port $REDIS_PORT (log: $logfile)"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir "$dir" --logfile "$logfile"
}

start_postgres_locally() {
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  say "starting PostgreSQL cluster $version/main"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

start_locally() {
  if ! redis_up; then
    is_local "$REDIS_HOST" || fail "Redis at $REDIS_HOST:$REDIS_PORT does not answer PING, and it is not on this machine"
    command -v redis-server >/dev/null || fail "Redis at $REDIS_HOST:$REDIS_PORT does not answer and redis-server is not installed"
    start_redis_locally
  fi
  if ! pg_up; then
    is_local "$PG_HOST" || fail "PostgreSQL at $PG_HOST:$PG_PORT is not accepting connections, and it is not on this machine"
    command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]] ||
      fail "PostgreSQL at $PG_HOST:$PG_PORT is not accepting connections and no local cluster (pg_ctlcluster) is installed"
    start_postgres_locally
  fi
}

wait_until_up() {
  local waited=0
  until both_up; do
    (( waited < WAIT_SECONDS )) ||
      fail "after ${WAIT_SECONDS}s: Redis $REDIS_HOST:$REDIS_PORT $(redis_up && echo up || echo down), PostgreSQL $PG_HOST:$PG_PORT $(pg_up && echo up || echo down)"
    sleep 1
    waited=$((waited + 1))
  done
}

psql_cmd() {
  # Host psql when installed; inside the Compose container otherwise.
  if command -v psql >/dev/null; then
    psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" "$@"
  elif docker info >/dev/null 2>&1; then
    "${COMPOSE[@]}" exec -T "$COMPOSE_PG_SERVICE" psql -U "$PG_USER" "$@"
  else
    fail "PostgreSQL is up but there is no psql client to create the databases (apt-get install postgresql-client)"
  fi
}

create_databases() {
  local db exists
  for db in "${DATABASES[@]}"; do
    # psql quotes the name itself (:'db' as a literal, :"db" as an identifier); -c would not interpolate
    exists=$(psql_cmd -d postgres -Atq -v db="$db" <<< "SELECT 1 FROM pg_database WHERE datname = :'db'")
    if [[ $exists == 1 ]]; then
      say "database $db exists"
    else
      psql_cmd -d postgres -q -v db="$db" <<< 'CREATE DATABASE :"db"'
      say "database $db created"
    fi
  done
}

if both_up; then
  say "Redis $REDIS_HOST:$REDIS_PORT and PostgreSQL $PG_HOST:$PG_PORT already answer"
elif docker info >/dev/null 2>&1; then
  start_with_docker
else
  say "Docker is not available; using the local redis-server and PostgreSQL"
  start_locally
fi
wait_until_up
create_databases
say "ready: Redis $REDIS_HOST:$REDIS_PORT, PostgreSQL $PG_HOST:$PG_PORT (databases: ${DATABASES[*]})"
