#!/usr/bin/env python3
"""The report in a real browser: `medallion report` on the lab-shaped data, loaded by headless
Chromium with networking off, its screenshot decoded and checked not to be blank.

Usage: check_report.py MEDALLION CHROMIUM OUT_DIR

Writes OUT_DIR/report.html and OUT_DIR/report.png (a build artifact, not for git) and prints
the report's size and the browser's time to load and draw it (median of 3, minus the time of
an empty page: the browser's own start). Standard library only: it runs before any venv.
"""

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

WIDTH, HEIGHT = 1100, 2400


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def offline_prefix():
    """`unshare -n` (a network namespace with no interface up) where it works; else nothing,
    and Chromium's own flags below keep it off the network."""
    try:
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            return ["unshare", "-n"]
    except FileNotFoundError:
        pass
    return []


def screenshot(chromium, prefix, page, png, profile):
    cmd = prefix + [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        # No network even without a namespace: every host unresolvable, no proxy reachable.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
        f"--window-size={WIDTH},{HEIGHT}",
        f"--screenshot={png}",
        "file://" + os.path.abspath(page),
    ]
    start = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    if result.returncode != 0 or not os.path.exists(png):
        sys.exit(f"FAILED: chromium could not take the screenshot:\n{result.stderr[-2000:]}")
    return elapsed


def pixels(png_path):
    """(width, height, rows of RGB(A) tuples) of an 8-bit RGB or RGBA PNG."""
    data = open(png_path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"FAILED: {png_path} is not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        elif kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or color not in (2, 6) or interlace:
        sys.exit(f"FAILED: unexpected PNG format (depth {depth}, colour type {color})")
    channels = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + predictor) & 0xFF
        rows.append(line)
        previous = line
    return width, height, channels, rows


def check_not_blank(png_path):
    width, height, channels, rows = pixels(png_path)
    colours, inked = set(), 0
    for line in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            rgb = tuple(line[x : x + 3])
            colours.add(rgb)
            # Not the page's background (near white or the light grey around the sections).
            if min(rgb) < 200:
                inked += 1
    sampled = (len(rows[::4])) * len(range(0, width * channels, channels * 4))
    share = inked / sampled
    print(f"screenshot: {width}x{height}, {len(colours)} colours, {share:.1%} of pixels inked")
    if (width, height) != (WIDTH, HEIGHT):
        sys.exit(f"FAILED: the screenshot is {width}x{height}, not {WIDTH}x{HEIGHT}")
    if len(colours) < 20 or share < 0.02:
        sys.exit("FAILED: the screenshot is blank (or nearly): the report did not render")


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    medallion, chromium, out_dir = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    report = os.path.join(out_dir, "report.html")
    png = os.path.join(out_dir, "report.png")
    prefix = offline_prefix()
    print(
        "browser: "
        + ("in a network namespace of its own (unshare -n)" if prefix else "no namespace here")
        + ", every host unresolvable"
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = [medallion, "--warehouse", f"{tmp}/wh", "--data", f"{tmp}/data", "-q"]
        run(base + ["generate"])
        run(base + ["pipeline"])
        run(base[:-1] + ["report", "--out", report])
        html = open(report, encoding="utf-8").read()
        for fetched in ("<script", "src=", "href=\"http", "@import", "url("):
            if fetched in html:
                sys.exit(f"FAILED: the report holds {fetched!r}: it would fetch something")
        blank = os.path.join(tmp, "blank.html")
        with open(blank, "w") as f:
            f.write("<!DOCTYPE html><title>blank</title>")
        profile = os.path.join(tmp, "profile")
        page_times, blank_times = [], []
        for _ in range(3):
            blank_times.append(screenshot(chromium, prefix, blank, os.path.join(tmp, "b.png"), profile))
            page_times.append(screenshot(chromium, prefix, report, png, profile))
    check_not_blank(png)
    load = statistics.median(page_times) - statistics.median(blank_times)
    print(
        f"report: {os.path.getsize(report) / 1024:.0f} KiB; browser load and draw "
        f"{max(load, 0.0):.2f} s beyond an empty page's (median of 3: "
        f"{statistics.median(page_times):.2f} s vs {statistics.median(blank_times):.2f} s)"
    )
    print(f"browser test passed: screenshot in {png}")


if __name__ == "__main__":
    main()
