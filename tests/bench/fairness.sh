#!/usr/bin/env bash
# Benchmark: WAL push latency while a base backup saturates the gateway.
#
# Four clusters archive the same real segments with the README's curl recipe, one push
# at a time each (as PostgreSQL's archiver does), first alone and then while base
# backups of a pgbench database stream in without pause under --backup-rate-limit.
# Prints WAL push latency (p50, p99) in both phases and their ratio (target: p99 with a
# backup within 2x of without), and the backup's rate against its configured limit.
#
#   tests/bench/fairness.sh [SEGMENTS=24] [LIMIT=100MiB]
set -euo pipefail
segments=${1:-24}
limit=${2:-100MiB}
source "$(dirname "$0")/lib.sh"

make_segments "$segments"
echo "segments: ${#names[@]} ($((bytes >> 20)) MiB)" >&2
# The same database serves the backups.
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null

"$target/release/walgate" serve --data-dir "$work/gw" --listen 127.0.0.1:0 \
    --backup-rate-limit "$limit" >"$work/gw.addr" 2>"$work/gw.log" &
gw_pid=$!
until grep -q listening "$work/gw.addr" 2>/dev/null; do sleep 0.05; done
url=$(sed 's/.*listening on //' "$work/gw.addr")
token=$("$target/release/walgate" token issue --data-dir "$work/gw" --cluster '*' --role admin 2>/dev/null)
printf 'Authorization: Bearer %s\n' "$token" >"$work/auth-header"

# archive PHASE: four clusters push every segment, one at a time each; latencies in
# $work/lat.PHASE (seconds, one per push).
archive() {
    local phase=$1 i pushers=()
    for i in 1 2 3 4; do
        (
            for n in "${names[@]}"; do
                curl -sS --fail -o /dev/null -w '%{time_total}\n' -H @"$work/auth-header" \
                    -T "$work/segments/$n" "$url/v1/clusters/$phase$i/wal/$n"
            done >"$work/lat.$phase.$i"
        ) &
        pushers+=($!)
    done
    wait "${pushers[@]}"
    cat "$work"/lat."$phase".* >"$work/lat.$phase"
}

percentiles() {
    python3 - "$1" <<'EOF'
import sys
v = sorted(float(l) for l in open(sys.argv[1]) if l.strip())
p = lambda q: v[min(len(v) - 1, int(q * len(v)))]
print(f"{p(0.5) * 1000:.1f} {p(0.99) * 1000:.1f} {len(v)}")
EOF
}

echo "phase 1: WAL alone" >&2
archive alone
read -r p50_alone p99_alone n_alone < <(percentiles "$work/lat.alone")

echo "phase 2: WAL while backups stream in" >&2
: >"$work/backups"
(
    while true; do
        start=$(date +%s.%N)
        size=$("$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D - -Ft -X none \
            --checkpoint=fast 2>/dev/null |
            curl -sS --fail -o /dev/null -w '%{size_upload}' -H @"$work/auth-header" -T - \
                "$url/v1/clusters/big/backups") || break
        echo "$size $start $(date +%s.%N)" >>"$work/backups"
    done
) &
backup_pid=$!
sleep 2 # the first backup is streaming
archive busy
# The backup's rate needs one whole backup: let the first one finish.
until [[ -s $work/backups ]]; do sleep 0.2; done
kill "$backup_pid" 2>/dev/null || true
pkill -P "$backup_pid" 2>/dev/null || true
read -r p50_busy p99_busy n_busy < <(percentiles "$work/lat.busy")

rate=$(python3 - "$work/backups" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
sent = sum(float(r[0]) for r in rows)
took = sum(float(r[2]) - float(r[1]) for r in rows)
print(f"{sent / took / 2**20:.0f}" if took else "0")
EOF
)
limit_mib=$(python3 -c "
import re
m = re.fullmatch(r'([0-9.]+)\s*(MiB|M|GiB|G)?', '$limit')
n, u = float(m[1]), m[2] or ''
print(round(n * {'MiB': 1, 'M': 1e6 / 2**20, 'GiB': 1024, 'G': 1e9 / 2**20, '': 1 / 2**20}[u]))")

echo
printf '%-26s %9s %9s %7s\n' "WAL push latency (ms)" p50 p99 pushes
printf '%-26s %9s %9s %7s\n' "alone" "$p50_alone" "$p99_alone" "$n_alone"
printf '%-26s %9s %9s %7s\n' "with backups streaming" "$p50_busy" "$p99_busy" "$n_busy"
python3 -c "print(f'p99 with / without: {$p99_busy / $p99_alone:.2f}x (target: 2x or less)')"
echo "backups: $(wc -l <"$work/backups") completed at ${rate} MiB/s against a limit of ${limit_mib} MiB/s"
