# Shared by the benchmark scripts (sourced): a work directory removed on exit, release
# binaries, a throwaway PostgreSQL cluster and a local gateway.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
target=${CARGO_TARGET_DIR:-$root/target}

work=$(mktemp -d /var/tmp/walgate-bench.XXXXXX)
cleanup() {
    [[ -n ${gw_pid:-} ]] && kill "$gw_pid" 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# PostgreSQL refuses to run as root.
if [[ $(id -u) == 0 ]]; then
    chown postgres: "$work"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

echo "building release binaries..." >&2
# The client as shipped: the size-optimised `client` profile.
(cd "$root" && cargo build --release --quiet -p walgate &&
    cargo build --profile client --quiet -p walgate-client)
client_bin=$target/client/walgate-client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_pg [EXTRA SETTINGS] [SERVER OPTIONS]: initdb and start a cluster on a free port;
# sets $port. SETTINGS go into postgresql.conf, so a base backup carries them; OPTIONS
# (`-c name=value ...`) only into this server's command line.
start_pg() {
    as_pg "$pg_bin/initdb" -U postgres -A trust -D "$work/pg" >/dev/null
    port=$(free_port)
    printf "port = %s\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n%s\n" \
        "$port" "$work" "${1:-}" >>"$work/pg/postgresql.conf"
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -o "${2:-}" -w start >/dev/null
}

psql() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -At "$@"; }
pgbench() { "$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres "$@" postgres >/dev/null 2>&1; }

# start_gateway: a release gateway on a free port with an admin token; sets $url,
# $token, $gw_pid, and writes $work/token and $work/auth-header.
start_gateway() {
    "$target/release/walgate" serve --data-dir "$work/gw" --listen 127.0.0.1:0 >"$work/gw.addr" 2>"$work/gw.log" &
    gw_pid=$!
    until grep -q "listening on .*:[0-9][0-9]*$" "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
    url=$(sed 's/.*listening on //' "$work/gw.addr")
    token=$("$target/release/walgate" token issue --data-dir "$work/gw" --cluster '*' --role admin 2>/dev/null)
    printf '%s' "$token" >"$work/token"
    printf 'Authorization: Bearer %s\n' "$token" >"$work/auth-header"
}

# make_segments N: N real segments from a pgbench load (a COPY and index builds, then
# updates whose WAL is full-page images after each checkpoint, as on a busy server), in
# $work/segments; sets names (their file names) and bytes (their total size).
make_segments() {
    echo "making $1 real segments with pgbench..." >&2
    as_pg mkdir "$work/segments"
    start_pg "archive_mode = on
archive_command = 'cp %p $work/segments/%f'
max_wal_size = '4GB'
fsync = off
synchronous_commit = off"
    pgbench -i -s $(($1 / 2)) -q
    while (($(ls "$work/segments" | wc -l) < $1)); do
        psql -c CHECKPOINT
        pgbench -n -c 4 -j 2 -T 5
        psql -c 'SELECT pg_switch_wal()' >/dev/null
    done
    sleep 2
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null
    mapfile -t names < <(ls "$work/segments" | grep -E '^[0-9A-F]{24}$' | head -n "$1")
    bytes=$(cd "$work/segments" && cat "${names[@]}" | wc -c)
}

# stage: a data directory, $work/pgdata, whose pg_wal holds every segment of
# make_segments, each marked .ready: an archive backlog, as after an outage.
stage() {
    rm -rf "$work/pgdata"
    mkdir -p "$work/pgdata/pg_wal/archive_status"
    for n in "${names[@]}"; do
        ln "$work/segments/$n" "$work/pgdata/pg_wal/$n"
        : >"$work/pgdata/pg_wal/archive_status/$n.ready"
    done
    sync
}

# Best times by name over rounds, in seconds.
declare -A best
# since START: the seconds since START (a `date +%s.%N`).
since() { python3 -c "import time; print(time.time() - $1)"; }
# keep_best NAME SECONDS: keep SECONDS under NAME if it beats the best so far.
keep_best() { best[$1]=$(python3 -c "print(min(${best[$1]:-1e9}, $2))"); }
# timed NAME COMMAND...: run once and keep the best time under NAME.
timed() {
    local name=$1 s
    shift
    s=$(date +%s.%N)
    "$@"
    keep_best "$name" "$(since "$s")"
}
