#!/usr/bin/env bash
# Runs the cargo-fuzz targets for a bounded time each: scripts/fuzz.sh [TARGET] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(sdp candidate peerjs_frame binarypack msgpack)
[ $# -ge 1 ] && [ "$1" != all ] && targets=("$1")
secs=${2:-60}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 2; }
seed() {
  local dir=fuzz/corpus/$1; mkdir -p "$dir"
  case $1 in
    sdp) cp fixtures/chromium/*.sdp "$dir/" ;;
    candidate) i=0; while IFS= read -r l; do printf '%s' "$(echo "$l" | python3 -c 'import json,sys; print(json.load(sys.stdin)["candidate"], end="")')" > "$dir/c$i"; i=$((i+1)); done < fixtures/chromium/candidates.jsonl ;;
    peerjs_frame) i=0; for f in fixtures/peerjs/*.jsonl fixtures/peerjs/malformed.txt; do while IFS= read -r l; do printf '%s' "$l" > "$dir/f$i"; i=$((i+1)); done < "$f"; done ;;
    binarypack|msgpack) python3 - "$dir" "$1" <<'PY'
import json, sys
for i, line in enumerate(open(f"fixtures/{sys.argv[2]}/vectors.jsonl")):
    v = json.loads(line)
    for j, m in enumerate(v["messages"][:2]):
        open(f"{sys.argv[1]}/v{i}_{j}", "wb").write(bytes.fromhex(m)[:4096])
PY
    ;;
  esac
}
for t in "${targets[@]}"; do
  seed "$t"
  echo "== fuzzing $t for ${secs}s"
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=65536 2>&1 | tail -n 4
done
