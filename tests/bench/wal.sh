#!/usr/bin/env bash
# Benchmark: WAL archiving and fetching through a local gateway, one process per segment
# run through /bin/sh in a data directory as PostgreSQL's archiver and startup process
# call them, on the same real segments, in one run:
#
#   archive (all segments .ready, as after an outage or under a write burst):
#     walgate-client wal-push (push-ahead) vs the README's curl archive_command,
#     on loopback and through a proxy adding 5 ms each way (10 ms RTT);
#     and the backlog drain on loopback vs serial `zstd -1` + fsync of the same files, also
#     with the gateway pinned to one core and the archiver and client to the other
#     (taskset), as when the gateway has a machine of its own.
#   fetch (restore_command for each segment in order):
#     walgate-client wal-fetch (prefetch) vs the README's curl restore_command (and, on
#     loopback, the same with --compressed: zstd on the wire, decoded by curl), on
#     loopback and through the proxy; and on loopback vs serial `zstd -d` of the files,
#     without and with an fsync of each (the fetch loop keeps each file under its own
#     name with a durable rename, tests/src/bin/durable-rename.rs, as PostgreSQL does
#     with a restored segment).
#
# Then one GET (raw, and with --compressed) and one HEAD of each archived segment, a curl
# each, their medians. CPU per segment comes from /proc: the gateway's own, and the rest
# of the machine's (the contender, its background helpers, the kernel's work for them;
# run it on an otherwise idle machine).
#
# The proxy (tests/src/bin/delay-proxy.rs) is checked first: the round trip it adds, and
# its bandwidth next to a direct connection.
#
#   tests/bench/wal.sh [SEGMENTS=100] [ROUNDS=2]    (rounds interleave; the best counts)
set -euo pipefail
segments=${1:-100}
rounds=${2:-2}
delay_ms=5
source "$(dirname "$0")/lib.sh"
(cd "$root" && cargo build --release --quiet -p walgate-tests --bin delay-proxy --bin durable-rename)

make_segments "$segments"
mkdir "$work/zst"
for n in "${names[@]}"; do zstd -q -1 "$work/segments/$n" -o "$work/zst/$n.zst"; done
zbytes=$(cat "$work/zst"/*.zst | wc -c)
echo "segments: ${#names[@]} ($((bytes >> 20)) MiB, zstd -1 ratio $(python3 -c "print(round($bytes/$zbytes,2))"))" >&2

start_gateway
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; cleanup' EXIT
# start_proxy UPSTREAM NAME VAR: a delay proxy in front of UPSTREAM (host:port); sets VAR
# to its URL. (Not run in $(...): the proxy's pid must reach the exit trap.)
start_proxy() {
    "$target/release/delay-proxy" 127.0.0.1:0 "$1" "$delay_ms" >"$work/proxy.$2" &
    pids+=($!)
    until grep -q listening "$work/proxy.$2" 2>/dev/null; do sleep 0.05; done
    printf -v "$3" 'http://%s' "$(sed 's/listening on //' "$work/proxy.$2")"
}
start_proxy "${url#http://}" gateway wan_url

# --- the proxy's own check ---
best_of() { # best_of N COMMAND...: the smallest number COMMAND prints in N runs
    local best=1e9 v
    for _ in $(seq "$1"); do v=$("${@:2}"); best=$(python3 -c "print(min($best, $v))"); done
    echo "$best"
}
fresh_get() { curl -sS -o /dev/null -w '%{time_total}' "$1/healthz"; }
rtt_direct=$(best_of 10 fresh_get "$url")
rtt_proxy=$(best_of 10 fresh_get "$wan_url")
mkdir "$work/www"
head -c $((512 << 20)) /dev/urandom >"$work/www/blob"
www_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work/www" && exec python3 -m http.server --bind 127.0.0.1 "$www_port" >/dev/null 2>&1) &
pids+=($!)
until curl -s -o /dev/null "http://127.0.0.1:$www_port/"; do sleep 0.1; done
start_proxy "127.0.0.1:$www_port" www www_proxy
download() { curl -sS -o /dev/null -w '%{time_total}' "$1/blob"; }
bw_direct=$(best_of 3 download "http://127.0.0.1:$www_port")
bw_proxy=$(best_of 3 download "$www_proxy")

# --- the contenders ---
auth=$work/auth-header
archive_recipe() { echo "curl -sS --fail --retry 3 -H @$auth -T %p $1/v1/clusters/$2/wal/%f"; }
# restore_recipe URL CLUSTER [CURL FLAGS]: the README's, with FLAGS added.
restore_recipe() {
    echo "c=\$(curl ${3:-}-sS --retry 5 --retry-connrefused --retry-max-time 60 -H @$auth -o \"%p.part\" -w \"%{http_code}\" $1/v1/clusters/$2/wal/%f); case \$c in 200) mv \"%p.part\" \"%p\";; 404) rm -f \"%p.part\"; exit 1;; *) rm -f \"%p.part\"; exit 200;; esac"
}
client() { echo "WALGATE_URL=$1 WALGATE_CLUSTER=$2 WALGATE_TOKEN_FILE=$work/token $client_bin $3"; }

# archive COMMAND: runs it for each segment in order, as the archiver does.
archive() {
    (
        cd "$work/pgdata"
        for n in "${names[@]}"; do
            c=${1//%p/pg_wal/$n}
            sh -c "${c//%f/$n}" >/dev/null || { echo "archive of $n failed" >&2; exit 1; }
            mv "pg_wal/archive_status/$n.ready" "pg_wal/archive_status/$n.done"
        done
    )
}
# fetch COMMAND: restores each segment in order and keeps it, as the startup process does.
fetch() {
    (
        mkdir -p "$work/restore/pg_wal"
        cd "$work/restore"
        for n in "${names[@]}"; do
            c=${1//%p/pg_wal/RECOVERYXLOG}
            sh -c "${c//%f/$n}" || { echo "fetch of $n failed" >&2; exit 1; }
            # PostgreSQL keeps each restored segment in pg_wal under its own name with a
            # durable rename, which fsyncs it before replay goes on; old segments are
            # removed later, at restartpoints, by the checkpointer.
            "$target/release/durable-rename" pg_wal/RECOVERYXLOG "pg_wal/$n"
        done
        # Every segment whole (checked once: a stat process per segment would cost more
        # than PostgreSQL's own stat of each).
        sizes=$(cd pg_wal && stat -c %s "${names[@]}" | sort -u)
        [[ $sizes == $((16 << 20)) ]] || { echo "a restored segment has the wrong size" >&2; exit 1; }
        # A prefetcher still at work would steal time from the next contender.
        [[ -d pg_wal/.walgate/prefetch ]] && flock pg_wal/.walgate/prefetch/.lock true
        true
    )
}
zstd1() {
    mkdir "$work/out"
    for n in "${names[@]}"; do
        zstd -q -1 "$work/segments/$n" -o "$work/out/$n.zst" && sync "$work/out/$n.zst" "$work/out"
    done
}
# pinned COMMAND...: the gateway on core 1, COMMAND and its children on core 0, as when the
# gateway runs on a machine of its own.
pinned() {
    taskset -a -p -c 1 "$gw_pid" >/dev/null
    (
        taskset -p -c 0 $BASHPID >/dev/null
        "$@"
    )
    taskset -a -p -c 0-1 "$gw_pid" >/dev/null
}
zstd_d() {
    mkdir "$work/out"
    for n in "${names[@]}"; do zstd -q -d "$work/zst/$n.zst" -o "$work/out/$n"; done
}
# The same, syncing each file as the fetch loop does (as PostgreSQL does).
zstd_d_sync() {
    mkdir "$work/out"
    for n in "${names[@]}"; do
        zstd -q -d "$work/zst/$n.zst" -o "$work/out/$n" && sync "$work/out/$n"
    done
}

declare -A best cpu_here cpu_gw
hz=$(getconf CLK_TCK)
# cpu PID: the CPU time in ms a process has used (utime + stime, from /proc).
cpu() { awk -v hz="$hz" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
# busy: the CPU time in ms the whole machine has spent, kernel included (from /proc/stat).
busy() { awk -v hz="$hz" '/^cpu / { print ($2 + $3 + $4 + $7 + $8) * 1000 / hz }' /proc/stat; }
# timed NAME COMMAND...: keeps the best segments/s under NAME, and the least CPU per
# segment of the gateway (cpu_gw) and of everything else (cpu_here: the contender, the
# helpers it starts in the background, the kernel's work for them).
timed() {
    local name=$1 s e here gw
    shift
    # Each contender starts with the files of the one before removed, and nothing left
    # to write back.
    rm -rf "$work/out" "$work/restore"
    sync
    here=$(busy) gw=$(cpu "$gw_pid")
    s=$(date +%s.%N)
    "$@"
    e=$(date +%s.%N)
    gw=$(python3 -c "print(($(cpu "$gw_pid") - $gw) / ${#names[@]})")
    here=$(python3 -c "print(($(busy) - $here) / ${#names[@]} - $gw)")
    best[$name]=$(python3 -c "print(max(${best[$name]:-0}, ${#names[@]} / ($e - $s)))")
    cpu_here[$name]=$(python3 -c "print(min(${cpu_here[$name]:-1e9}, $here))")
    cpu_gw[$name]=$(python3 -c "print(min(${cpu_gw[$name]:-1e9}, $gw))")
}

# The archive every fetch reads from.
stage
archive "$(client "$url" source "wal-push %p")"

for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    stage; timed push_curl_lo archive "$(archive_recipe "$url" "curl-lo-$round")"
    stage; timed push_client_lo archive "$(client "$url" "client-lo-$round" "wal-push %p")"
    stage; timed push_curl_wan archive "$(archive_recipe "$wan_url" "curl-wan-$round")"
    stage; timed push_client_wan archive "$(client "$wan_url" "client-wan-$round" "wal-push %p")"
    stage; timed push_client_pin pinned archive "$(client "$url" "client-pin-$round" "wal-push %p")"
    timed zstd1 pinned zstd1
    timed fetch_curl_lo fetch "$(restore_recipe "$url" source)"
    timed fetch_curlz_lo fetch "$(restore_recipe "$url" source "--compressed ")"
    timed fetch_client_lo fetch "$(client "$url" source "wal-fetch %f %p")"
    timed fetch_curl_wan fetch "$(restore_recipe "$wan_url" source)"
    timed fetch_client_wan fetch "$(client "$wan_url" source "wal-fetch %f %p")"
    timed zstd_d zstd_d
    timed zstd_d_sync zstd_d_sync
done

# --- single requests: the median of one GET (raw, and zstd with --compressed) and HEAD
# of each archived segment in turn, a new curl each time ---
declare -A median
one_request() { # one_request NAME CURL FLAGS...: the median time_total over the segments
    local t=()
    for n in "${names[@]}"; do
        t+=("$(curl -sS --fail -o /dev/null -w '%{time_total}' -H @"$auth" "${@:2}" "$url/v1/clusters/source/wal/$n")")
    done
    median[$1]=$(printf '%s\n' "${t[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] * 1000 }')
}
gw=$(cpu "$gw_pid")
one_request get
get_cpu=$(python3 -c "print(($(cpu "$gw_pid") - $gw) / ${#names[@]})")
one_request get_zstd --compressed
one_request head -I

ratio() { python3 -c "print('%.2fx' % (${best[$1]} / ${best[$2]}))"; }
row() {
    printf '%-52s %8.1f %8.0f %6.1f %6.1f   %s\n' "$1" "${best[$2]}" "$(python3 -c "print(${best[$2]} * 16)")" \
        "${cpu_here[$2]}" "${cpu_gw[$2]}" "$3"
}
echo
printf 'proxy: a fresh connection and GET takes %.1f ms direct, %.1f ms through the proxy (+%.1f ms; 2 RTT = %d ms)\n' \
    "$(python3 -c "print($rtt_direct*1000)")" "$(python3 -c "print($rtt_proxy*1000)")" \
    "$(python3 -c "print(($rtt_proxy-$rtt_direct)*1000)")" $((4 * delay_ms))
printf 'proxy: 512 MiB download at %.0f MiB/s direct, %.0f MiB/s through the proxy (%.2fx)\n' \
    "$(python3 -c "print(512/$bw_direct)")" "$(python3 -c "print(512/$bw_proxy)")" "$(python3 -c "print($bw_direct/$bw_proxy)")"
echo
printf 'one request per segment, median of %d: GET %.1f ms (gateway CPU %.1f ms), GET --compressed %.1f ms, HEAD %.1f ms\n' \
    "${#names[@]}" "${median[get]}" "$get_cpu" "${median[get_zstd]}" "${median[head]}"
echo
printf '%-52s %8s %8s %6s %6s   %s\n' "${#names[@]} segments, one process each, best of $rounds" "seg/s" "MiB/s" "others" "gw ms" "ratio"
row "archive, loopback: curl archive_command" push_curl_lo "$(ratio push_curl_lo zstd1) zstd -1 + fsync (target >= 1)"
row "archive, loopback: walgate-client wal-push" push_client_lo "$(ratio push_client_lo push_curl_lo) curl (target >= 1)"
row "archive, 10 ms RTT: curl archive_command" push_curl_wan ""
row "archive, 10 ms RTT: walgate-client wal-push" push_client_wan "$(ratio push_client_wan push_curl_wan) curl (target >= 3)"
row "backlog: zstd -1 + fsync, serial, one core" zstd1 ""
row "backlog: walgate-client wal-push (loopback)" push_client_lo "$(ratio push_client_lo zstd1) zstd -1 + fsync"
row "backlog, gateway on a core of its own: wal-push" push_client_pin "$(ratio push_client_pin zstd1) zstd -1 + fsync (target >= 2.5)"
row "fetch, loopback: curl restore_command" fetch_curl_lo "$(ratio fetch_curl_lo zstd_d) zstd -d (target >= 0.8)"
row "fetch, loopback: the same with curl --compressed" fetch_curlz_lo "$(ratio fetch_curlz_lo zstd_d) zstd -d"
row "fetch, loopback: walgate-client wal-fetch" fetch_client_lo "$(ratio fetch_client_lo fetch_curl_lo) curl"
row "fetch: zstd -d, serial" zstd_d ""
row "fetch, loopback: walgate-client wal-fetch" fetch_client_lo "$(ratio fetch_client_lo zstd_d) zstd -d (target >= 0.9)"
row "fetch: zstd -d + fsync, serial" zstd_d_sync ""
row "fetch, loopback: walgate-client wal-fetch" fetch_client_lo "$(ratio fetch_client_lo zstd_d_sync) zstd -d + fsync"
row "fetch, 10 ms RTT: curl restore_command" fetch_curl_wan ""
row "fetch, 10 ms RTT: walgate-client wal-fetch" fetch_client_wan "$(ratio fetch_client_wan fetch_curl_wan) curl (target >= 3)"
echo "walgate-client binary (client profile, stripped): $(stat -c %s "$client_bin") bytes"
