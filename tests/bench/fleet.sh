#!/usr/bin/env bash
# Benchmark: the fleet view with a large PostgreSQL catalog. A throwaway PostgreSQL
# holds the catalog of a release gateway; 1,000 clusters with 10,000 WAL files each
# (10 million rows), a week of nightly backups and a verification each are loaded into
# it directly (the gateway's own triggers keep the per-cluster totals), then:
#
#   GET /v1/clusters    the whole fleet as JSON, with each cluster's status
#   GET /v1/clusters?limit=100
#                       its first page, failing first, as a script pages through it
#   GET /               the dashboard's fleet table (signed in), one page
#   GET /metrics        every cluster's gauges
#   GET /healthz        the floor: a request that reads nothing
#
# each requested REQUESTS times with curl, one at a time; the median, 95th percentile
# and worst latency are printed, with the ratio to the 200 ms target. As a baseline in
# the same run, the aggregate the fleet view used before the totals table (count and
# sum over every WAL row, grouped by cluster) is timed with psql.
#
# Then scheduled verification: a gateway verifying every 20 s logs each run's duration.
# Its first run reads every cluster's archive whole (the loaded reports predate the
# change counters), the second finds nothing changed; their ratio is printed. Then every
# cluster archives one more segment, and the third run reads only those.
#
#   tests/bench/fleet.sh [CLUSTERS=1000] [WAL_PER_CLUSTER=10000] [REQUESTS=30]
set -euo pipefail
clusters=${1:-1000}
per_cluster=${2:-10000}
requests=${3:-30}
source "$(dirname "$0")/lib.sh"

start_pg "shared_buffers = '512MB'
max_wal_size = '8GB'
fsync = off
synchronous_commit = off
full_page_writes = off"
psql -c "CREATE DATABASE walgate" >/dev/null
catalog="postgres://postgres@127.0.0.1:$port/walgate"
gw=(--data-dir "$work/gw" --catalog-url "$catalog")

# Migrations first, so the load goes through the gateway's own schema and triggers.
"$target/release/walgate" migrate "${gw[@]}" >/dev/null 2>&1
echo "loading $clusters clusters x $per_cluster WAL files..." >&2
SECONDS=0
psql -d walgate <<SQL
INSERT INTO clusters (name, system_identifier, segment_size, pg_version, created_at, target)
SELECT format('db-%s', lpad(c::text, ${#clusters}, '0')), 7300000000000000000 + c, 16777216, 15,
       now() - interval '30 days', 'default'
FROM generate_series(1, $clusters) c;
SQL
# In slices of 100 clusters: one statement per slice, so each slice's trigger runs once.
for ((from = 1; from <= clusters; from += 100)); do
    psql -d walgate <<SQL
INSERT INTO wal_files (cluster, name, kind, timeline, size, stored_size, digest, archived_at)
SELECT format('db-%s', lpad(c::text, ${#clusters}, '0')),
       '00000001' || upper(lpad(to_hex(n / 256), 8, '0') || lpad(to_hex(n % 256), 8, '0')),
       'segment', 1, 16777216, 2000000 + (n % 1000) * 1000, 'blake3:' || repeat('ab', 32),
       -- One segment a minute; every 7th cluster stopped archiving two hours ago.
       now() - ($per_cluster - n) * interval '1 minute'
             - CASE WHEN c % 7 = 0 THEN interval '2 hours' ELSE interval '0' END
FROM generate_series($from, least($from + 99, $clusters)) c,
     generate_series(1, $per_cluster) n;
SQL
done
psql -d walgate <<SQL
INSERT INTO backups (cluster, id, status, label, method, from_standby, start_lsn,
                     start_timeline, checkpoint_lsn, end_lsn, end_timeline,
                     system_identifier, size, stored_size, sha256, has_manifest,
                     started_at, finished_at)
SELECT format('db-%s', lpad(c::text, ${#clusters}, '0')),
       to_char(now() - d * interval '1 day', 'YYYYMMDD"T"HH24MISS"Z"') || '-000000010000000000000001',
       'complete', 'nightly', 'streamed', 0, 16777256, 1, 16777256, 16781312, 1,
       7300000000000000000 + c, 30000000000, 9000000000 + d * 1000, repeat('cd', 32), 1,
       now() - d * interval '1 day' - interval '40 minutes', now() - d * interval '1 day'
FROM generate_series(1, $clusters) c, generate_series(0, 6) d
-- Every 11th cluster has no backup for two days.
WHERE c % 11 <> 0 OR d >= 2;
INSERT INTO verifications (cluster, verified_at, ok, report)
SELECT format('db-%s', lpad(c::text, ${#clusters}, '0')), now(), (c % 13 <> 0)::int,
       json_build_object('cluster', format('db-%s', lpad(c::text, ${#clusters}, '0')),
                         'verified_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                         'ok', c % 13 <> 0,
                         'chain_problems', CASE WHEN c % 13 = 0
                             THEN json_build_array('000000010000000000000002 is missing')
                             ELSE json_build_array() END,
                         'scrubbed', false, 'objects_checked', 0,
                         'object_problems', json_build_array())::text
FROM generate_series(1, $clusters) c;
VACUUM ANALYZE;
SQL
rows=$(psql -d walgate -c "SELECT count(*) FROM wal_files")
echo "loaded $rows WAL rows in ${SECONDS}s; catalog $(psql -d walgate -c "SELECT pg_size_pretty(pg_database_size('walgate'))")" >&2

# The gateway, retention and verification off: only the requests below touch the catalog.
"$target/release/walgate" serve "${gw[@]}" --listen 127.0.0.1:0 --retention-interval 0 \
    --verify-interval 0 >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
until grep -q listening "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
url=$(sed 's/.*listening on //' "$work/gw.addr")
token=$("$target/release/walgate" token issue "${gw[@]}" --cluster '*' --role viewer 2>/dev/null)

# stats NAME PATH [CURL ARGS]: REQUESTS timed requests after two warm-ups.
stats() {
    local name=$1 path=$2
    shift 2
    local times=() status size
    for ((i = 0; i < requests + 2; i++)); do
        read -r status size t < <(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$@" "$url$path")
        [[ $status == 200 ]] || { echo "$path answered $status" >&2; exit 1; }
        ((i < 2)) || times+=("$t")
    done
    printf '%s\n' "${times[@]}" | python3 -c "
import sys
t = sorted(float(x) * 1000 for x in sys.stdin)
p = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f'$name: median {p(0.5):7.1f} ms  p95 {p(0.95):7.1f} ms  worst {t[-1]:7.1f} ms  '
      f'({$size / 1024:.0f} KiB)  target 200 ms: p95 at {p(0.95) / 200:.2f}x')"
}

# The aggregate the fleet view ran before migration 0009, for comparison.
baseline=$(psql -d walgate -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT cluster, count(*), sum(stored_size), max(name), max(archived_at) FROM wal_files GROUP BY cluster" |
    python3 -c 'import json,sys; print(round(json.load(sys.stdin)[0]["Execution Time"], 1))')

echo "fleet of $clusters clusters, $rows WAL rows, PostgreSQL catalog; $requests requests each:"
stats "GET /healthz     " /healthz
stats "GET /v1/clusters " /v1/clusters -H "Authorization: Bearer $token"
stats "GET ...?limit=100" "/v1/clusters?limit=100" -H "Authorization: Bearer $token"
stats "GET / (dashboard)" / -b "walgate_session=$token"
stats "GET /metrics     " /metrics -H "Authorization: Bearer $token"
echo "baseline: aggregating every WAL row per cluster (the query before the totals table) takes $baseline ms on its own"
curl -sS -H "Authorization: Bearer $token" "$url/v1/clusters" | python3 -c '
import json, sys, collections
c = collections.Counter(x["status"] for x in json.load(sys.stdin))
print("states:", dict(sorted(c.items())))'

# Scheduled verification, on a gateway of its own.
kill "$gw_pid"
wait "$gw_pid" 2>/dev/null || true
"$target/release/walgate" serve "${gw[@]}" --listen 127.0.0.1:0 --retention-interval 0 \
    --verify-interval 20sec >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
echo "scheduled verification: waiting for two runs..." >&2
runs() { grep -c "verify: scheduled run done" "$work/gw.log" || true; }
until (($(runs) >= 2)); do sleep 0.2; done
# One more segment for every cluster, well before the third run starts.
psql -d walgate -c "INSERT INTO wal_files (cluster, name, kind, timeline, size, stored_size, digest, archived_at)
SELECT name, '00000001' || upper(lpad(to_hex(($per_cluster + 1) / 256), 8, '0') || lpad(to_hex(($per_cluster + 1) % 256), 8, '0')),
       'segment', 1, 16777216, 2000000, 'blake3:' || repeat('ab', 32), now() FROM clusters"
until (($(runs) >= 3)); do sleep 1; done
grep "verify: scheduled run done" "$work/gw.log" | head -3 | python3 -c '
import re, sys
first, second, third = (dict(re.findall(r"(\w+)=(\d+)", line)) for line in sys.stdin)
whole, took = first["whole"], int(first["ms"])
renewed, reread, again = second["unchanged"], second["whole"], int(second["ms"])
appended, rest, last = third["appended"], third["whole"], int(third["ms"])
print(f"verification, first run (archives read whole: {whole}): {took / 1000:.1f} s")
print(f"verification, next run (nothing changed: {renewed} renewed, {reread} read whole): "
      f"{again} ms, {took / max(again, 1):.0f}x less; target under 1 s")
print(f"verification, after one segment each ({appended} read from their newest segment on, "
      f"{rest} read whole): {last / 1000:.1f} s, {took / max(last, 1):.0f}x less than whole")'
