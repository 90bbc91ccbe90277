#!/usr/bin/env bash
# Uploads and downloads one large file with the aws CLI through a fresh `cairn dev` cluster and
# prints throughput, the gateway's peak RSS and each node's chunk bytes; optionally repeats it
# with one node killed. Usage: bench/aws-cli-roundtrip.sh [SIZE_MIB] [--kill-node]
set -euo pipefail
size_mib=${1:-1024}
kill_node=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cairn=$target/release/cairn
[ -x "$cairn" ] || (cd "$root" && cargo build --release -p cairn-gateway --bin cairn)
command -v aws >/dev/null || { echo "the aws CLI is required (pip install awscli)" >&2; exit 1; }

work=$(mktemp -d)
dev_pid=
cleanup() {
  [ -n "$dev_pid" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$cairn" dev --data-dir "$work/cluster" --s3-port 0 --admin-port 0 --env-file "$work/env" >"$work/dev.out" 2>&1 &
dev_pid=$!
for _ in $(seq 600); do [ -f "$work/cluster/cluster.json" ] && break; sleep 0.1; done
# shellcheck disable=SC1091
source "$work/env"
aws_s3() { aws --endpoint-url "$AWS_ENDPOINT_URL" s3 "$@"; }
gateway_pid=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['gateway_pid'])" "$work/cluster/cluster.json")

head -c $((size_mib * 1024 * 1024)) /dev/urandom >"$work/in.bin"
want=$(sha256sum "$work/in.bin" | cut -d' ' -f1)
aws_s3 mb s3://bench >/dev/null

round() {
  local label=$1
  local t0 t1 t2 got
  t0=$(date +%s.%N)
  aws_s3 cp --only-show-errors "$work/in.bin" "s3://bench/$label.bin"
  t1=$(date +%s.%N)
  aws_s3 cp --only-show-errors "s3://bench/$label.bin" "$work/out.bin"
  t2=$(date +%s.%N)
  got=$(sha256sum "$work/out.bin" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "$label: SHA-256 mismatch" >&2; exit 1; }
  python3 - "$label" "$size_mib" "$t0" "$t1" "$t2" <<'PY'
import sys
label, size, t0, t1, t2 = sys.argv[1], float(sys.argv[2]), *map(float, sys.argv[3:])
print(f"{label}: upload {size / (t1 - t0):.1f} MiB/s, download {size / (t2 - t1):.1f} MiB/s (SHA-256 equal)")
PY
  aws_s3 ls s3://bench/ >/dev/null
  rm -f "$work/out.bin"
}

round healthy
echo "gateway peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$gateway_pid"/status)"
for node in "$work"/cluster/node-*/; do
  echo "$(basename "$node") chunk bytes: $(du -sb "$node/chunks" | cut -f1)"
done

if [ "$kill_node" = "--kill-node" ]; then
  node_pid=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['nodes'][1]['pid'])" "$work/cluster/cluster.json")
  kill -9 "$node_pid"
  round one-node-killed
  aws_s3 rm --only-show-errors s3://bench/healthy.bin
  aws_s3 ls s3://bench/
  echo "gateway peak RSS after both rounds: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/"$gateway_pid"/status)"
fi
