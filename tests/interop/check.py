#!/usr/bin/env python3
"""Interop test (`make interop`): other Delta readers see exactly what medallion wrote.

Builds a small warehouse with the medallion binary (two pipeline runs, with a bad tracker file, a
row that cannot be typed and a patient who arrives late, so that every table exists and has
several versions, then `maintain`, whose compactions copy row groups into new files), then reads every table at its latest version and at versions 0 and 1 with
Python `deltalake`, Polars, DuckDB's delta extension (loaded from its wheel, offline) and Spark's
API (PySpark through Sail, a Spark Connect server without a JVM, run in this process), and
compares the rows, as multisets, with `medallion show --format json`.

Then the same on object storage: a moto S3 server on a free local port, a warehouse at
s3://lakehouse/wh (the source data stays in a local folder), read by the same four readers
(DuckDB through its httpfs extension, also from a wheel). moto is stopped at the end, whatever
happens.

Usage: check.py MEDALLION_BIN
"""

import collections
import contextlib
import datetime
import decimal
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import duckdb_ext
import polars as pl
from deltalake import DeltaTable
from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

import moto_s3

BIN = sys.argv[1]
BUCKET = "lakehouse"
# Every table medallion has: build() makes them all.
TABLES = [
    "dim_patients", "fact_heartrate_bronze", "fact_heartrate_bronze_quarantine",
    "fact_heartrate_silver", "fact_heartrate_silver_quarantine", "fact_heartrate_silver_waiting",
    "fact_heartrate_gold", "fact_heartrate_daily", "pipeline_events",
]


def medallion(warehouse, data, *args):
    cmd = [BIN, "--warehouse", str(warehouse), "--data", str(data), "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"interop: {' '.join(cmd)} failed (exit {done.returncode}):\n{done.stderr}")
    return done.stdout


def build(warehouse, data):
    medallion(warehouse, data, "generate", "--patients", "4", "--months", "2", "--seed", "5")
    tracker = data / "healthcare/streaming/tracker"
    (tracker / "bad.json").write_text("[{\"mrn\": \"1\"},")
    (tracker / "odd.json").write_text(
        "[{\"device_id\": \"9\", \"heartrate\": \"fast\", \"mrn\": \"10000001\", \"time\": \"1\"},"
        " {\"device_id\": \"9\", \"heartrate\": \"88.5\", \"mrn\": \"99999999\","
        " \"time\": \"1601510459.25\"}]"
    )
    medallion(warehouse, data, "pipeline")
    csv = data / "healthcare/batch/patient_info.csv"
    csv.write_text(csv.read_text() + "99999999,Late Comer\n")
    medallion(warehouse, data, "generate", "--append")
    medallion(warehouse, data, "pipeline")
    # Every table's small files compacted (row groups copied as they are): the latest version
    # every reader checks is made of spliced files.
    medallion(warehouse, data, "maintain")


def listed_tables(warehouse, data):
    """The tables `medallion tables` lists."""
    out = medallion(warehouse, data, "tables", "--format", "json")
    return sorted(json.loads(line)["table"] for line in out.splitlines() if line.strip())


def canon(value):
    """One comparable form for a value, whichever reader produced it."""
    if isinstance(value, datetime.datetime):
        # A naive datetime is UTC: PySpark's collect() gives local time, and main() sets the
        # process's time zone to UTC.
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return ("ts", delta // datetime.timedelta(microseconds=1))
    if isinstance(value, datetime.date):
        return ("date", value.isoformat())
    if isinstance(value, decimal.Decimal):
        # medallion's JSON writes a decimal as its exact text, e.g. "141.7500000000"; every
        # reader returns the column's scale, so str() of the Decimal is that text.
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


def via_medallion(warehouse, data, table, version):
    args = ["show", table, "--format", "json", "--limit", "0"]
    if version is not None:
        args += ["--version", str(version)]
    out = medallion(warehouse, data, *args)
    return rows(json.loads(line) for line in out.splitlines() if line.strip())


def via_deltalake(location, version, storage_options):
    table = DeltaTable(location, version=version, storage_options=storage_options)
    return rows(table.to_pyarrow_table().to_pylist())


def via_polars(location, version, storage_options):
    return rows(pl.read_delta(location, version=version, storage_options=storage_options).to_dicts())


def duckdb_connection():
    ext = Path(list(duckdb_ext.__path__)[0]) / "extensions"
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions=false")
    con.execute(f"SET extension_directory='{ext}'")
    con.execute("LOAD delta")
    return con


def duckdb_s3_secret(con, s3):
    """Give DuckDB the moto endpoint; None if it worked, else the reason it cannot read S3.

    Without a secret DuckDB's delta extension asks the EC2 metadata address for credentials, so
    no S3 table is read unless this worked. The secret needs the httpfs extension, from the
    duckdb-ext-httpfs wheel (the duckdb-ext-delta wheel holds only delta)."""
    try:
        con.execute(
            f"CREATE SECRET moto (TYPE s3, KEY_ID '{moto_s3.ACCESS_KEY}', "
            f"SECRET '{moto_s3.SECRET_KEY}', ENDPOINT '127.0.0.1:{s3.port}', URL_STYLE 'path', "
            f"USE_SSL false, REGION '{moto_s3.REGION}')"
        )
        return None
    except duckdb.Error as e:
        return f"{type(e).__name__}: {' '.join(str(e).split())}"


def via_duckdb(con, location, version):
    if version is None:
        return rows(duckdb_dicts(con.execute(f"SELECT * FROM delta_scan('{location}')")))
    # delta_scan(path, version => N) fails in 1.4.4: ATTACH with VERSION works.
    con.execute(f"ATTACH '{location}' AS t (TYPE delta, VERSION {version})")
    try:
        # Read every row before DETACH: the result is a stream over the attached table.
        return rows(duckdb_dicts(con.execute("SELECT * FROM t")))
    finally:
        con.execute("DETACH t")


def duckdb_dicts(result):
    """A DuckDB result's rows as dicts, through Arrow (1.4.4's .arrow() is a RecordBatchReader)."""
    reader = result.arrow()
    table = reader.read_all() if hasattr(reader, "read_all") else reader
    return table.to_pylist()


@contextlib.contextmanager
def spark_session():
    """Sail's Spark Connect server on 127.0.0.1 in this process, and a PySpark session on it.

    Sail reads S3 settings from the standard AWS variables in this process's environment."""
    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        spark = (SparkSession.builder.remote(f"sc://127.0.0.1:{port}")
                 .config("spark.sql.session.timeZone", "UTC").getOrCreate())
        try:
            yield spark
        finally:
            spark.stop()
    finally:
        server.stop()


def via_spark(spark, location, version):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return rows(row.asDict() for row in reader.load(location).collect())


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def compare(self, label, reader, read, want):
        try:
            got = read()
        except Exception as e:  # a reader that cannot read is a failure
            print(f"FAIL {label} {reader}: {type(e).__name__}: {' '.join(str(e).split())[:1000]}")
            self.failed += 1
            return
        if got != want:
            missing = sum((want - got).values())
            extra = sum((got - want).values())
            print(f"FAIL {label} {reader}: {missing} rows missing, {extra} extra; "
                  f"e.g. missing {list(want - got)[:1]}, extra {list(got - want)[:1]}")
            self.failed += 1
        else:
            print(f"ok   {label} {reader}: {sum(want.values())} rows")
            self.passed += 1


def check_all(tally, mode, warehouse, data, storage_options, readers):
    """`medallion tables` lists every table; every table at its latest version and at versions 0
    and 1, by every reader."""
    listed = listed_tables(warehouse, data)
    if listed == sorted(TABLES):
        print(f"ok   {mode} medallion tables: the {len(TABLES)} tables")
        tally.passed += 1
    else:
        print(f"FAIL {mode} medallion tables: lists {listed or 'nothing'}, not {sorted(TABLES)}")
        tally.failed += 1
    for table in TABLES:
        location = f"{warehouse}/healthcare_dlh.db/{table}"
        try:
            latest = DeltaTable(location, storage_options=storage_options).version()
        except Exception as e:  # a table that cannot be opened fails, the others are still read
            print(f"FAIL {mode} {table}: cannot open {location}: {type(e).__name__}: {e}")
            tally.failed += 1
            continue
        for version in [None, *sorted({0, min(1, latest)})]:
            want = via_medallion(warehouse, data, table, version)
            label = f"{mode} {table}@{'latest' if version is None else f'v{version}'}"
            for reader, read in readers:
                tally.compare(label, reader, lambda: read(location, version), want)


def local(tally, root):
    warehouse, data = root / "warehouse", root / "data"
    build(warehouse, data)
    con = duckdb_connection()
    with spark_session() as spark:
        check_all(tally, "local", warehouse, data, None, [
            ("deltalake", lambda loc, v: via_deltalake(loc, v, None)),
            ("polars", lambda loc, v: via_polars(loc, v, None)),
            ("duckdb", lambda loc, v: via_duckdb(con, loc, v)),
            ("spark", lambda loc, v: via_spark(spark, loc, v)),
        ])


def s3(tally, root):
    with moto_s3.server() as store:
        store.create_bucket(BUCKET)
        # medallion (a child process) and Sail take the endpoint and keys from these.
        os.environ.update(store.env())
        warehouse, data = f"s3://{BUCKET}/wh", root / "s3-data"
        build(warehouse, data)
        options = store.storage_options()
        con = duckdb_connection()
        readers = [
            ("deltalake", lambda loc, v: via_deltalake(loc, v, options)),
            ("polars", lambda loc, v: via_polars(loc, v, options)),
        ]
        why_not = duckdb_s3_secret(con, store)
        if why_not is None:
            readers.append(("duckdb", lambda loc, v: via_duckdb(con, loc, v)))
        else:
            print(f"skip s3 duckdb: its delta extension cannot reach S3 offline here: {why_not}")
            tally.skipped += 1
        with spark_session() as spark:
            readers.append(("spark", lambda loc, v: via_spark(spark, loc, v)))
            check_all(tally, "s3", warehouse, data, options, readers)


def main():
    # PySpark's collect() turns timestamps into naive datetimes in this process's time zone:
    # in UTC they are exact (no daylight-saving hour is ambiguous) and canon() reads them as UTC.
    os.environ["TZ"] = "UTC"
    time.tzset()
    # Sail logs each session at INFO on stderr; its errors reach PySpark as exceptions anyway.
    os.environ.setdefault("RUST_LOG", "error")
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for mode, run in [("local", local), ("s3", s3)]:
            start = time.monotonic()
            run(tally, root)
            print(f"interop: {mode} done in {time.monotonic() - start:.1f} s")
    skipped = f", {tally.skipped} skipped" if tally.skipped else ""
    print(f"interop: {tally.passed} passed, {tally.failed} failed{skipped}")
    sys.exit(1 if tally.failed else 0)


if __name__ == "__main__":
    main()
