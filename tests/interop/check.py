#!/usr/bin/env python3
"""Interop test (`make interop`): other Delta readers see exactly what medallion wrote.

Builds a small warehouse with the medallion binary (two pipeline runs, with a bad tracker file, a
row that cannot be typed and a patient who arrives late, so that every table exists and has
several versions), then reads every table at its latest version and at versions 0 and 1 with
Python `deltalake`, Polars and DuckDB's delta extension (loaded from its wheel, offline), and
compares the rows, as multisets, with `medallion show --format json`.

Usage: check.py MEDALLION_BIN
"""

import collections
import datetime
import decimal
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import duckdb_ext
import polars as pl
from deltalake import DeltaTable

BIN = sys.argv[1]


def medallion(root, *args):
    cmd = [BIN, "--warehouse", str(root / "warehouse"), "--data", str(root / "data"), "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"interop: {' '.join(cmd)} failed:\n{done.stderr}")
    return done.stdout


def build(root):
    medallion(root, "generate", "--patients", "4", "--months", "2", "--seed", "5")
    tracker = root / "data/healthcare/streaming/tracker"
    (tracker / "bad.json").write_text("[{\"mrn\": \"1\"},")
    (tracker / "odd.json").write_text(
        "[{\"device_id\": \"9\", \"heartrate\": \"fast\", \"mrn\": \"10000001\", \"time\": \"1\"},"
        " {\"device_id\": \"9\", \"heartrate\": \"88.5\", \"mrn\": \"99999999\","
        " \"time\": \"1601510459.25\"}]"
    )
    medallion(root, "pipeline")
    csv = root / "data/healthcare/batch/patient_info.csv"
    csv.write_text(csv.read_text() + "99999999,Late Comer\n")
    medallion(root, "generate", "--append")
    medallion(root, "pipeline")


def canon(value):
    """One comparable form for a value, whichever reader produced it."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return ("ts", delta // datetime.timedelta(microseconds=1))
    if isinstance(value, datetime.date):
        return ("date", value.isoformat())
    if isinstance(value, decimal.Decimal):
        # medallion's JSON writes a decimal as its exact text, e.g. "141.7500000000".
        return str(value)
    if isinstance(value, str) and len(value) >= 20 and value[4] == "-" and value[10] == "T":
        try:
            return canon(datetime.datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return ("date", value)
    return value


def rows(dicts):
    return collections.Counter(
        tuple(canon(d[k]) for k in sorted(d)) for d in dicts
    )


def via_medallion(root, table, version):
    args = ["show", table, "--format", "json", "--limit", "100000000"]
    if version is not None:
        args += ["--version", str(version)]
    out = medallion(root, *args)
    return rows(json.loads(line) for line in out.splitlines() if line.strip())


def via_deltalake(path, version):
    table = DeltaTable(str(path), version=version) if version is not None else DeltaTable(str(path))
    return rows(table.to_pyarrow_table().to_pylist())


def via_polars(path, version):
    return rows(pl.read_delta(str(path), version=version).to_dicts())


def duckdb_connection():
    ext = Path(list(duckdb_ext.__path__)[0]) / "extensions"
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute(f"SET extension_directory='{ext}'")
    con.execute("LOAD delta")
    return con


def via_duckdb(con, path, version):
    if version is None:
        reader = con.execute(f"SELECT * FROM delta_scan('{path}')").arrow()
    else:
        # delta_scan(path, version => N) fails in 1.4.4: ATTACH with VERSION works.
        con.execute(f"ATTACH '{path}' AS t (TYPE delta, VERSION {version})")
        reader = con.execute("SELECT * FROM t").arrow()
    table = reader.read_all() if hasattr(reader, "read_all") else reader
    if version is not None:
        con.execute("DETACH t")
    return rows(table.to_pylist())


def main():
    failures = 0
    checks = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root)
        db = root / "warehouse/healthcare_dlh.db"
        tables = sorted(p.name for p in db.iterdir() if (p / "_delta_log").is_dir())
        con = duckdb_connection()
        for table in tables:
            path = db / table
            latest = DeltaTable(str(path)).version()
            for version in sorted({None, 0, min(1, latest)}, key=lambda v: -1 if v is None else v):
                want = via_medallion(root, table, version)
                label = f"{table}@{'latest' if version is None else f'v{version}'}"
                for reader, read in [
                    ("deltalake", lambda: via_deltalake(path, version)),
                    ("polars", lambda: via_polars(path, version)),
                    ("duckdb", lambda: via_duckdb(con, path, version)),
                ]:
                    checks += 1
                    try:
                        got = read()
                    except Exception as e:  # a reader that cannot read is a failure
                        print(f"FAIL {label} {reader}: {type(e).__name__}: {e}")
                        failures += 1
                        continue
                    if got != want:
                        missing = sum((want - got).values())
                        extra = sum((got - want).values())
                        print(f"FAIL {label} {reader}: {missing} rows missing, {extra} extra; "
                              f"e.g. missing {list((want - got))[:1]}, extra {list((got - want))[:1]}")
                        failures += 1
                    else:
                        print(f"ok   {label} {reader}: {sum(want.values())} rows")
        print(f"interop: {checks - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
