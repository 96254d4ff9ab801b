#!/usr/bin/env bash
# Benchmark: a restore drill against the same work done by hand, on a pgbench database
# archived through a local gateway, in one run:
#   drill:  walgate-client drill-runner --once, after asking for a drill: claim, restore,
#           recovery to the end of the archive, the check, stop, clean-up
#   manual: walgate-client restore --drill, then pg_ctl start and waiting until recovery
#           has ended, a catalog query, stop, clean-up: what an operator's script does;
#           and the same with fsync = off, as the drill's server runs
# and the ratio against its target; also the runner's own peak RSS (VmHWM, read from
# /proc while it runs) and the largest process in its tree (GNU time).
#
#   tests/bench/drill.sh [PGBENCH_SCALE=70]   (scale 70 is about 1 GiB; ROUNDS=3 of each,
#   best taken; LOAD_SECONDS=30 of pgbench after the backup make the WAL to replay;
#   PG_BIN picks the PostgreSQL, by default the newest in /usr/lib/postgresql)
set -euo pipefail
scale=${1:-70}
source "$(dirname "$0")/lib.sh"
major=$("$pg_bin/postgres" --version | sed -E 's/.* ([0-9]+)[.].*/\1/')

start_gateway
export WALGATE_URL=$url WALGATE_CLUSTER=bench WALGATE_TOKEN_FILE=$work/token
"$target/release/walgate" token issue --data-dir "$work/gw" --cluster '*' --role driller \
    2>/dev/null >"$work/driller-token"

echo "making a pgbench database at scale $scale with $("$pg_bin/postgres" --version)..." >&2
# The load's own settings stay off the backup: both restores recover with the defaults.
start_pg "archive_mode = on
archive_command = '$client_bin wal-push %p'" "-c fsync=off -c max_wal_size=4GB"
pgbench -i -s "$scale" -q
db_bytes=$(psql -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
echo "database: $((db_bytes >> 20)) MiB" >&2
"$client_bin" backup-push --pg-basebackup "$pg_bin/pg_basebackup" -- -h 127.0.0.1 -p "$port" -U postgres >/dev/null
echo "pgbench for ${LOAD_SECONDS:-30} s after the backup: the WAL both restores replay" >&2
pgbench -n -c 4 -j 2 -T "${LOAD_SECONDS:-30}"
psql -c 'SELECT pg_switch_wal()' >/dev/null
waited=0
while compgen -G "$work/pg/pg_wal/archive_status/*.ready" >/dev/null; do
    ((waited++ < 1200)) || { echo "archiving is stuck:" >&2; tail "$work/pg.log" >&2; exit 1; }
    sleep 0.5
done
wal_segments=$(curl -sS --fail -H @"$work/auth-header" "$url/v1/clusters/bench" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["wal_files"])')
sum="SELECT sum(abalance) FROM pgbench_accounts"
expected=$(psql -c "$sum")
# The source stops: both restores have the machine to themselves.
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null

rounds=${ROUNDS:-3}
as_pg mkdir "$work/scratch"
fresh() {
    as_pg "$pg_bin/pg_ctl" -D "$work/r" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work/r"
    sync
}
trap 'fresh; cleanup' EXIT

# manual [SETTINGS]: the pipeline an operator scripts, timed as a whole.
manual() {
    as_pg "$client_bin" restore --pgdata "$work/r" --drill 2>/dev/null
    rport=$(free_port)
    printf "port = %s\nunix_socket_directories = '%s'\nhot_standby = off\n%s\n" "$rport" "$work" "${1:-}" \
        >>"$work/r/postgresql.auto.conf"
    as_pg "$pg_bin/pg_ctl" -D "$work/r" -l "$work/r.log" -w -t 3600 start >/dev/null
    until [[ $("$pg_bin/psql" -h 127.0.0.1 -p "$rport" -U postgres -XAtc 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; do
        sleep 0.05
    done
    got=$("$pg_bin/psql" -h 127.0.0.1 -p "$rport" -U postgres -XAtc "$sum")
    [[ $got == "$expected" ]] || { echo "the manual restore has $got, the source $expected" >&2; exit 1; }
    "$pg_bin/psql" -h 127.0.0.1 -p "$rport" -U postgres -XAtc 'SELECT count(*) FROM pg_class' >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$work/r" -m fast stop >/dev/null
    rm -rf "$work/r"
}

# drill: the runner until no drill is due, with its peak RSS polled from /proc.
drill() {
    curl -sS --fail -X POST -H @"$work/auth-header" "$url/v1/clusters/bench/drills" >/dev/null
    /usr/bin/time -f '%M' -o "$work/tree-rss" runuser -u postgres -- env \
        WALGATE_URL="$url" WALGATE_TOKEN_FILE="$work/driller-token" \
        "$client_bin" drill-runner --once --json --scratch "$work/scratch" \
        --pg-bin "$major=$pg_bin" --name bench >"$work/report.json" &
    local pid=$! runner="" hwm=0 kib
    while kill -0 "$pid" 2>/dev/null; do
        [[ -n $runner ]] || runner=$(pgrep -f -n "drill-runner --once" -u postgres || true)
        if [[ -n $runner ]] && kib=$(awk '/^VmHWM/ {print $2}' "/proc/$runner/status" 2>/dev/null) && [[ -n $kib ]]; then
            ((kib > hwm)) && hwm=$kib
        fi
        sleep 0.02
    done
    wait "$pid"
    python3 - "$work/report.json" <<'EOF'
import json, sys
reports = [json.loads(l) for l in open(sys.argv[1])]
assert len(reports) == 1 and reports[0]["status"] == "ok", reports
EOF
    ((hwm > ${best[rss]:-0})) && best[rss]=$hwm
    tree=$(cat "$work/tree-rss")
    ((tree > ${best[tree]:-0})) && best[tree]=$tree
    read -r restore replay < <(python3 -c '
import json, sys
o = json.loads(open(sys.argv[1]).readline())["outcome"]
print(o["restore_seconds"], o["replay_seconds"])' "$work/report.json")
    keep_best d_restore "$restore"
    keep_best d_replay "$replay"
}

# Alternating, so that neither gets the machine's quieter moments.
for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    fresh
    timed manual manual
    fresh
    timed manual_nofsync manual "fsync = off"
    fresh
    timed drill drill
done

printf '\n%-52s %16s\n' "database (pgbench scale $scale, PostgreSQL $major)" "$((db_bytes >> 20)) MiB"
printf '%-52s %16s\n' "WAL segments archived" "$wal_segments"
printf '%-52s %14.2f s\n' "manual: restore --drill, start, recover, check" "${best[manual]}"
printf '%-52s %14.2f s\n' "manual, with fsync = off as the drill runs" "${best[manual_nofsync]}"
printf '%-52s %14.2f s\n' "drill: claim to report, clean-up included" "${best[drill]}"
printf '%-52s %14.2f s\n' "  of which restore (the drill's own figure)" "${best[d_restore]}"
printf '%-52s %14.2f s\n' "  of which recovery (the drill's own figure)" "${best[d_replay]}"
printf '%-52s %13.1f MiB\n' "drill runner peak RSS (its own VmHWM)" "$(python3 -c "print(${best[rss]:-0} / 1024)")"
printf '%-52s %13.1f MiB\n' "largest process in its tree (PostgreSQL's)" "$(python3 -c "print(${best[tree]} / 1024)")"
printf '\n%-52s %9s %9s\n' ratio value target
python3 -c "r = ${best[drill]} / ${best[manual]}; print('%-52s %9.3f %9s  %s' % ('drill / manual (best of $rounds each)', r, '<= 1.1', 'ok' if r <= 1.1 else 'MISSED'))"
python3 -c "print('%-52s %9.3f' % ('drill / manual with fsync = off', ${best[drill]} / ${best[manual_nofsync]}))"
