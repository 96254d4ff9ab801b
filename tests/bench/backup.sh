#!/usr/bin/env bash
# Benchmark: base backup and restore of a pgbench database through the gateway, next to
# the local pipes that do the same work, in one run:
#   backup:  walgate-client backup-push, and pg_basebackup | curl -T -  (into a local gateway)
#            vs  pg_basebackup -D - -Ft | zstd -3 > file
#   restore: walgate-client backup-fetch, and curl | tar -x
#            vs  zstd -d -c file | tar -x
# and the gateway's peak RSS (VmHWM) over both.
#
#   tests/bench/backup.sh [PGBENCH_SCALE=70]   (scale 70 is about 1 GiB)
set -euo pipefail
scale=${1:-70}
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

echo "making a pgbench database at scale $scale..." >&2
as_pg "$pg_bin/initdb" -U postgres -A trust -D "$work/pg" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >>"$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
fsync = off
max_wal_size = '4GB'
CONF
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
"$pg_bin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
"$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -c CHECKPOINT
db_bytes=$("$pg_bin/psql" -h 127.0.0.1 -p "$port" -U postgres -X -At -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
echo "database: $((db_bytes >> 20)) MiB" >&2

"$target/release/walgate" serve --data-dir "$work/gw" --listen 127.0.0.1:0 >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
until grep -q listening "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
url=$(sed 's/.*listening on //' "$work/gw.addr")
token=$("$target/release/walgate" token issue --data-dir "$work/gw" --cluster '*' --role admin 2>/dev/null)
printf '%s' "$token" >"$work/token"
export WALGATE_URL=$url WALGATE_CLUSTER=bench WALGATE_TOKEN_FILE=$work/token
basebackup=("$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D - -Ft -X fetch --checkpoint=fast)

seconds() { local s; s=$(date +%s.%N); "$@"; python3 -c "import time; print(time.time() - $s)"; }
mibs() { python3 -c "print('%.0f' % ($db_bytes / 1048576 / $1))"; }

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }

echo "backup: pg_basebackup | zstd -3 > file" >&2
t_pipe=$(seconds bash -c "${basebackup[*]@Q} | zstd -3 -q > $work/pipe.tar.zst")
echo "backup: walgate-client backup-push" >&2
t_client=$(seconds bash -c "$target/release/walgate-client backup-push --pg-basebackup $pg_bin/pg_basebackup -- -h 127.0.0.1 -p $port -U postgres >/dev/null")
echo "backup: pg_basebackup | curl -T -" >&2
t_curl=$(seconds bash -c "${basebackup[*]@Q} | curl -sS --fail -o /dev/null -H 'Authorization: Bearer $token' -T - $url/v1/clusters/bench/backups")
rss_backup=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)

mkdir "$work/r1" "$work/r3"
drop_caches
echo "restore: zstd -d | tar -x" >&2
r_pipe=$(seconds bash -c "zstd -d -q -c $work/pipe.tar.zst | tar -x -C $work/r1")
drop_caches
echo "restore: walgate-client backup-fetch" >&2
r_client=$(seconds "$target/release/walgate-client" backup-fetch "$work/r2" latest)
drop_caches
echo "restore: curl | tar -x" >&2
r_curl=$(seconds bash -c "curl -sS --fail -H 'Authorization: Bearer $token' $url/v1/clusters/bench/backups/latest/archive | tar -x -C $work/r3")
rss_all=$(awk '/VmHWM/ {print $2}' /proc/$gw_pid/status)
cmp <(cd "$work/r1" && find . -type f -name 'PG_VERSION' | sort) <(cd "$work/r2" && find . -type f -name 'PG_VERSION' | sort)

printf '\n%-44s %9s %9s %9s\n' "database $((db_bytes >> 20)) MiB" seconds "MiB/s" "vs pipe"
row() { printf '%-44s %9.2f %9s %8.2fx\n' "$1" "$2" "$(mibs "$2")" "$(python3 -c "print($3 / $2)")"; }
row "backup: pg_basebackup | zstd -3 > file" "$t_pipe" "$t_pipe"
row "backup: walgate-client backup-push" "$t_client" "$t_pipe"
row "backup: pg_basebackup | curl -T -" "$t_curl" "$t_pipe"
row "restore: zstd -d | tar -x" "$r_pipe" "$r_pipe"
row "restore: walgate-client backup-fetch" "$r_client" "$r_pipe"
row "restore: curl | tar -x" "$r_curl" "$r_pipe"
echo "gateway peak RSS: $((rss_backup / 1024)) MiB after the backups, $((rss_all / 1024)) MiB after the restores"
