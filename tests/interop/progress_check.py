#!/usr/bin/env python3
"""Check that bronze's progress records are Spark `StreamingQueryProgress` JSON.

The bronze stream writes one record per micro-batch to `_checkpoint/progress.jsonl` (and prints
them with `medallion bronze --json`), named after Spark's `StreamingQueryProgress` so that tools
written for Spark's listener and `query.lastProgress` can read them. This parses every record
with PySpark's own `StreamingQueryProgress.fromJson` (pure Python, no JVM or session, no network)
and checks that what PySpark made of it agrees with the raw record, with the types Spark uses.
pyspark does not check types itself, so the type checks here are what catch e.g. a count written
as a string, and the per-source `metrics` that Auto Loader reports (numFilesOutstanding,
numBytesOutstanding) must be there as strings holding integers.

Usage: progress_check.py FILE...   (each a progress.jsonl, or `-` for JSON lines on stdin; the
run summary that `bronze --json` prints last is skipped)
"""

import json
import sys

from pyspark.sql.streaming.listener import StreamingQueryProgress


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check(rec):
    p = StreamingQueryProgress.fromJson(rec)
    assert str(p.id) == rec["id"] and str(p.runId) == rec["runId"], "id/runId"
    for name, got in [
        ("batchId", p.batchId),
        ("numInputRows", p.numInputRows),
        ("batchDuration", p.batchDuration),
    ]:
        assert is_int(got) and got == rec[name], f"{name}: {got!r}"
    assert isinstance(p.timestamp, str) and p.timestamp == rec["timestamp"], "timestamp"
    te = p.durationMs["triggerExecution"]
    assert is_int(te) and te == rec["durationMs"]["triggerExecution"], f"triggerExecution: {te!r}"
    assert p.sources, "no sources"
    for i, (s, raw) in enumerate(zip(p.sources, rec["sources"])):
        assert isinstance(s.description, str) and s.description == raw["description"], f"sources[{i}].description"
        assert is_int(s.numInputRows) and s.numInputRows == raw["numInputRows"], f"sources[{i}].numInputRows"
        for k in ("numFilesOutstanding", "numBytesOutstanding"):
            v = s.metrics.get(k)
            assert isinstance(v, str) and v.isdigit(), f"sources[{i}].metrics[{k!r}]: {v!r}"
    assert sum(s.numInputRows for s in p.sources) == p.numInputRows, "numInputRows != sum over sources"
    n = p.sink.numOutputRows
    assert is_int(n) and n == rec["sink"]["numOutputRows"], f"sink.numOutputRows: {n!r}"
    assert json.loads(p.json) == rec, ".json does not round-trip"


def main(paths):
    ok = failed = 0
    for path in paths:
        try:
            f = sys.stdin if path == "-" else open(path)
            lines = list(f)
        except OSError as e:
            print(f"{path}: {e}", file=sys.stderr)
            failed += 1
            continue
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if "streams" in rec and "batchId" not in rec:
                    continue  # the run summary of `bronze --json`
                check(rec)
                ok += 1
            except Exception as e:
                print(f"{path}:{n}: {type(e).__name__}: {e}", file=sys.stderr)
                failed += 1
    if not ok + failed:
        print("progress_check: no progress records", file=sys.stderr)
    print(f"progress_check: {ok + failed} records parsed by pyspark StreamingQueryProgress.fromJson, {failed} failed")
    return 1 if failed or not ok else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
