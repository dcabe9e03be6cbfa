//! `medallion report`: the HTML file read back as a user's browser would show it: every section
//! there, gold's bars and table equal to gold's rows, a past version's numbers, an empty
//! warehouse refused without a file, hostile names and absurd values drawn safely, long series
//! kept small.

use deltalake::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;

use crate::common::Workspace;
use crate::silver_gold::{fixture, reading};

const GOLD: &str = "fact_heartrate_gold";
const DAILY: &str = "fact_heartrate_daily";

/// Run `report --out <ws>/report.html ARGS`; the file's text.
fn report(ws: &Workspace, args: &[&str]) -> String {
    let out = ws.dir.path().join("report.html");
    let mut all = vec!["report", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    let summary = ws.run_ok(&all);
    assert!(summary.contains("report: wrote"), "{summary}");
    std::fs::read_to_string(out).unwrap()
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of `html` between `from` and the next `to` after it.
fn between<'a>(html: &'a str, from: &str, to: &str) -> &'a str {
    let start = html
        .find(from)
        .unwrap_or_else(|| panic!("{from} not in the report"))
        + from.len();
    let end = html[start..]
        .find(to)
        .unwrap_or_else(|| panic!("{to} after {from}"))
        + start;
    &html[start..end]
}

/// The cells of each body row of the table with `id`, tags stripped, unescaped.
fn cells(html: &str, id: &str) -> Vec<Vec<String>> {
    let table = between(html, &format!("<table id=\"{id}\">"), "</table>");
    let body = between(table, "<tbody>", "</tbody>");
    body.split("<tr")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let inner = &cell[cell.find('>').unwrap() + 1..];
                    let inner = &inner[..inner.find("</td>").unwrap()];
                    unescape(&strip_tags(inner))
                })
                .collect()
        })
        .collect()
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        match c {
            '<' => inside = true,
            '>' => inside = false,
            _ if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every `<text>` element's content in an SVG, unescaped.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .map(|t| {
            let inner = &t[t.find('>').unwrap() + 1..];
            unescape(inner[..inner.find("</text>").unwrap()].trim())
        })
        .collect()
}

/// A reading as the report prints it (one decimal at most).
fn bpm(value: f64) -> String {
    let text = format!("{:.1}", (value * 10.0).round() / 10.0);
    let text = text.strip_suffix(".0").unwrap_or(&text).to_string();
    if text == "-0" { "0".into() } else { text }
}

/// Gold's rows read from the table: (name, mrn, avg, min, max, count), highest average first.
fn gold_rows(ws: &Workspace) -> Vec<(String, i64, i64, f64, f64, i64)> {
    let mut rows = Vec::new();
    for batch in ws.rows(GOLD) {
        let col =
            |name: &str, kind: &DataType| cast(batch.column_by_name(name).unwrap(), kind).unwrap();
        let name = col("patient_name", &DataType::Utf8);
        let name = name.as_any().downcast_ref::<StringArray>().unwrap();
        let ints = |n: &str| {
            col(n, &DataType::Int64)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone()
        };
        let floats = |n: &str| {
            col(n, &DataType::Float64)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap()
                .clone()
        };
        let (mrn, avg, count) = (ints("mrn"), ints("avg_heartrate"), ints("count"));
        let (min, max) = (floats("min_heartrate"), floats("max_heartrate"));
        for i in 0..batch.num_rows() {
            rows.push((
                if name.is_null(i) {
                    String::new()
                } else {
                    name.value(i).to_string()
                },
                mrn.value(i),
                avg.value(i),
                min.value(i),
                max.value(i),
                count.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| (std::cmp::Reverse(r.2), r.1));
    rows
}

fn thousands(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Gold's rows as the report's table and bars must show them.
fn assert_gold_shown(ws: &Workspace, html: &str) {
    let gold = gold_rows(ws);
    assert!(!gold.is_empty());
    let table: Vec<Vec<String>> = gold
        .iter()
        .map(|(name, mrn, avg, min, max, count)| {
            vec![
                name.clone(),
                mrn.to_string(),
                avg.to_string(),
                format!("{min:?}"),
                format!("{max:?}"),
                count.to_string(),
            ]
        })
        .collect();
    assert_eq!(cells(html, "gold-data"), table);
    // The bars: one label per patient and one value label per bar, in the gold chart.
    let chart = between(html, "<section id=\"gold\">", "</figure>");
    let labels = texts(chart);
    for (name, mrn, avg, min, max, count) in &gold {
        let label = format!("{name} ({mrn})");
        assert!(labels.contains(&label), "{label} not among {labels:?}");
        let value = format!(
            "{avg} bpm ({}–{}) · {} readings",
            bpm(*min),
            bpm(*max),
            thousands(*count)
        );
        assert_eq!(
            labels.iter().filter(|l| **l == value).count(),
            gold.iter()
                .filter(|g| (g.2, bpm(g.3), bpm(g.4), g.5) == (*avg, bpm(*min), bpm(*max), *count))
                .count(),
            "{value} among {labels:?}"
        );
    }
}

#[test]
fn the_report_of_the_fixture_has_every_section_and_gold_s_numbers() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let html = report(&ws, &[]);
    for section in ["gold", "daily", "pipeline", "tables"] {
        assert!(
            html.contains(&format!("<section id=\"{section}\">")),
            "{section}"
        );
    }
    assert_gold_shown(&ws, &html);
    // Daily: a small chart per patient with readings in daily.
    let daily = between(&html, "<section id=\"daily\">", "</section>");
    assert_eq!(daily.matches("<svg").count(), 2, "{daily}");
    assert!(daily.contains("Ada Lovelace (10000001)") && daily.contains("Smith, J. (20000002)"));
    // The pipeline: the bronze batch, the rows set aside (1 refused, 1 waiting), the events.
    let pipeline = between(&html, "<section id=\"pipeline\">", "</section>");
    assert!(
        pipeline.contains("1 batch recorded (6 rows read)"),
        "{pipeline}"
    );
    let set_aside: Vec<String> = pipeline
        .split("<td class=\"n\">")
        .skip(1)
        .take(3)
        .map(|c| c[..c.find('<').unwrap()].to_string())
        .collect();
    assert_eq!(set_aside, ["0", "1", "1"], "{pipeline}");
    let events = cells(&html, "events");
    assert!(
        events
            .iter()
            .any(|e| e[1] == "pipeline" && e[3] == "run_end"),
        "{events:?}"
    );
    // The tables: each with its version, rows and what it consumed; the lineage's labels.
    let tables = cells(&html, "table-list");
    let gold = tables.iter().find(|t| t[0] == GOLD).expect("gold listed");
    assert_eq!(gold[1], ws.version(GOLD).unwrap().to_string());
    assert_eq!(gold[2], "2");
    assert!(gold[6].starts_with("fact_heartrate_silver v"), "{gold:?}");
    let lineage = between(&html, "<h3>Lineage</h3>", "</figure>");
    let labels = texts(lineage);
    assert!(labels.contains(&"batch 0".to_string()), "{labels:?}");
    assert!(
        labels.iter().any(|l| l.starts_with("consumed v")),
        "{labels:?}"
    );
    // Self-contained: nothing is fetched.
    for fetched in ["<script", "src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(fetched), "{fetched}");
    }
}

#[test]
fn a_past_version_of_gold_shows_that_version_s_numbers() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let first = report(&ws, &[]);
    let first_version = ws.version(GOLD).unwrap();
    let first_daily = ws.version(DAILY).unwrap();
    // New readings for Ada change her average; a later refresh writes new versions.
    ws.write(
        "healthcare/streaming/tracker/02.json",
        &format!(
            "[{}, {}]",
            reading("1", "150", "10000001", "1601600000"),
            reading("1", "160", "10000001", "1601700000")
        ),
    );
    ws.run_ok(&["pipeline"]);
    assert!(ws.version(GOLD).unwrap() > first_version);
    let latest = report(&ws, &[]);
    assert_gold_shown(&ws, &latest);
    assert_ne!(cells(&latest, "gold-data"), cells(&first, "gold-data"));

    let past = report(&ws, &["--version", &first_version.to_string()]);
    assert_eq!(cells(&past, "gold-data"), cells(&first, "gold-data"));
    assert!(
        past.contains(&format!("{GOLD} v{first_version} (committed ")),
        "header"
    );
    // Daily as the same refresh left it.
    let daily_note = |html: &str| between(html, "<section id=\"daily\">", "</p>").to_string();
    assert!(
        daily_note(&past).contains(&format!("{DAILY} v{first_daily}: ")),
        "{}",
        daily_note(&past)
    );
    assert_eq!(daily_note(&past), daily_note(&first));
    // The same instant named as a time.
    let commit_time = between(&past, "(committed ", ")").to_string();
    let as_of = report(&ws, &["--as-of", &commit_time]);
    assert_eq!(cells(&as_of, "gold-data"), cells(&first, "gold-data"));

    let err = ws.run_err(&["report", "--version", "99"], 1);
    assert!(err.contains("has no version 99"), "{err}");
}

#[test]
fn an_empty_warehouse_is_a_clear_error_and_leaves_the_old_file_alone() {
    let ws = Workspace::new();
    let out = ws.dir.path().join("report.html");
    std::fs::write(&out, "an older report").unwrap();
    let err = ws.run_err(&["report", "--out", out.to_str().unwrap()], 2);
    assert!(
        err.contains("has no tables yet") && err.contains("no file was written"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "an older report");
    let folder = ws.dir.path().to_str().unwrap().to_string();
    let err = ws.run_err(&["report", "--out", &folder], 2);
    assert!(err.contains("is a folder"), "{err}");
}

#[test]
fn a_warehouse_without_gold_yet_says_so_in_its_sections() {
    let ws = fixture();
    ws.run_ok(&["patients"]);
    ws.run_ok(&["bronze"]);
    let html = report(&ws, &[]);
    assert!(html.contains("fact_heartrate_gold is not there (yet): run `medallion gold`."));
    assert!(html.contains("fact_heartrate_daily is not there (yet)"));
    assert!(html.contains("1 batch recorded"));
}

#[test]
fn hostile_names_and_absurd_values_are_drawn_as_text_never_markup() {
    let ws = Workspace::new();
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n1,\"<script>alert('x')</script> & Co\"\n2,Zero\n",
    );
    // 1e300 is quarantined by silver (out of a heart rate's range); -0.0, 1970 and 9999 are
    // valid.
    let rows = [
        reading("1", "72", "1", "0"),
        reading("1", "-0.0", "1", "60"),
        reading("1", "1e300", "1", "120"),
        reading("2", "-0.0", "2", "253402300799"),
        reading("2", "70", "2", "86400"),
    ];
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!("[{}]", rows.join(",")),
    );
    ws.run_ok(&["pipeline"]);
    let html = report(&ws, &[]);
    assert!(!html.contains("<script"), "markup from the data");
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
    assert_gold_shown(&ws, &html);
    let tables = cells(&html, "table-list");
    let refused = tables
        .iter()
        .find(|t| t[0] == "fact_heartrate_silver_quarantine");
    assert_eq!(refused.map(|t| t[2].as_str()), Some("1"), "{tables:?}");
}

#[test]
fn a_long_daily_series_is_binned_and_the_file_stays_small() {
    let ws = Workspace::new();
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n7,Long Series\n",
    );
    // 2,000 days, one reading each, a device fault every 100th day.
    let rows: Vec<String> = (0..2_000)
        .map(|d| {
            let rate = if d % 100 == 0 {
                "-5".to_string()
            } else {
                format!("{}", 60 + d % 30)
            };
            reading("1", &rate, "7", &(d as i64 * 86_400 + 3_600).to_string())
        })
        .collect();
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!("[{}]", rows.join(",")),
    );
    ws.run_ok(&["pipeline"]);
    let html = report(&ws, &[]);
    let daily = between(&html, "<section id=\"daily\">", "</section>");
    assert!(daily.contains("2,000 rows"), "{}", &daily[..400]);
    let points: usize = daily
        .split("points=\"")
        .skip(1)
        .map(|p| p[..p.find('"').unwrap()].split_whitespace().count())
        .sum();
    assert!(points > 100 && points <= 240, "{points} points drawn");
    // The 20 fault days fall in 20 separate points: 20 red rectangles, and the caption counts them.
    assert_eq!(daily.matches("fill=\"#C0392B\"").count(), 20, "fault marks");
    assert!(daily.contains("2,000 days, 20 with a device fault"));
    assert!(html.len() < 2 * 1024 * 1024, "{} bytes", html.len());
}

#[test]
fn open_hands_the_file_to_the_desktop_s_opener_or_says_it_could_not() {
    use std::os::unix::fs::PermissionsExt;
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let out = ws.dir.path().join("r.html");
    // A stand-in for xdg-open that records what it was asked to open.
    let bin = ws.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let opened = ws.dir.path().join("opened");
    let script = bin.join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = ws
        .medallion()
        .env("PATH", &bin)
        .args(["report", "--open", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for _ in 0..50 {
        if opened.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&opened).unwrap().trim(),
        out.to_str().unwrap()
    );
    // No opener at all: the file is written, a warning says how to open it, exit 0.
    let empty = ws.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = ws
        .medallion()
        .env("PATH", &empty)
        .args(["report", "--open", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("could not open a browser") && stderr.contains("file://"),
        "{stderr}"
    );
}

#[test]
fn regression_a_name_holding_a_placeholder_stays_text() {
    // The template was filled one placeholder after another: a patient named `{{tables}}`
    // had the tables section pasted into the gold chart.
    let ws = Workspace::new();
    ws.write(
        "healthcare/batch/patient_info.csv",
        "mrn,name\n1,{{tables}} {{gold}}\n2,Plain\n",
    );
    let rows = [
        reading("1", "70", "1", "1601510459"),
        reading("2", "80", "2", "1601510459"),
    ];
    ws.write(
        "healthcare/streaming/tracker/01.json",
        &format!("[{}]", rows.join(",")),
    );
    ws.run_ok(&["pipeline"]);
    let html = report(&ws, &[]);
    assert_eq!(html.matches("id=\"table-list\"").count(), 1);
    assert_eq!(html.matches("id=\"gold-data\"").count(), 1);
    assert!(html.contains("{{tables}} {{gold}} (1)"));
    assert_gold_shown(&ws, &html);
}

#[test]
fn regression_a_damaged_progress_record_is_skipped_with_a_warning_never_an_overflow() {
    // A foreign or absurd line in progress.jsonl failed the whole report, or overflowed a sum
    // ("internal error"), or showed a negative row count.
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let progress = ws
        .warehouse()
        .join("healthcare_dlh.db/fact_heartrate_bronze/_checkpoint/progress.jsonl");
    let mut text = std::fs::read_to_string(&progress).unwrap();
    text.push_str("garbage\n{\"hello\": 1}\n");
    text.push_str(
        "{\"batchId\":13,\"timestamp\":\"2026-01-01T00:00:00Z\",\"numInputRows\":18446744073709551615,\"batchDuration\":1,\"tableVersion\":1}\n",
    );
    text.push_str(
        "{\"batchId\":9223372036854775807,\"timestamp\":\"2026-01-01T00:00:00Z\",\"numInputRows\":1,\"batchDuration\":1,\"tableVersion\":1}\n",
    );
    std::fs::write(&progress, text).unwrap();
    let out = ws.dir.path().join("report.html");
    let run = ws
        .medallion()
        .args(["report", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(stderr.matches("warning: ").count(), 4, "{stderr}");
    assert!(
        stderr.contains("progress.jsonl:2: skipped, not JSON"),
        "{stderr}"
    );
    assert!(!stderr.contains("internal error"), "{stderr}");
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.contains("1 batch recorded (6 rows read)"));
}

#[test]
fn a_time_before_every_table_and_an_output_that_is_no_file_are_refused() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let err = ws.run_err(&["report", "--as-of", "1900-01-01"], 2);
    assert!(
        err.contains("no table of the warehouse") && err.contains("no file was written"),
        "{err}"
    );
    let fifo = ws.dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let err = ws.run_err(&["report", "--out", fifo.to_str().unwrap()], 2);
    assert!(err.contains("is not a regular file"), "{err}");
    let err = ws.run_err(&["report", "--out", "no/such/folder/r.html"], 2);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn a_closed_stdout_still_leaves_the_whole_file() {
    let ws = fixture();
    ws.run_ok(&["pipeline"]);
    let out = ws.dir.path().join("r.html");
    // `| head -1` reads the summary's first line, then the pipe is closed.
    let (first, run) = ws.read_first_line_then_close(&["report", "--out", out.to_str().unwrap()]);
    assert!(first.starts_with("report: wrote"), "{first}");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.trim_end().ends_with("</html>"));
    assert_gold_shown(&ws, &html);
}

#[test]
fn reports_taken_while_a_stream_and_refreshes_write_are_each_whole_and_consistent() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let ws = Workspace::new();
    ws.run_ok(&["generate", "--patients", "5", "--months", "2"]);
    ws.run_ok(&["pipeline"]);
    let stream = ws
        .medallion()
        .env(crate::common::SETTLE, "0")
        .args(["bronze", "--trigger", "every=50ms", "--auto-compact", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = ws.dir.path().join("live.html");
    let bronze_before = ws.version("fact_heartrate_bronze").unwrap();
    for round in 0..6 {
        // A new month arrives, silver and gold refresh beside the stream, a report is taken.
        ws.run_ok(&["generate", "--append"]);
        if round % 2 == 1 {
            ws.run_ok(&["silver"]);
            ws.run_ok(&["gold"]);
        }
        let html = report_to(&ws, &out, &[]);
        assert!(html.trim_end().ends_with("</html>"), "round {round}");
        // The gold shown is one version's whole table: its bars and table hold as many rows
        // as the tables section says that version has.
        let rows = cells(&html, "gold-data").len();
        let listed = cells(&html, "table-list");
        let gold = listed.iter().find(|t| t[0] == GOLD).expect("gold listed");
        assert_eq!(rows.to_string(), gold[2], "round {round}");
        assert!(rows > 0, "round {round}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stream_is_idle(&ws) {
        assert!(
            Instant::now() < deadline,
            "the stream did not take the files"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The stream did commit meanwhile.
    assert!(ws.version("fact_heartrate_bronze").unwrap() > bronze_before);
    std::process::Command::new("kill")
        .args(["-TERM", &stream.id().to_string()])
        .status()
        .unwrap();
    let ended = stream.wait_with_output().unwrap();
    assert!(
        ended.status.success(),
        "{}",
        String::from_utf8_lossy(&ended.stderr)
    );
    ws.run_ok(&["silver"]);
    ws.run_ok(&["gold"]);
    let html = report_to(&ws, &out, &[]);
    assert_gold_shown(&ws, &html);
}

/// `report --out OUT ARGS`; the file's text.
fn report_to(ws: &Workspace, out: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["report", "--out", out.to_str().unwrap()];
    all.extend_from_slice(args);
    ws.run_ok(&all);
    std::fs::read_to_string(out).unwrap()
}

/// Whether the bronze stream has no file left to take.
fn stream_is_idle(ws: &Workspace) -> bool {
    let status: serde_json::Value =
        serde_json::from_str(&ws.run_ok(&["--json", "status"])).unwrap();
    status["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table"] == "fact_heartrate_bronze" && t["files_to_ingest"] == 0)
}
