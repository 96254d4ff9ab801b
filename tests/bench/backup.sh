#!/usr/bin/env bash
# Benchmark: base backup and restore of a pgbench database through the gateway, next to
# the local pipes that do the same work, in one run:
#   backup:  walgate-client backup-push, and pg_basebackup | curl -T -  (into a local gateway)
#            vs  pg_basebackup -D - -Ft | zstd -3 > file
#   restore: walgate-client backup-fetch, and curl | tar -x
#            vs  zstd -d -c file | tar -x
# and the gateway's peak RSS (VmHWM) over both.
#
#   tests/bench/backup.sh [PGBENCH_SCALE=70]   (scale 70 is about 1 GiB; ROUNDS=3, best taken)
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

# The best of $rounds runs of a command, in seconds; `prepare` runs before each.
rounds=${ROUNDS:-3}
prepare=true
seconds() {
    local best=1e9 s
    for _ in $(seq "$rounds"); do
        $prepare
        s=$(date +%s.%N)
        "$@"
        best=$(python3 -c "import time; print(min($best, time.time() - $s))")
    done
    echo "$best"
}
mibs() { python3 -c "print('%.0f' % ($db_bytes / 1048576 / $1))"; }


echo "backup: pg_basebackup > /dev/null (the floor)" >&2
t_floor=$(seconds bash -c "${basebackup[*]@Q} > /dev/null")
echo "backup: pg_basebackup | zstd -3 > file" >&2
t_pipe=$(seconds bash -c "${basebackup[*]@Q} | zstd -3 -q > $work/pipe.tar.zst")
echo "backup: walgate-client backup-push" >&2
t_client=$(seconds bash -c "$target/release/walgate-client backup-push --pg-basebackup $pg_bin/pg_basebackup -- -h 127.0.0.1 -p $port -U postgres >/dev/null")
echo "backup: pg_basebackup | curl -T -" >&2
t_curl=$(seconds bash -c "${basebackup[*]@Q} | curl -sS --fail -o /dev/null -H 'Authorization: Bearer $token' -T - $url/v1/clusters/bench/backups")
rss_backup=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)

# Each restore starts from an empty directory.
fresh() { rm -rf "$work/r1" "$work/r2" "$work/r3"; mkdir "$work/r1" "$work/r3"; sync; }
prepare=fresh
echo "restore: zstd -d | tar -x" >&2
r_pipe=$(seconds bash -c "zstd -d -q -c $work/pipe.tar.zst | tar -x -C $work/r1")
echo "restore: walgate-client backup-fetch" >&2
r_client=$(seconds "$target/release/walgate-client" backup-fetch "$work/r2" latest)
[[ -f $work/r2/PG_VERSION && -f $work/r2/global/pg_control ]] || { echo "the client restored no data directory" >&2; exit 1; }
echo "restore: curl | tar -x" >&2
r_curl=$(seconds bash -c "curl -sS --fail -H 'Authorization: Bearer $token' $url/v1/clusters/bench/backups/latest/archive | tar -x -C $work/r3")
rss_all=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)

printf '\n%-44s %9s %9s %9s\n' "database $((db_bytes >> 20)) MiB" seconds "MiB/s" "vs pipe"
row() { printf '%-44s %9.2f %9s %8.2fx\n' "$1" "$2" "$(mibs "$2")" "$(python3 -c "print($3 / $2)")"; }
row "backup: pg_basebackup > /dev/null" "$t_floor" "$t_pipe"
row "backup: pg_basebackup | zstd -3 > file" "$t_pipe" "$t_pipe"
row "backup: walgate-client backup-push" "$t_client" "$t_pipe"
row "backup: pg_basebackup | curl -T -" "$t_curl" "$t_pipe"
row "restore: zstd -d | tar -x" "$r_pipe" "$r_pipe"
row "restore: walgate-client backup-fetch" "$r_client" "$r_pipe"
row "restore: curl | tar -x" "$r_curl" "$r_pipe"
echo "gateway peak RSS: $((rss_backup / 1024)) MiB after the backups, $((rss_all / 1024)) MiB after the restores"
