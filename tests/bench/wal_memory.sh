#!/usr/bin/env bash
# Benchmark: the gateway's memory when a fleet pushes WAL at once (as after a gateway
# outage, when every host's archiver retries together), with WALGATE_WAL_MEMORY at its
# default and, as the baseline in the same run, so large it never binds.
#
# UPLOADS hosts (one cluster each) send one incompressible 16 MiB segment each, all at
# once with curl: raw (the gateway compresses) and zstd (as walgate-client sends). For
# each, the gateway's peak RSS (VmHWM), the wall time of the whole burst, its RSS after a
# minute idle, and how many seconds it took to fall under 100 MiB.
#
#   tests/bench/wal_memory.sh [UPLOADS=64]
set -euo pipefail
uploads=${1:-64}
source "$(dirname "$0")/lib.sh"

echo "making $uploads incompressible segments..." >&2
mkdir "$work/segs"
python3 - "$work/segs" "$uploads" <<'EOF'
import os, struct, sys
out, n = sys.argv[1], int(sys.argv[2])
seg = 16 << 20
for segno in range(1, n + 1):
    # A PostgreSQL 15 long page header (magic, long-header flag, timeline 1, address,
    # system identifier, segment and block size), then random bytes.
    header = struct.pack("<HHIQIxxxxQII", 0xD110, 0x0006, 1, segno * seg, 0,
                         7_300_000_000_000_000_001, seg, 8192)
    with open(os.path.join(out, "%08X%08X%08X" % (1, 0, segno)), "wb") as f:
        f.write(header + os.urandom(seg - len(header)))
EOF
mapfile -t names < <(ls "$work/segs")
for n in "${names[@]}"; do zstd -q -1 "$work/segs/$n" -o "$work/segs/$n.zst"; done

# burst BUDGET ENCODING: a fresh gateway with that WAL memory; every host pushes at once.
# Prints the peak RSS in MiB and the burst's seconds.
burst() {
    rm -rf "$work/gw"
    WALGATE_WAL_MEMORY=$1 start_gateway
    local pids=() i=0 s e rss
    s=$(date +%s.%N)
    for n in "${names[@]}"; do
        i=$((i + 1))
        if [[ $2 == zstd ]]; then
            curl -sS --fail -o /dev/null -H @"$work/auth-header" -H 'Content-Encoding: zstd' \
                -T "$work/segs/$n.zst" "$url/v1/clusters/host$i/wal/$n" &
        else
            curl -sS --fail -o /dev/null -H @"$work/auth-header" \
                -T "$work/segs/$n" "$url/v1/clusters/host$i/wal/$n" &
        fi
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || { echo "an upload failed" >&2; exit 1; }; done
    e=$(date +%s.%N)
    rss=$(awk '/VmHWM/ {print $2}' "/proc/$gw_pid/status")
    # Then idle: the RSS each second for a minute, and the first second it is under 100 MiB.
    local now under=never
    for second in $(seq 60); do
        sleep 1
        now=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
        if [[ $under == never ]] && ((now < 100 << 10)); then under=$second; fi
    done
    kill "$gw_pid"
    wait "$gw_pid" 2>/dev/null || true
    echo "$((rss / 1024)) $(python3 -c "print(round($e - $s, 2))") $((now / 1024)) $under"
}

printf '%s uploads of an incompressible 16 MiB segment at once, one cluster each\n' "$uploads"
printf '%-34s %14s %10s %10s %14s %10s\n' "" "peak RSS MiB" "seconds" "seg/s" "RSS 60 s after" "< 100 MiB"
for encoding in raw zstd; do
    read -r rss_base t_base idle_base under_base < <(burst 64GiB "$encoding")
    read -r rss t idle under < <(burst 512MiB "$encoding")
    row() {
        printf '%-34s %14s %10s %10.1f %14s %10s\n' "$1" "$2" "$3" "$(python3 -c "print($uploads / $3)")" "$4" "$([[ $5 == never ]] && echo never || echo "$5 s")"
    }
    row "$encoding, WALGATE_WAL_MEMORY=64GiB" "$rss_base" "$t_base" "$idle_base" "$under_base"
    row "$encoding, default (512MiB)" "$rss" "$t" "$idle" "$under"
    printf '%-34s %13.2fx %13.2fx\n' "  default / 64GiB" \
        "$(python3 -c "print($rss / $rss_base)")" "$(python3 -c "print($t / $t_base)")"
done
