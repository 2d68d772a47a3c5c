#!/bin/sh
# First start (an empty PGDATA): initdb with POSTGRES_PASSWORD for user
# postgres, password logins from the network, POSTGRES_DB created. Then
# run the command (postgres) as PID 1.
set -eu
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
	initdb --username=postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA"
	rm -f "$pwfile"
	echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
	echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
	if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
		echo "CREATE DATABASE \"$POSTGRES_DB\";" | postgres --single -jE -D "$PGDATA" postgres >/dev/null
	fi
fi
exec "$@"
