#!/usr/bin/env python3
"""Writes N audit events of about 1 KB each (default 100,000) to a file, for timing `vigil scan`:
the example day's events repeated with fresh auditIDs and shifted times, so deduplication passes
them all. Usage: scripts/bench-file.py OUT [N]"""
import json
import sys
import uuid

out_path = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
source = [json.loads(line) for line in open("examples/audit/day-of-traffic.jsonl")]
# Keep events of about 1 KB: the large RequestResponse pod events are a small share of real logs.
source = [event for event in source if 600 <= len(json.dumps(event)) <= 1600]
with open(out_path, "w") as out:
    for index in range(count):
        event = dict(source[index % len(source)])
        event["auditID"] = str(uuid.UUID(int=index))
        out.write(json.dumps(event, separators=(",", ":")) + "\n")
