#!/usr/bin/env bash
# Small-object throughput on a fresh 3-node `cairn dev` cluster (release build of cairn):
# COUNT PUTs then COUNT GETs of SIZE bytes, CONCURRENCY requests in flight, through the AWS SDK.
# Usage: bench/small-objects.sh [COUNT] [SIZE] [CONCURRENCY]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
cd "$root"
cargo build --release -p cairn-gateway --bin cairn
cargo build -p cairn-integration-tests --example small_objects
CAIRN_BIN=$target/release/cairn "$target/debug/examples/small_objects" "${1:-2000}" "${2:-4096}" "${3:-16}"
