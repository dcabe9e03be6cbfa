#!/usr/bin/env python3
"""`make s3-demo`: the whole pipeline on object storage, on a local S3 (moto), and how to read it.

Starts moto on a free port, creates the bucket `lakehouse`, generates the lab's data in a temp
folder, runs `medallion pipeline` with `--warehouse s3://lakehouse/warehouse`, lists the tables,
shows gold, prints where the tables are and how to read them (PySpark through Sail, Polars), reads
gold through Sail, then stops moto. moto keeps its data in memory only: the tables are gone when
it stops. With --keep, moto (and Sail) stay up until Ctrl-C, to try the snippets.

Usage: s3_demo.py MEDALLION_BIN [--keep]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from pysail.spark import SparkConnectServer
from pyspark.sql import SparkSession

import moto_s3

BUCKET = "lakehouse"
WAREHOUSE = f"s3://{BUCKET}/warehouse"
GOLD = f"{WAREHOUSE}/healthcare_dlh.db/fact_heartrate_gold/"


def run(bin_path, data, *args, capture=False):
    """Run medallion on the S3 warehouse, showing the command; exit if it fails."""
    cmd = [bin_path, "--warehouse", WAREHOUSE, "--data", data, *args]
    if not capture:
        print(f"\n$ medallion {' '.join(args)}", flush=True)
    done = subprocess.run(cmd, text=True, capture_output=capture)
    if done.returncode != 0:
        sys.exit(f"s3-demo: {' '.join(cmd)} failed (exit {done.returncode})"
                 + (f":\n{done.stderr}" if capture else ""))
    return done.stdout


def snippets(s3, bin_path, spark_url):
    options = s3.storage_options()
    lines = [
        "",
        "How to read them (with .venv/bin/python, which has pysail, pyspark and polars):",
        "",
        "# the AWS variables that medallion, Sail and the AWS SDKs read:",
        moto_s3.exported(s3.env()),
        "",
        "# PySpark through Sail (a Spark Connect server without a JVM; set the variables first)",
        "from pysail.spark import SparkConnectServer",
        "from pyspark.sql import SparkSession",
        "server = SparkConnectServer(ip='127.0.0.1', port=0)",
        "server.start(background=True)",
        "spark = (SparkSession.builder.remote(f'sc://127.0.0.1:{server.listening_address[1]}')",
        "         .config('spark.sql.session.timeZone', 'UTC').getOrCreate())",
    ]
    if spark_url:
        lines.append(f"# (or, while this demo runs with --keep: SparkSession.builder.remote('{spark_url}'))")
    lines += [
        f"spark.read.format('delta').load('{GOLD}').show(5)",
        f"spark.read.format('delta').option('versionAsOf', 0).load('{GOLD}').count()",
        "",
        "# Polars (storage_options instead of the environment)",
        "import polars as pl",
        f"options = {json.dumps(options)}",
        f"pl.read_delta('{GOLD}', storage_options=options)",
        f"pl.read_delta('{GOLD}', version=0, storage_options=options)",
        "",
        "# medallion itself, with the variables exported",
        f"{bin_path} --warehouse {WAREHOUSE} history fact_heartrate_gold",
    ]
    return "\n".join(lines)


def wait_for_stop():
    """Until Ctrl-C (SIGINT) or SIGTERM; then the `finally` and `with` blocks stop Sail and moto."""
    got = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: got.append(signum))
    while not got:
        signal.pause()
    print(f"\ns3-demo: {signal.Signals(got[0]).name}: stopping")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("medallion", help="path of the medallion binary")
    parser.add_argument("--keep", action="store_true",
                        help="leave moto and Sail up until Ctrl-C, to try the snippets")
    args = parser.parse_args()
    bin_path = args.medallion
    # Sail logs each session at INFO on stderr; its errors reach PySpark as exceptions anyway.
    os.environ.setdefault("RUST_LOG", "error")

    with moto_s3.server() as s3, tempfile.TemporaryDirectory() as data:
        s3.create_bucket(BUCKET)
        # medallion (a child process) and Sail take the endpoint and keys from the environment.
        os.environ.update(s3.env())
        print(f"s3-demo: moto's S3 on {s3.endpoint}, bucket {BUCKET}; source data in {data}")
        run(bin_path, data, "generate")
        start = time.monotonic()
        run(bin_path, data, "pipeline")
        print(f"(pipeline on S3: {time.monotonic() - start:.1f} s)")
        run(bin_path, data, "tables")
        run(bin_path, data, "show", "fact_heartrate_gold", "--limit", "5")

        listed = run(bin_path, data, "tables", "--format", "json", capture=True)
        names = [json.loads(line)["table"] for line in listed.splitlines() if line.strip()]
        print(f"\nWhere the tables are (endpoint {s3.endpoint}, path-style, plain HTTP):")
        for name in names:
            print(f"  {WAREHOUSE}/healthcare_dlh.db/{name}/")
        if not names:
            print(f"  (`medallion tables` lists none under {WAREHOUSE})")

        server = SparkConnectServer(ip="127.0.0.1", port=0)
        server.start(background=True)
        try:
            spark_url = f"sc://127.0.0.1:{server.listening_address[1]}"
            print(snippets(s3, bin_path, spark_url if args.keep else None))
            spark = (SparkSession.builder.remote(spark_url)
                     .config("spark.sql.session.timeZone", "UTC").getOrCreate())
            print(f"\nPySpark through Sail ({spark_url}), gold at its latest version:")
            spark.read.format("delta").load(GOLD).show(5, truncate=False)
            first = spark.read.format("delta").option("versionAsOf", 0).load(GOLD).count()
            print(f"gold at version 0 (versionAsOf 0): {first} rows")
            if args.keep:
                print(f"\nmoto ({s3.endpoint}) and Sail ({spark_url}) stay up: Ctrl-C stops them "
                      "(moto keeps the tables in memory only: they go with it).", flush=True)
                wait_for_stop()
            spark.stop()
        finally:
            server.stop()
    print("s3-demo: moto stopped; its tables are gone (moto keeps them in memory only).")


if __name__ == "__main__":
    main()
