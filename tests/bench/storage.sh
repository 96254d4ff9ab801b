#!/usr/bin/env bash
# Benchmark: WAL archive throughput through the gateway on each storage backend that
# has a real server here (moto, Azurite, an OpenStack Swift all-in-one), with encryption at rest off and on, as ratios to the local
# filesystem without encryption in the same run.
#
# The same real segments (made by pgbench) are pushed with curl, 4 at a time, into a
# fresh cluster name per run; each round runs every configuration once in turn
# (interleaved, so drift hits all alike) and the best round counts. Needs the emulators
# (tests/emulators/install).
#
#   tests/bench/storage.sh [SEGMENTS=48] [ROUNDS=3]
set -euo pipefail
segments=${1:-48}
rounds=${2:-3}
source "$(dirname "$0")/lib.sh"
emulators=${WALGATE_EMULATORS:-/var/cache/walgate-ci/emulators}
py=$emulators/venv/bin/python
wait_port() { until (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.1; done; }

make_segments "$segments"
echo "segments: ${#names[@]} ($((bytes >> 20)) MiB)" >&2

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; cleanup' EXIT

s3_port=$(free_port)
"$emulators/venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
pids+=($!)
az_port=$(free_port)
"$emulators/npm/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$az_port" \
    --location "$work/azurite" --disableTelemetry --silent --skipApiVersionCheck >/dev/null 2>&1 &
pids+=($!)
sw_port=$(free_port)
mkfifo "$work/swift.out"
"$root/tests/emulators/swift-aio" "$work/swift" "$sw_port" >"$work/swift.out" 2>"$work/swift.err" &
pids+=($!)
read -r swift_ready <"$work/swift.out" || true
[[ ${swift_ready:-} == ready ]] || { cat "$work/swift.err" >&2; exit 1; }
wait_port "$s3_port"
wait_port "$az_port"
az_key=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==
"$py" -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:$s3_port', region_name='us-east-1', aws_access_key_id='t', aws_secret_access_key='t').create_bucket(Bucket='bench')"
"$py" -c "from azure.storage.blob import BlobServiceClient as C; C.from_connection_string('DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$az_key;BlobEndpoint=http://127.0.0.1:$az_port/devstoreaccount1').create_container('bench')"
sw_token=$(curl -sf -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
    "http://127.0.0.1:$sw_port/auth/v1.0" | tr -d '\r' | sed -n 's/^x-auth-token: //Ip')
curl -sf -X PUT -H "X-Auth-Token: $sw_token" "http://127.0.0.1:$sw_port/v1/AUTH_test/bench"
"$target/release/walgate" keyring add --id bench "$work/keyring" 2>/dev/null

# target_table NAME: the [targets.NAME] table of one configuration.
target_table() {
    case $1 in
    local*) printf 'url = "file://%s/objects"\n' "$work/gw-$1" ;;
    s3*) printf 'url = "s3://bench/%s"\naws_endpoint = "http://127.0.0.1:%s"\naws_region = "us-east-1"\naws_allow_http = true\naws_access_key_id = "t"\naws_secret_access_key = "t"\n' "$1" "$s3_port" ;;
    swift*) printf 'url = "swift://bench/%s"\nswift_auth_url = "http://127.0.0.1:%s/auth/v1.0"\nswift_user = "test:tester"\nswift_key = "testing"\n' "$1" "$sw_port" ;;
    azure*) printf 'url = "az://bench/%s"\nazure_storage_account_name = "devstoreaccount1"\nazure_storage_account_key = "%s"\nazure_storage_endpoint = "http://127.0.0.1:%s/devstoreaccount1"\nazure_allow_http = true\n' "$1" "$az_key" "$az_port" ;;
    esac
    [[ $1 == *-encrypted ]] && printf 'encryption_keyring = "%s"\n' "$work/keyring"
    return 0
}

configs=(local local-encrypted s3 s3-encrypted azure azure-encrypted swift swift-encrypted)
declare -A best
for c in "${configs[@]}"; do
    mkdir -p "$work/gw-$c"
    { echo 'default_target = "t"'; echo '[targets.t]'; target_table "$c"; } >"$work/gw-$c/walgate.toml"
done

# push CONFIG ROUND: start a gateway on CONFIG, push every segment, print seconds.
push() {
    local dir=$work/gw-$1 cluster=r$2
    "$target/release/walgate" serve --config "$dir/walgate.toml" --data-dir "$dir" \
        --listen 127.0.0.1:0 >"$dir/addr" 2>"$dir/log" &
    local pid=$!
    until grep -q listening "$dir/addr" 2>/dev/null; do sleep 0.05; done
    local gw tok
    gw=$(sed 's/.*listening on //' "$dir/addr")
    tok=$("$target/release/walgate" token issue --config "$dir/walgate.toml" --data-dir "$dir" --cluster '*' --role admin 2>/dev/null)
    local start end
    start=$(date +%s.%N)
    printf '%s\n' "${names[@]}" | xargs -P 4 -I{} curl -sf -o /dev/null -H "Authorization: Bearer $tok" \
        -T "$work/segments/{}" "$gw/v1/clusters/$cluster/wal/{}"
    end=$(date +%s.%N)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 -c "print($end - $start)"
}

for ((r = 1; r <= rounds; r++)); do
    for c in "${configs[@]}"; do
        t=$(push "$c" "$r")
        echo "round $r $c: ${t}s" >&2
        if [[ -z ${best[$c]:-} ]] || python3 -c "import sys; sys.exit(0 if $t < ${best[$c]} else 1)"; then
            best[$c]=$t
        fi
    done
done

echo
printf '%-18s %10s %12s\n' configuration MiB/s "vs local"
for c in "${configs[@]}"; do
    python3 -c "
b, t, base = $bytes, ${best[$c]}, ${best[local]}
print(f'{\"$c\":<18} {b / t / 2**20:>10.0f} {base / t:>11.2f}x')"
done
