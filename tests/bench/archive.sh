#!/usr/bin/env bash
# Benchmark: archive the same real 16 MiB WAL segments, one process per segment as
# PostgreSQL's archiver does, through
#   - the README's curl archive_command into a local gateway (SQLite catalog, local store),
#   - walgate-client wal-push into the same gateway,
# next to the local baselines `cp` + fsync, `zstd -3` + fsync and `zstd -1` + fsync of the
# same files, in one run, and prints segments/s and ratios.
#
#   tests/bench/archive.sh [SEGMENTS=48] [ROUNDS=3]
#
# Runs as root (PostgreSQL then runs as `postgres`) or as an ordinary user.
set -euo pipefail
segments=${1:-48}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/../.." && pwd)
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
target=${CARGO_TARGET_DIR:-$root/target}

work=$(mktemp -d /var/tmp/walgate-bench.XXXXXX)
cleanup() {
    [[ -n ${gw_pid:-} ]] && kill "$gw_pid" 2>/dev/null || true
    as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
if [[ $(id -u) == 0 ]]; then
    chown postgres: "$work"
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi

echo "building release binaries..." >&2
(cd "$root" && cargo build --release --quiet -p walgate -p walgate-client)

echo "making $segments real segments with pgbench..." >&2
as_pg mkdir "$work/segments"
as_pg "$pg_bin/initdb" -U postgres -A trust -D "$work/pg" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >>"$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
archive_mode = on
archive_command = 'cp %p $work/segments/%f'
max_wal_size = '4GB'
CONF
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
psql() { "$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -At "$@"; }
"$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s 20 -q postgres >/dev/null 2>&1
while (($(ls "$work/segments" | wc -l) < segments)); do
    "$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -T 5 postgres >/dev/null 2>&1
    psql -c 'SELECT pg_switch_wal()' >/dev/null
    sleep 1
done
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null
mapfile -t files < <(ls "$work/segments"/* | head -n "$segments")
bytes=$(cat "${files[@]}" | wc -c)
zbytes=$(cat "${files[@]}" | zstd -1 -c | wc -c)
echo "segments: ${#files[@]} ($((bytes >> 20)) MiB, zstd -1 ratio $(python3 -c "print(round($bytes/$zbytes,2))"))" >&2

echo "starting the gateway..." >&2
"$target/release/walgate" serve --data-dir "$work/gw" --listen 127.0.0.1:0 >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
until grep -q listening "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
url=$(sed 's/.*listening on //' "$work/gw.addr")
admin_token=$("$target/release/walgate" token issue --data-dir "$work/gw" --cluster '*' --role archiver)
printf 'Authorization: Bearer %s\n' "$admin_token" >"$work/auth-header"
printf '%s' "$admin_token" >"$work/token"

run_cp() { cp "$1" "$2/" && sync "$2/$(basename "$1")" "$2"; }
run_zstd3() { zstd -q -3 "$1" -o "$2/$(basename "$1").zst" && sync "$2/$(basename "$1").zst" "$2"; }
run_zstd1() { zstd -q -1 "$1" -o "$2/$(basename "$1").zst" && sync "$2/$(basename "$1").zst" "$2"; }
run_curl() {
    curl -sS --fail -o /dev/null -H "@$work/auth-header" -T "$1" "$url/v1/clusters/$3/wal/$(basename "$1")"
}
run_client() {
    WALGATE_URL=$url WALGATE_CLUSTER=$3 WALGATE_TOKEN_FILE=$work/token "$target/release/walgate-client" wal-push "$1"
}

# Segments per second of the best of $rounds rounds; each round starts on an empty target.
measure() {
    local method=$1 best=0
    for r in $(seq "$rounds"); do
        local dest="$work/out-$method-$r"
        mkdir -p "$dest"
        sync
        local start end
        start=$(date +%s.%N)
        for f in "${files[@]}"; do "run_$method" "$f" "$dest" "bench-$method-$r"; done
        end=$(date +%s.%N)
        best=$(python3 -c "print(max($best, ${#files[@]}/($end-$start)))")
        rm -rf "$dest"
    done
    echo "$best"
}

declare -A rate
for m in cp zstd3 zstd1 curl client; do
    echo "measuring $m..." >&2
    rate[$m]=$(measure "$m")
done

printf '\n%-34s %10s %12s %12s %12s\n' "method (serial, one process each)" "segments/s" "MiB/s" "vs zstd -1" "vs cp"
for m in cp zstd3 zstd1 curl client; do
    case $m in
        cp) label="cp + fsync" ;; zstd3) label="zstd -3 + fsync" ;; zstd1) label="zstd -1 + fsync" ;;
        curl) label="walgate, curl archive_command" ;; client) label="walgate, walgate-client wal-push" ;;
    esac
    python3 -c "
r=${rate[$m]}; print('%-34s %10.1f %12.0f %11.2fx %11.2fx' % ('$label', r, r*16, r/${rate[zstd1]}, r/${rate[cp]}))"
done
