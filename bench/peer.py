#!/usr/bin/env python3
"""The Python peer of bench/run's S3 measurement: the lab's job as a plain batch, with Python
`deltalake` + Polars, into the same warehouse layout as medallion's (local folder or s3://).

    peer.py DATA WAREHOUSE      (S3: the AWS_* variables of tests/interop/moto_s3.py's env())

- patients: the patient CSV, overwritten into dim_patients;
- bronze: each tracker file, in name order, appended as its own commit
  (`write_deltalake(..., mode="append")`, through the table kept open) of the file's rows as
  strings, with lineage columns (`_source_file`, `_batch_id`, `_ingested_at`); each append is
  timed;
- silver: all of bronze read back, typed (ids, heart rate, epoch seconds to a UTC timestamp),
  cleaned (untypable rows and |heart rate| > 1000 dropped), inner-joined with the patients, the
  lab's date and time strings rendered (UTC), overwritten;
- gold: silver read back, per-patient aggregates (avg = ceil of the mean, count, min, max, first
  and last reading, sum) and per-patient, per-UTC-day aggregates, each overwritten.

What it does NOT do that medallion does (so it is cheaper per unit of work, not more capable):
no exactly-once checkpoint (no plan before a commit, no done marker after it, no txn action, no
recovery: a crash mid-bronze and a rerun append files twice); no incremental refresh (silver and
gold recompute everything and overwrite; medallion MERGEs only the changes, by silver's key and
gold's mrn); no dedup of re-delivered readings (last delivery wins in medallion); refused rows
are dropped, not quarantined with the reason; readings whose patient is missing are dropped by
the inner join, not kept waiting; no put-if-absent store probe; no progress records. The peer's
bronze append is one call that encodes the Parquet, uploads it and commits; medallion encodes
and uploads ahead of the commit (its `getBatch`), so its `addBatch` is the commit alone.

Prints one JSON object: `layer_seconds` (in process, after the imports), `append_ms` (each
bronze append), row counts, and gold as (patient_name, avg_heartrate, count) rows.
"""

import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

SOURCE = ["device_id", "heartrate", "mrn", "time"]
DB = "healthcare_dlh.db"


def storage_options(warehouse):
    if not warehouse.startswith("s3://"):
        return None
    keys = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL",
            "AWS_ALLOW_HTTP"]
    return {key: os.environ[key] for key in keys if key in os.environ}


def mark(name):
    """On S3, tell bench/run's count of moto's requests where a phase ends: an unsigned GET that
    moto's log shows (bench/run does not count it)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            opener.open(f"{endpoint}/?bench-mark={name}", timeout=10).read()
        except urllib.error.HTTPError:
            pass


def main():
    data, warehouse = Path(sys.argv[1]), sys.argv[2].rstrip("/")
    options = storage_options(warehouse)
    table = {name: f"{warehouse}/{DB}/{name}" for name in [
        "dim_patients", "fact_heartrate_bronze", "fact_heartrate_silver",
        "fact_heartrate_gold", "fact_heartrate_daily"]}
    seconds = {}

    start = time.perf_counter()
    patients = pl.read_csv(data / "healthcare/batch/patient_info.csv",
                           schema={"mrn": pl.Int64, "name": pl.String})
    write_deltalake(table["dim_patients"], patients.to_arrow(), mode="overwrite",
                    storage_options=options)
    seconds["patients"] = time.perf_counter() - start
    if options:
        mark("patients")

    start = time.perf_counter()
    append_ms = []
    bronze_rows = 0
    # After the first append, the table stays open and each append goes through it: passing the
    # URL instead opens the table again from its log on every call (all of its commits read back
    # until the first Delta checkpoint, at 100), about 4x slower per append on moto at 60 files.
    bronze_table = None
    files = sorted((data / "healthcare/streaming/tracker").glob("*.json"))
    for batch_id, path in enumerate(files):
        rows = pl.read_json(path, schema={c: pl.String for c in SOURCE}).with_columns(
            _source_file=pl.lit(str(path)),
            _batch_id=pl.lit(batch_id, dtype=pl.Int64),
            _ingested_at=pl.lit(datetime.datetime.now(datetime.timezone.utc),
                                dtype=pl.Datetime("us", "UTC")),
        )
        bronze_rows += rows.height
        began = time.perf_counter()
        if bronze_table is None:
            write_deltalake(table["fact_heartrate_bronze"], rows.to_arrow(), mode="append",
                            storage_options=options)
            bronze_table = DeltaTable(table["fact_heartrate_bronze"], storage_options=options)
        else:
            write_deltalake(bronze_table, rows.to_arrow(), mode="append")
        append_ms.append((time.perf_counter() - began) * 1000)
    seconds["bronze"] = time.perf_counter() - start
    if options:
        mark("bronze")

    start = time.perf_counter()
    bronze = pl.read_delta(table["fact_heartrate_bronze"], storage_options=options)
    names = pl.read_delta(table["dim_patients"], storage_options=options)
    silver = (
        bronze.select(
            device_id=pl.col("device_id").str.strip_chars().cast(pl.Int32, strict=False),
            mrn=pl.col("mrn").str.strip_chars().cast(pl.Int64, strict=False),
            heartrate=pl.col("heartrate").str.strip_chars().cast(pl.Float64, strict=False),
            epoch=pl.col("time").str.strip_chars().cast(pl.Float64, strict=False),
        )
        .drop_nulls()
        .filter((pl.col("device_id") > 0) & (pl.col("mrn") > 0)
                & (pl.col("heartrate").abs() <= 1000) & (pl.col("epoch") >= 0))
        .with_columns(datetime=(pl.col("epoch") * 1e6).round().cast(pl.Int64)
                      .cast(pl.Datetime("us", "UTC")))
        .join(names.select("mrn", patient_name="name"), on="mrn", how="inner")
        .select(
            "device_id", "mrn", "datetime",
            date=pl.col("datetime").dt.strftime("%m/%d/%Y"),
            time=pl.col("datetime").dt.strftime("%I:%M:%S %p %Z"),
            heartrate="heartrate", patient_name="patient_name",
        )
    )
    write_deltalake(table["fact_heartrate_silver"], silver.to_arrow(), mode="overwrite",
                    storage_options=options)
    seconds["silver"] = time.perf_counter() - start

    start = time.perf_counter()
    silver = pl.read_delta(table["fact_heartrate_silver"], storage_options=options)
    gold = silver.group_by("mrn").agg(
        patient_name=pl.col("patient_name").first(),
        avg_heartrate=pl.col("heartrate").mean().ceil().cast(pl.Int64),
        count=pl.len().cast(pl.Int64),
        min_heartrate=pl.col("heartrate").min(),
        max_heartrate=pl.col("heartrate").max(),
        first_reading=pl.col("datetime").min(),
        last_reading=pl.col("datetime").max(),
        sum_heartrate=pl.col("heartrate").sum(),
    )
    write_deltalake(table["fact_heartrate_gold"], gold.to_arrow(), mode="overwrite",
                    storage_options=options)
    daily = silver.group_by("mrn", date=pl.col("datetime").dt.date()).agg(
        avg_heartrate=pl.col("heartrate").mean(),
        min_heartrate=pl.col("heartrate").min(),
        max_heartrate=pl.col("heartrate").max(),
        count=pl.len().cast(pl.Int64),
    )
    write_deltalake(table["fact_heartrate_daily"], daily.to_arrow(), mode="overwrite",
                    storage_options=options)
    seconds["gold"] = time.perf_counter() - start

    gold_rows = gold.sort("avg_heartrate", "patient_name").select(
        "patient_name", "avg_heartrate", "count").rows()
    print(json.dumps({
        "layer_seconds": seconds,
        "append_ms": append_ms,
        "files": len(files),
        "bronze_rows": bronze_rows,
        "silver_rows": silver.height,
        "daily_rows": daily.height,
        "gold_rows": gold_rows,
    }))


if __name__ == "__main__":
    main()
