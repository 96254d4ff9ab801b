#!/usr/bin/env bash
# Benchmark: a fleet archiving at once. A release gateway on a PostgreSQL catalog, on
# loopback, while
#
#   - `fleet-load` plays CLUSTERS small clusters, each with its own token and system
#     identifier, each pushing one real 16 MiB segment a minute (zstd, as the client
#     sends it), their turns spread over the minute, for MINUTES minutes;
#   - a busy cluster drains a backlog of BACKLOG real segments with
#     `walgate-client wal-push`, round after round, as fast as it can.
#
# The same drain runs three times before the fleet starts, as the unloaded baseline.
# Printed: the small clusters' push latency (p50, p99, worst) and answers by status; the
# busy cluster's segments/s under load against unloaded; the gateway's CPU per stored
# segment and peak RSS; the catalog's growth. Targets: no 5xx, p99 under 250 ms, the
# busy cluster at 0.6x or better, RSS under 512 MiB.
#
# Each drain round archives to a cluster of its own, whose objects are removed after
# the round so that five minutes of draining fit on the disk (the catalog keeps their
# rows, as it would).
#
#   tests/bench/load.sh [CLUSTERS=1000] [MINUTES=5] [BACKLOG=100]
set -euo pipefail
clusters=${1:-1000}
minutes=${2:-5}
backlog=${3:-100}
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo build --release --quiet -p walgate-tests --bin fleet-load)

make_segments "$backlog"
rm -rf "$work/pg"
start_pg "shared_buffers = '256MB'
max_wal_size = '4GB'"
psql -c "CREATE DATABASE walgate" >/dev/null
catalog="postgres://postgres@127.0.0.1:$port/walgate"
gw=(--data-dir "$work/gw" --catalog-url "$catalog")
"$target/release/walgate" serve "${gw[@]}" --listen 127.0.0.1:0 >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
until grep -q "listening on .*:[0-9][0-9]*$" "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
url=$(sed 's/.*listening on //' "$work/gw.addr")
token=$("$target/release/walgate" token issue "${gw[@]}" --cluster '*' --role admin 2>/dev/null)
printf '%s' "$token" >"$work/token"

# drain ROUND: archives the backlog to cluster busy-ROUND with wal-push, as PostgreSQL's
# archiver would after an outage; prints segments/s.
drain() {
    stage
    local start
    start=$(date +%s.%N)
    (
        cd "$work/pgdata"
        export WALGATE_URL=$url WALGATE_CLUSTER=busy-$1 WALGATE_TOKEN_FILE=$work/token
        for n in "${names[@]}"; do
            "$client_bin" wal-push "pg_wal/$n" || { echo "busy: wal-push of $n failed" >&2; exit 1; }
            mv "pg_wal/archive_status/$n.ready" "pg_wal/archive_status/$n.done"
        done
    )
    python3 -c "import time; print(round($backlog / (time.time() - $start), 2))"
    rm -rf "$work/gw/objects/clusters/busy-$1"
}
median() { printf '%s\n' "$@" | sort -g | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(v[len(v)//2])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$gw_pid/stat"; }
stored() { psql -d walgate -c "SELECT count(*) FROM wal_files"; }

echo "unloaded drains..." >&2
unloaded=()
for round in 1 2 3; do unloaded+=("$(drain "u$round")"); done

size0=$(psql -d walgate -c "SELECT pg_database_size('walgate')")
rows0=$(stored)
ticks0=$(cpu_ticks)
echo "fleet of $clusters clusters for $minutes min, and the busy cluster draining..." >&2
"$target/release/fleet-load" "$url" "$token" "$work/segments/${names[0]}" "$clusters" 60 $((minutes * 60)) \
    >"$work/load.json" 2>"$work/load.log" &
load_pid=$!
loaded=()
round=0
while kill -0 "$load_pid" 2>/dev/null; do
    round=$((round + 1))
    loaded+=("$(drain "l$round")")
done
wait "$load_pid" || { echo "fleet-load failed:" >&2; cat "$work/load.log" >&2; exit 1; }
ticks1=$(cpu_ticks)
rows1=$(stored)
size1=$(psql -d walgate -c "SELECT pg_database_size('walgate')")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$gw_pid/status")
hz=$(getconf CLK_TCK)

python3 - "$work/load.json" <<PY
import json, sys
load = json.load(open(sys.argv[1]))
unloaded, loaded = $(median "${unloaded[@]}"), $(median "${loaded[@]}")
segments = $rows1 - $rows0
cpu_ms = ($ticks1 - $ticks0) * 1000 / $hz
fives = sum(n for s, n in load["by_status"].items() if s.startswith("5") or s.startswith("error"))
print(f"fleet: $clusters clusters x one 16 MiB segment a minute ({$clusters / 60:.1f} segments/s) "
      f"for $minutes min, PostgreSQL catalog, loopback")
print(f"small clusters: {load['pushes']} pushes, p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms "
      f"(target < 250: {load['p99_ms'] / 250:.2f}x), worst {load['worst_ms']:.0f} ms; "
      f"answers {load['by_status']}; 5xx or failed: {fives}")
print(f"busy cluster: {loaded} segments/s under load (median of ${#loaded[@]} rounds of $backlog) "
      f"vs {unloaded} unloaded (median of 3): {loaded / unloaded:.2f}x (target >= 0.6)")
print(f"gateway: {cpu_ms / segments:.1f} ms CPU per stored segment ({segments} stored, "
      f"{segments / ($minutes * 60):.1f}/s), peak RSS {$hwm_kib / 1024:.0f} MiB (target < 512)")
print(f"catalog: +{($size1 - $size0) / 2**20:.1f} MiB for {segments} WAL rows "
      f"({($size1 - $size0) / segments:.0f} bytes a row, indexes included)")
PY
