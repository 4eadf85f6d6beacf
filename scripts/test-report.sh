#!/usr/bin/env bash
# vigil's HTML report in a real browser: Debian's chromium, driven by Playwright (playwright-core
# from npm, pinned in tests/browser/package-lock.json). Opens the report of the example day (with
# two hostile events) and one of 100,000 findings; screenshots land in target/report/.
# Usage: scripts/test-report.sh [path/to/vigil]  (default: target/release/vigil)
set -euo pipefail
cd "$(dirname "$0")/.."
vigil="${1:-target/release/vigil}"
out=target/report
mkdir -p "$out"

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "report test: installing Debian's chromium"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > "$out/apt.log" 2>&1 \
      || { apt-get update -q > /dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > "$out/apt.log" 2>&1; } \
      || { echo "report test: could not install chromium (see $out/apt.log)" >&2; exit 1; }
  else
    echo "report test: no Chromium at ${CHROMIUM:-/usr/bin/chromium}; install Debian's chromium or set CHROMIUM" >&2
    exit 1
  fi
fi
command -v node > /dev/null || { echo "report test: Node.js is needed (node, npm)" >&2; exit 1; }
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)

"$vigil" scan --config examples/vigil.toml examples/audit examples/runtime \
  tests/browser/hostile-audit.jsonl tests/browser/hostile-runtime.jsonl \
  --report "$out/example.html" > "$out/example-findings.jsonl" 2> "$out/example-scan.log"
# The bundled example alone, for the README's screenshot (target/report/report-readme.png).
"$vigil" scan --report "$out/plain.html" > /dev/null 2>&1
node tests/browser/make-findings.mjs 100000 > "$out/large-findings.jsonl"
"$vigil" report "$out/large-findings.jsonl" -o "$out/large.html" 2> "$out/large-report.log"
node tests/browser/report.test.mjs "$out/example.html" "$out/large.html" 100000 "$out" "$out/plain.html"
