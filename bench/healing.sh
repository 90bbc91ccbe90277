#!/usr/bin/env bash
# Healing figures on a fresh `cairn dev` cluster (release build, defaults unless said):
# scrub throughput at the default throttle, time to re-replicate SIZE_MIB after a node loses its
# data directory, and rebalance throughput when a fourth node is added.
# Usage: bench/healing.sh [SIZE_MIB]
set -euo pipefail
size_mib=${1:-1024}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cairn=$target/release/cairn
[ -x "$cairn" ] || (cd "$root" && cargo build --release -p cairn-gateway --bin cairn)
command -v aws >/dev/null || { echo "the aws CLI is required (pip install awscli)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Rounds every second, so that what is measured is the transfer, not the wait for a round.
export CAIRN_ANTI_ENTROPY_INTERVAL_MS=1000
"$cairn" dev --data-dir "$work/cluster" --s3-port 0 --admin-port 0 --env-file "$work/env" >"$work/dev.out" 2>&1 &
pids+=($!)
for _ in $(seq 600); do [ -f "$work/cluster/cluster.json" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$work/env"
export CAIRN_ADMIN_URL CAIRN_ADMIN_TOKEN
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 mb s3://bench >/dev/null
head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/in.bin"
aws --endpoint-url "$AWS_ENDPOINT_URL" s3 cp --only-show-errors "$work/in.bin" s3://bench/object.bin
rm -f "$work/in.bin"

# Polls `cairn admin ARGS --json` until the Python expression COND (over `d`) holds; prints the
# seconds it took.
wait_for() {
  local cond=$1; shift
  python3 - "$cairn" "$cond" "$@" <<'PY'
import json, subprocess, sys, time
cairn, cond, args = sys.argv[1], sys.argv[2], sys.argv[3:]
start = time.time()
while True:
    out = subprocess.run([cairn, "admin", *args, "--json"], capture_output=True, text=True)
    if out.returncode == 0:
        d = json.loads(out.stdout)
        if eval(cond):
            print(f"{time.time() - start:.2f}")
            break
    if time.time() - start > 3600:
        sys.exit("timed out")
    time.sleep(0.2)
PY
}

# 1. Scrub throughput at the default throttle.
started_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
"$cairn" admin scrub start --node node-1 >/dev/null
wait_for "(d[0]['report']['progress'].get('last_pass_completed_ms') or 0) > $started_ms" scrub status --node node-1 >/dev/null
"$cairn" admin scrub status --node node-1 --json | python3 -c '
import json, sys
p = json.load(sys.stdin)[0]["report"]
q, rate = p["progress"], p["rate_bytes_per_sec"]
secs = (q["last_pass_completed_ms"] - q["last_pass_started_ms"]) / 1000
mib, chunks = q["last_pass_bytes"] / 2**20, q["last_pass_chunks"]
print(f"scrub: {mib:.0f} MiB in {chunks} chunks proved in {secs:.1f} s: {mib / secs:.1f} MiB/s (limit {rate / 2**20:.0f} MiB/s)")'

# 2. A node loses its data directory: time until it holds every replica again.
node3=$(python3 -c "import json,sys; n=json.load(open(sys.argv[1]))['nodes'][2]; print(n['pid']); print(n['data_dir']); print('\x1f'.join(n['argv']))" "$work/cluster/cluster.json")
pid=$(sed -n 1p <<<"$node3"); dir=$(sed -n 2p <<<"$node3"); IFS=$'\x1f' read -r -a argv <<<"$(sed -n 3p <<<"$node3")"
kill -9 "$pid"; sleep 1; rm -rf "$dir"
"${argv[@]}" >>"$work/cluster/node-3.log" 2>&1 &
pids+=($!)
secs=$(wait_for "all(n['status'] and n['status']['chunk_count'] == d['nodes'][0]['status']['chunk_count'] and not n['status']['rebuilding'] and n['state'] == 'healthy' for n in d['nodes'])" status)
bytes=$("$cairn" admin status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nodes"][2]["status"]["used_bytes"])')
python3 -c "print(f're-replication after a lost disk: {$bytes / 2**20:.0f} MiB in {$secs} s: {$bytes / 2**20 / $secs:.1f} MiB/s')"

# 3. A fourth node joins: time until the move is over and the old holders handed off.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$cairn" node --node-id node-4 --data-dir "$work/cluster/node-4" --listen "127.0.0.1:$port" \
  --secret-file "$work/cluster/cluster.secret" >"$work/cluster/node-4.log" 2>&1 &
pids+=($!)
until "$cairn" admin node add "127.0.0.1:$port" >/dev/null 2>&1; do sleep 0.1; done
t0=$(date +%s.%N)
version=$("$cairn" admin node list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
# Over once every node ran a round under the new layout with nothing left to pull or hand off.
wait_for "len(d['nodes']) == 4 and all(n['status'] and n['status']['sync']['layout_version'] >= $version and n['status']['sync']['moving'] is False and n['status']['sync']['partitions_remaining'] == 0 and n['status']['sync']['handoff_pending'] == 0 for n in d['nodes'])" status >/dev/null
secs=$(python3 -c "import time; print(f'{time.time() - $t0:.2f}')")
"$cairn" admin status --json | python3 -c "
import json, sys
nodes = json.load(sys.stdin)['nodes']
moved = nodes[3]['status']['used_bytes']
print(f'rebalance adding a node: {moved / 2**20:.0f} MiB moved to node-4 in $secs s: {moved / 2**20 / $secs:.1f} MiB/s')
for n in nodes:
    print(f\"  {n['node_id']}: {n['status']['chunk_count']} chunks, {n['status']['used_bytes'] / 2**20:.0f} MiB\")"
