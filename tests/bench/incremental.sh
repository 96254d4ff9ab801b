#!/usr/bin/env bash
# Benchmark: incremental backups (PostgreSQL 17 and later) of a pgbench database through a
# local gateway, in one run:
#   backup:  walgate-client backup-push (full), then after updating 5% of pgbench_accounts,
#            walgate-client backup-push --incremental: time and stored size of each
#   restore: walgate-client restore of the incremental (both links downloaded at once,
#            then pg_combinebackup)  vs  walgate-client backup-fetch of the full alone
# and the ratios against their targets.
#
#   tests/bench/incremental.sh [PGBENCH_SCALE=70]   (scale 70 is about 1 GiB; ROUNDS=3 restores,
#   best taken; PG_BIN defaults to PostgreSQL 18's, else 17's, from tests/emulators/install)
set -euo pipefail
scale=${1:-70}
emulators=/var/cache/walgate-ci/emulators/postgresql
if [[ -z ${PG_BIN:-} ]]; then
    # The emulators' installer may still be unpacking PostgreSQL: wait up to 20 minutes.
    for _ in $(seq 120); do
        [[ -x $emulators/18/bin/postgres ]] && break
        echo "waiting for $emulators/18/bin/postgres..." >&2
        sleep 10
    done
    PG_BIN=$emulators/18/bin
    [[ -x $PG_BIN/postgres ]] || PG_BIN=$emulators/17/bin
fi
export PG_BIN
[[ -x $PG_BIN/pg_combinebackup ]] || { echo "$PG_BIN has no pg_combinebackup: incremental backups need PostgreSQL 17 or later" >&2; exit 1; }
source "$(dirname "$0")/lib.sh"

# The gateway first: the cluster archives into it, since a restore plan needs the WAL.
start_gateway
export WALGATE_URL=$url WALGATE_CLUSTER=bench WALGATE_TOKEN_FILE=$work/token

echo "making a pgbench database at scale $scale with $("$pg_bin/postgres" --version)..." >&2
start_pg "fsync = off
max_wal_size = '4GB'
wal_level = replica
summarize_wal = on
archive_mode = on
archive_command = '$client_bin --url $url --cluster bench --token-file $work/token wal-push %p'"
pgbench -i -s "$scale" -q
psql -c CHECKPOINT
db_bytes=$(psql -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
echo "database: $((db_bytes >> 20)) MiB" >&2

# archived: switch to a new segment and wait until the archiver has pushed every one, so
# that archiving neither runs during a timed backup nor leaves the restore plan a gap.
archived() {
    psql -c 'SELECT pg_switch_wal()' >/dev/null
    local waited=0
    while compgen -G "$work/pg/pg_wal/archive_status/*.ready" >/dev/null; do
        ((waited++ < 1200)) || { echo "archiving is stuck:" >&2; tail "$work/pg.log" >&2; exit 1; }
        sleep 0.5
    done
}
archived

# field FILE KEY: a field of the backup's JSON.
field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
push=("$client_bin" backup-push --json --pg-basebackup "$pg_bin/pg_basebackup")
conn=(-- -h 127.0.0.1 -p "$port" -U postgres)

echo "full backup" >&2
timed full bash -c "${push[*]@Q} ${conn[*]@Q} > $work/full.json"
full_id=$(field "$work/full.json" id)

# About 5% of the rows, in 5% of the blocks: a contiguous range of aid. (`aid % 20 = 0`
# would touch every block of the table, and a block-level incremental would be a full.)
where=${UPDATE_WHERE:-"aid <= $((scale * 100000 / 20))"}
echo "updating pgbench_accounts where $where" >&2
psql -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE $where"
psql -c CHECKPOINT
archived

echo "incremental backup" >&2
timed incr bash -c "${push[*]@Q} --incremental ${conn[*]@Q} > $work/incr.json"
incr_id=$(field "$work/incr.json" id)
kind=$(field "$work/incr.json" kind)
parent=$(field "$work/incr.json" parent)
[[ $kind == incremental && $parent == "$full_id" ]] || {
    echo "backup $incr_id is $kind on $parent, not incremental on $full_id" >&2
    exit 1
}
archived

# Each restore starts from a missing directory, which the client makes (as postgres, who
# runs pg_combinebackup), with dirty pages of the last one written.
rounds=${ROUNDS:-3}
fresh() {
    as_pg "$pg_bin/pg_ctl" -D "$work/r" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work/r" "$work/r.chain"
    sync
}
trap 'fresh; cleanup' EXIT
fetch_wal="$client_bin --url $url --cluster bench --token-file $work/token wal-fetch %f %p"
# recover: start PostgreSQL on the restored directory (the client's recovery settings, or
# else the full backup's own) and wait until it has replayed the archive to its end and
# promoted: the time to a usable server.
recover() {
    if [[ ! -f $work/r/recovery.signal ]]; then
        printf "restore_command = '%s'\nrecovery_target_timeline = 'latest'\narchive_mode = off\n" \
            "$fetch_wal" >>"$work/r/postgresql.auto.conf"
        touch "$work/r/recovery.signal"
    fi
    rport=$(free_port)
    printf "port = %s\nunix_socket_directories = '%s'\n" "$rport" "$work" >>"$work/r/postgresql.auto.conf"
    chown -R --reference="$work" "$work/r"
    as_pg "$pg_bin/pg_ctl" -D "$work/r" -l "$work/r.log" -w -t 600 start >/dev/null
    until [[ $("$pg_bin/psql" -h 127.0.0.1 -p "$rport" -U postgres -XAtc 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]; do
        sleep 0.05
    done
}
restored() {
    [[ -f $work/r/PG_VERSION && -f $work/r/global/pg_control ]] || { echo "no data directory was restored" >&2; exit 1; }
}
for round in $(seq "$rounds"); do
    echo "restore round $round of $rounds" >&2
    fresh
    s=$(date +%s.%N)
    timed r_full as_pg "$client_bin" backup-fetch "$work/r" "$full_id"
    restored
    recover
    keep_best e2e_full "$(since "$s")"
    fresh
    s=$(date +%s.%N)
    timed r_chain as_pg "$client_bin" restore --pgdata "$work/r" --drill \
        --pg-combinebackup "$pg_bin/pg_combinebackup" 2>"$work/restore.log"
    restored
    grep -q "combining 2 backups" "$work/restore.log" || { cat "$work/restore.log" >&2; exit 1; }
    # The combined directory is what the chain's manifest says, but for the recovery
    # settings (checked outside the time counted).
    v=$(date +%s.%N)
    as_pg "$pg_bin/pg_verifybackup" -q -n -i recovery.signal -i postgresql.auto.conf "$work/r"
    verified=$(since "$v")
    recover
    keep_best e2e_chain "$(python3 -c "print($(since "$s") - $verified)")"
    sum="SELECT sum(abalance) FROM pgbench_accounts"
    [[ $(psql -c "$sum") == $("$pg_bin/psql" -h 127.0.0.1 -p "$rport" -U postgres -XAtc "$sum") ]] ||
        { echo "the restored chain's data differs from the source's" >&2; exit 1; }
    fresh
done

mib() { python3 -c "print('%.1f MiB' % ($1 / 1048576))"; }
full_stored=$(field "$work/full.json" stored_size)
incr_stored=$(field "$work/incr.json" stored_size)
printf '\n%-48s %16s\n' "database (pgbench scale $scale)" "$(mib "$db_bytes")"
printf '%-48s %14.2f s\n' "full backup: time" "${best[full]}"
printf '%-48s %16s\n' "full backup: size / stored" "$(mib "$(field "$work/full.json" size)") / $(mib "$full_stored")"
printf '%-48s %14.2f s\n' "incremental backup: time" "${best[incr]}"
printf '%-48s %16s\n' "incremental backup: size / stored" "$(mib "$(field "$work/incr.json" size)") / $(mib "$incr_stored")"
printf '%-48s %14.2f s\n' "restore: backup-fetch of the full (best of $rounds)" "${best[r_full]}"
printf '%-48s %14.2f s\n' "restore: full + incremental (best of $rounds)" "${best[r_chain]}"
printf '%-48s %14.2f s\n' "to a recovered server: from the full" "${best[e2e_full]}"
printf '%-48s %14.2f s\n' "to a recovered server: from the chain" "${best[e2e_chain]}"
printf '\n%-48s %9s %9s\n' ratio value target
# ratio NAME A B TARGET: A / B against an upper bound.
ratio() {
    python3 -c "r = $2 / $3; print('%-48s %9.3f %9s  %s' % ('$1', r, '<= $4', 'ok' if r <= $4 else 'MISSED'))"
}
ratio "incremental stored / full stored" "$incr_stored" "$full_stored" 0.15
ratio "incremental time / full time" "${best[incr]}" "${best[full]}" 0.4
ratio "restore full+incremental / full alone" "${best[r_chain]}" "${best[r_full]}" 1.5
ratio "to a server: chain / full and its WAL" "${best[e2e_chain]}" "${best[e2e_full]}" 1.5
