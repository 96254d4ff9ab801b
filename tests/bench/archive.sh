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
source "$(dirname "$0")/lib.sh"

echo "making $segments real segments with pgbench..." >&2
as_pg mkdir "$work/segments"
start_pg "archive_mode = on
archive_command = 'cp %p $work/segments/%f'
max_wal_size = '4GB'"
pgbench -i -s 20 -q
while (($(ls "$work/segments" | wc -l) < segments)); do
    pgbench -n -c 4 -T 5
    psql -c 'SELECT pg_switch_wal()' >/dev/null
    sleep 1
done
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null
mapfile -t files < <(ls "$work/segments"/* | head -n "$segments")
bytes=$(cat "${files[@]}" | wc -c)
zbytes=$(cat "${files[@]}" | zstd -1 -c | wc -c)
echo "segments: ${#files[@]} ($((bytes >> 20)) MiB, zstd -1 ratio $(python3 -c "print(round($bytes/$zbytes,2))"))" >&2

echo "starting the gateway..." >&2
start_gateway

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
