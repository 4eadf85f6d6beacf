#!/usr/bin/env bash
# Peak memory (and time) of `vigil scan`, release build, on the two hostile streams of
# docs/hostile-input.md: FINDINGS distinct findings (anonymous list calls, each from its own public
# address; default 1,000,000) and GARBAGE lines that are not JSON (default 10,000,000), each also at a
# tenth of that: memory must stay flat as they grow.
#
#   scripts/measure-memory.sh [FINDINGS [GARBAGE]]
set -euo pipefail
cd "$(dirname "$0")/.."
findings=${1:-1000000}
garbage=${2:-10000000}
cargo build --release --locked -p vigil --bin vigil
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

anonymous_calls() {
    python3 - "$1" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
for i in range(n):
    ip = f"11.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
    second = i % 86400
    out.write(
        '{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"anon-%d","stage":"ResponseComplete",'
        '"verb":"list","requestURI":"/api/v1/namespaces/default/pods","user":{"username":"system:anonymous",'
        '"groups":["system:unauthenticated"]},"sourceIPs":["%s"],"objectRef":{"resource":"pods","namespace":"default"},'
        '"responseStatus":{"code":200},"stageTimestamp":"2024-06-01T%02d:%02d:%02dZ"}\n'
        % (i, ip, second // 3600, second // 60 % 60, second % 60)
    )
PY
}

# Reads stdin with vigil scan; prints a table row.
measure() {
    local name=$1
    /usr/bin/time -f '%M %e' -o "$scratch/time" target/release/vigil scan --stats "$scratch/stats.json" - \
        > /dev/null 2> "$scratch/stderr" || { cat "$scratch/stderr" >&2; exit 1; }
    read -r peak seconds < "$scratch/time"
    python3 - "$name" "$peak" "$seconds" "$scratch/stats.json" <<'PY'
import json, sys
name, peak, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stats = json.load(open(sys.argv[4]))
findings = sum(stats["findings"].values())
rejected = sum(stats["rejected"].values())
print(f"| {name:<28} | {peak // 1024:>6} MiB | {seconds:>6} s | {findings:>9} | {stats['evicted']:>9} | {rejected:>9} |")
PY
}

echo "| input                        |   peak RSS |     time |  findings |   evicted |  rejected |"
echo "|------------------------------|------------|----------|-----------|-----------|-----------|"
for n in $((findings / 10)) "$findings"; do
    anonymous_calls "$n" | measure "$n distinct findings"
done
for n in $((garbage / 10)) "$garbage"; do
    awk -v n="$n" 'BEGIN { for (i = 0; i < n; i++) print "not json, a line an attacker wrote " i }' |
        measure "$n garbage lines"
done
