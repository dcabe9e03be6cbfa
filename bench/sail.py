#!/usr/bin/env python3
"""Sail (pysail: a Rust/DataFusion engine behind the PySpark API, no JVM) doing the lab's job as
a batch, for bench/run's side-by-side table.

    sail.py NDJSON_DIR PATIENTS_CSV WAREHOUSE

Sail cannot read the lab's multi-line JSON arrays, so bench/run converts the tracker files to
newline-delimited JSON first (not timed). Then, in one process: a Spark Connect server started
in the background, and
- patients: the CSV, typed, overwritten into dim_patients;
- bronze: every tracker record as strings with lineage columns, as ONE commit (overwrite);
- silver: bronze read back, typed (ids, heart rate, epoch seconds to a timestamp), cleaned
  (untypable rows and |heart rate| > 1000 dropped), inner-joined with the patients, the lab's
  date and time strings rendered (UTC), overwritten;
- gold and daily: per-patient and per-patient-per-UTC-day aggregates, each overwritten.

What it does NOT do that medallion does: no stream (one batch of every file), no exactly-once
checkpoint, no MERGE (everything recomputed and overwritten), no dedup of re-deliveries (last
delivery wins in medallion), no quarantine or waiting rows, no progress records, no event log.

Prints one JSON object: `server_seconds` (the server's start), `layer_seconds` per layer,
`pipeline_seconds` (their sum) and the row counts.
"""

import json
import sys
import time


def main():
    ndjson, patients_csv, warehouse = sys.argv[1:4]
    from pysail.spark import SparkConnectServer
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    start = time.perf_counter()
    server = SparkConnectServer(port=0)
    server.start(background=True)
    _, port = server.listening_address
    spark = SparkSession.builder.remote(f"sc://localhost:{port}").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    server_seconds = time.perf_counter() - start
    table = lambda name: f"{warehouse}/healthcare_dlh.db/{name}"  # noqa: E731
    seconds = {}

    t = time.perf_counter()
    patients = (
        spark.read.option("header", True).csv(patients_csv)
        .select(F.col("mrn").cast("bigint").alias("mrn"), F.col("name"))
    )
    patients.write.format("delta").mode("overwrite").save(table("dim_patients"))
    seconds["patients"] = time.perf_counter() - t

    t = time.perf_counter()
    schema = "device_id STRING, heartrate STRING, mrn STRING, time STRING"
    bronze = (
        spark.read.schema(schema).json(ndjson)
        .withColumn("_batch_id", F.lit(0).cast("bigint"))
        .withColumn("_ingested_at", F.current_timestamp())
    )
    bronze.write.format("delta").mode("overwrite").save(table("fact_heartrate_bronze"))
    seconds["bronze"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = spark.read.format("delta").load(table("fact_heartrate_bronze"))
    dim = spark.read.format("delta").load(table("dim_patients"))
    typed = raw.select(
        F.col("device_id").cast("int").alias("device_id"),
        F.col("mrn").cast("bigint").alias("mrn"),
        F.col("time").cast("double").cast("timestamp").alias("datetime"),
        F.col("heartrate").cast("double").alias("heartrate"),
    ).where(
        F.col("device_id").isNotNull() & F.col("mrn").isNotNull()
        & F.col("datetime").isNotNull() & F.col("heartrate").isNotNull()
        & (F.abs(F.col("heartrate")) <= 1000)
    )
    silver = (
        typed.join(dim, "mrn", "inner")
        .select(
            "device_id", "mrn", "datetime",
            F.date_format("datetime", "MM/dd/yyyy").alias("date"),
            F.date_format("datetime", "hh:mm:ss a").alias("time"),
            "heartrate",
            F.col("name").alias("patient_name"),
        )
    )
    silver.write.format("delta").mode("overwrite").save(table("fact_heartrate_silver"))
    seconds["silver"] = time.perf_counter() - t

    t = time.perf_counter()
    rows = spark.read.format("delta").load(table("fact_heartrate_silver"))
    gold = rows.groupBy("mrn", "patient_name").agg(
        F.ceil(F.avg("heartrate")).alias("avg_heartrate"),
        F.count("*").alias("count"),
        F.min("heartrate").alias("min_heartrate"),
        F.max("heartrate").alias("max_heartrate"),
        F.min("datetime").alias("first_reading"),
        F.max("datetime").alias("last_reading"),
    )
    gold.write.format("delta").mode("overwrite").save(table("fact_heartrate_gold"))
    daily = rows.groupBy("mrn", F.to_date("datetime").alias("date")).agg(
        F.avg("heartrate").alias("avg_heartrate"),
        F.min("heartrate").alias("min_heartrate"),
        F.max("heartrate").alias("max_heartrate"),
        F.count("*").alias("count"),
    )
    daily.write.format("delta").mode("overwrite").save(table("fact_heartrate_daily"))
    seconds["gold"] = time.perf_counter() - t

    counts = {
        name: spark.read.format("delta").load(table(name)).count()
        for name in ("fact_heartrate_bronze", "fact_heartrate_silver", "fact_heartrate_gold")
    }
    spark.stop()
    server.stop()
    print(json.dumps({
        "server_seconds": server_seconds,
        "layer_seconds": seconds,
        "pipeline_seconds": sum(seconds.values()),
        "rows": counts,
    }))


if __name__ == "__main__":
    main()
