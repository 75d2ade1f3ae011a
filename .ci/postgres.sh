#!/usr/bin/env bash
# Source this file: it starts a throwaway PostgreSQL server on 127.0.0.1 (a fresh cluster in a temp
# folder, trust auth, fsync off) and exports FOVEATE_TEST_DATABASE_URL, so that the insight-memory
# tests run against PostgreSQL as well as SQLite. Call foveate_pg_stop when done.
# It never downloads anything: without server binaries, or if any step fails, it says why, exports
# nothing and returns 0, and those tests run on SQLite only.

foveate_pg_start() {
    local bindir dir port
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || bindir=""
    if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
        bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
    fi
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
        echo "postgres.sh: no PostgreSQL server binaries here; memory tests run on SQLite only"
        return 0
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/foveate-pg.XXXXXX") || return 0
    local run_as=()
    if [ "$(id -u)" = 0 ]; then  # initdb refuses to run as root
        if id postgres >/dev/null 2>&1; then
            chown postgres "$dir" || { rm -rf "$dir"; return 0; }
            run_as=(runuser -u postgres --)
        else
            echo "postgres.sh: running as root with no 'postgres' user; memory tests run on SQLite only"
            rm -rf "$dir"
            return 0
        fi
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
        { rm -rf "$dir"; return 0; }
    if ! "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U foveate --auth=trust -E UTF8 --no-sync \
        >"$dir/initdb.log" 2>&1; then
        echo "postgres.sh: initdb failed (see below); memory tests run on SQLite only"
        tail -n 5 "$dir/initdb.log"
        rm -rf "$dir"
        return 0
    fi
    if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        start >/dev/null 2>&1; then
        echo "postgres.sh: the server did not start (see below); memory tests run on SQLite only"
        tail -n 5 "$dir/server.log"
        rm -rf "$dir"
        return 0
    fi
    export FOVEATE_PG_DIR="$dir" FOVEATE_PG_BINDIR="$bindir"
    if ! "${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U foveate foveate_ci >/dev/null 2>&1; then
        echo "postgres.sh: createdb failed; memory tests run on SQLite only"
        foveate_pg_stop
        return 0
    fi
    export FOVEATE_TEST_DATABASE_URL="postgresql+psycopg://foveate@127.0.0.1:$port/foveate_ci"
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

foveate_pg_stop() {
    if [ -n "${FOVEATE_PG_DIR:-}" ] && [ -d "$FOVEATE_PG_DIR/data" ]; then
        local run_as=()
        [ "$(id -u)" = 0 ] && run_as=(runuser -u postgres --)
        "${run_as[@]}" "$FOVEATE_PG_BINDIR/pg_ctl" -D "$FOVEATE_PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$FOVEATE_PG_DIR"
    fi
    unset FOVEATE_PG_DIR FOVEATE_PG_BINDIR FOVEATE_TEST_DATABASE_URL
}
