#!/bin/sh
# Creates the course's two databases, the Feast SQL registry and the offline store, on one
# server. The postgres image runs this once, on the first start with an empty data volume.
# It may be sourced rather than executed, so it only uses `set -e` and never exits.
set -e
for database in "${FEAST_REGISTRY_DB:?set by docker-compose.feast.yml}" "${FEAST_OFFLINE_DB:?set by docker-compose.feast.yml}"; do
    echo "creating database $database"
    createdb --username "$POSTGRES_USER" "$database"
done
