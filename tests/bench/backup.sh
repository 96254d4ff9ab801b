#!/usr/bin/env bash
# Benchmark: base backup and restore of a pgbench database through the gateway, next to
# the local pipes that do the same work, in one run:
#   backup:  walgate-client backup-push, and pg_basebackup | curl -T -  (into a local gateway)
#            vs  pg_basebackup -D - -Ft | zstd -3 > file
#   restore: walgate-client backup-fetch, and curl | tar -x
#            vs  zstd -d -c file | tar -x
# and the gateway's peak RSS (VmHWM) over both.
#
#   tests/bench/backup.sh [PGBENCH_SCALE=70]   (scale 70 is about 1 GiB; ROUNDS=5, best taken)
set -euo pipefail
scale=${1:-70}
source "$(dirname "$0")/lib.sh"

echo "making a pgbench database at scale $scale..." >&2
start_pg "fsync = off
max_wal_size = '4GB'"
pgbench -i -s "$scale" -q
psql -c CHECKPOINT
db_bytes=$(psql -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
echo "database: $((db_bytes >> 20)) MiB" >&2

start_gateway
export WALGATE_URL=$url WALGATE_CLUSTER=bench WALGATE_TOKEN_FILE=$work/token
basebackup=("$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D - -Ft -X fetch --checkpoint=fast)

# Each round runs every contender once, in turn, so that drift on a noisy machine (page
# cache, checkpoints, other load) touches them alike; the best of $rounds rounds counts.
rounds=${ROUNDS:-5}
mibs() { python3 -c "print('%.0f' % ($db_bytes / 1048576 / $1))"; }

for round in $(seq "$rounds"); do
    echo "backup round $round of $rounds" >&2
    timed floor bash -c "${basebackup[*]@Q} > /dev/null"
    timed pipe bash -c "${basebackup[*]@Q} | zstd -3 -q > $work/pipe.tar.zst"
    timed client bash -c "$client_bin backup-push --pg-basebackup $pg_bin/pg_basebackup -- -h 127.0.0.1 -p $port -U postgres >/dev/null"
    timed curl bash -c "${basebackup[*]@Q} | curl -sS --fail -o /dev/null -H 'Authorization: Bearer $token' -T - $url/v1/clusters/bench/backups"
done
rss_backup=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)

# Each restore starts from an empty directory, with dirty pages of the last one written.
fresh() { rm -rf "$work/r"; mkdir "$work/r"; sync; }
for round in $(seq "$rounds"); do
    echo "restore round $round of $rounds" >&2
    fresh
    timed r_pipe bash -c "zstd -d -q -c $work/pipe.tar.zst | tar -x -C $work/r"
    fresh
    timed r_client "$client_bin" backup-fetch "$work/r" latest
    [[ -f $work/r/PG_VERSION && -f $work/r/global/pg_control ]] || { echo "the client restored no data directory" >&2; exit 1; }
    fresh
    timed r_curl bash -c "curl -sS --fail -H 'Authorization: Bearer $token' $url/v1/clusters/bench/backups/latest/archive | tar -x -C $work/r"
done
rss_all=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)

printf '\n%-44s %9s %9s %9s\n' "database $((db_bytes >> 20)) MiB" seconds "MiB/s" "vs pipe"
row() { printf '%-44s %9.2f %9s %8.2fx\n' "$1" "$2" "$(mibs "$2")" "$(python3 -c "print($3 / $2)")"; }
row "backup: pg_basebackup > /dev/null" "${best[floor]}" "${best[pipe]}"
row "backup: pg_basebackup | zstd -3 > file" "${best[pipe]}" "${best[pipe]}"
row "backup: walgate-client backup-push" "${best[client]}" "${best[pipe]}"
row "backup: pg_basebackup | curl -T -" "${best[curl]}" "${best[pipe]}"
row "restore: zstd -d | tar -x" "${best[r_pipe]}" "${best[r_pipe]}"
row "restore: walgate-client backup-fetch" "${best[r_client]}" "${best[r_pipe]}"
row "restore: curl | tar -x" "${best[r_curl]}" "${best[r_pipe]}"
echo "gateway peak RSS: $((rss_backup / 1024)) MiB after the backups, $((rss_all / 1024)) MiB after the restores"
