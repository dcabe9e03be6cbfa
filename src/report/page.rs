//! The report's HTML: the facts and charts poured into `template.html` (the one file that holds
//! the page's skeleton and style). Every text that comes from the data is escaped here; the
//! charts' SVG is escaped by plotters.

use std::collections::BTreeMap;

use serde_json::Value;

use super::charts::{self, DailyScale, MAX_BATCHES, MAX_POINTS, thousands};
use super::gather::{Facts, HISTORY};
use crate::catalog;
use crate::error::Result;
use crate::inspect;
use crate::inspect::format::{self, Rows};

const TEMPLATE: &str = include_str!("template.html");

/// Patients drawn in daily's small multiples at most (those with the most readings).
pub const MAX_PATIENTS: usize = 48;
/// Gold bars drawn at most: the highest and lowest averages, half each.
pub const MAX_BARS: usize = 80;
/// Rows of gold's table listed at most.
pub const MAX_GOLD_ROWS: usize = 1_000;

/// Text as HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `template` with each `{{name}}` replaced by its value, in one pass over the template: a
/// value is never read again, so a name or path holding `{{gold}}` stays that text.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, end + 2))
        });
        match value {
            Some((value, used)) => {
                out.push_str(value);
                rest = &after[used..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The whole page.
pub fn render(facts: &Facts) -> Result<String> {
    Ok(fill(
        TEMPLATE,
        &[
            ("title", "Heart-rate lakehouse report".to_string()),
            ("warehouse", escape(&facts.warehouse)),
            ("at", escape(&facts.plan_label)),
            ("generated", escape(&facts.generated_at)),
            ("cards", cards(facts)),
            ("gold", gold(facts)?),
            ("daily", daily(facts)?),
            ("pipeline", pipeline(facts)?),
            ("tables", tables(facts)?),
        ],
    ))
}

/// A double as `show` prints it: the shortest text that reads back as the same value, with
/// `.0` on whole numbers and an exponent where a plain decimal would be long (`5e-324`).
fn exact(value: f64) -> String {
    format!("{value:?}")
}

/// `1 batch`, `2 batches`, `1,000 batches`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!(
        "{} {}",
        thousands(n as i64),
        if n == 1 { one } else { many }
    )
}

fn figure(svg: &str, caption: &str) -> String {
    format!("<figure>{svg}<figcaption>{caption}</figcaption></figure>\n")
}

fn empty(text: &str) -> String {
    format!("<p class=\"empty\">{}</p>\n", escape(text))
}

/// The headline numbers.
fn cards(facts: &Facts) -> String {
    let rows_of = |name: &str| {
        facts
            .tables
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.rows)
    };
    let mut cards = Vec::new();
    if let Some(gold) = &facts.gold {
        cards.push((
            thousands(gold.rows.len() as i64),
            "patients in gold".to_string(),
        ));
    }
    if let Some(rows) = rows_of(catalog::SILVER.name) {
        cards.push((thousands(rows as i64), "readings in silver".to_string()));
    }
    if let Some(rows) = rows_of(catalog::BRONZE.name) {
        cards.push((
            thousands(rows as i64),
            "rows delivered to bronze".to_string(),
        ));
    }
    if !facts.batches.is_empty() {
        let label = if facts.batches.len() == 1 {
            "bronze batch recorded"
        } else {
            "bronze batches recorded"
        };
        cards.push((thousands(facts.batches.len() as i64), label.to_string()));
    }
    let set_aside = facts.quarantined_bronze.unwrap_or(0) + facts.quarantined_silver.unwrap_or(0);
    cards.push((thousands(set_aside as i64), "rows quarantined".to_string()));
    cards.push((
        thousands(facts.waiting.unwrap_or(0) as i64),
        "rows waiting for their patient".to_string(),
    ));
    let items: String = cards
        .iter()
        .map(|(value, label)| format!("<li><b>{value}</b><span>{}</span></li>", escape(label)))
        .collect();
    format!("<ul class=\"cards\">{items}</ul>")
}

fn gold(facts: &Facts) -> Result<String> {
    let Some(gold) = &facts.gold else {
        return Ok(empty(&format!(
            "{} is not there (yet): run `medallion gold`.",
            catalog::GOLD.name
        )));
    };
    if gold.rows.is_empty() {
        return Ok(empty(&format!(
            "{} v{} has no rows.",
            catalog::GOLD.name,
            gold.version
        )));
    }
    let mut html = String::new();
    let drawn: Vec<_> = if gold.rows.len() > MAX_BARS {
        let half = MAX_BARS / 2;
        gold.rows[..half]
            .iter()
            .chain(&gold.rows[gold.rows.len() - half..])
            .cloned()
            .collect()
    } else {
        gold.rows.clone()
    };
    let mut caption = format!(
        "{} v{}: {} patients, highest average first; the line runs from the lowest to the \
         highest reading (negative readings are device faults).",
        catalog::GOLD.name,
        gold.version,
        thousands(gold.rows.len() as i64)
    );
    if drawn.len() < gold.rows.len() {
        caption.push_str(&format!(
            " The {} highest and {} lowest are drawn; the table lists them all.",
            MAX_BARS / 2,
            MAX_BARS / 2
        ));
    }
    let omitted =
        (drawn.len() < gold.rows.len()).then(|| (MAX_BARS / 2, gold.rows.len() - drawn.len()));
    html.push_str(&figure(
        &charts::gold_bars(&drawn, omitted)?,
        &escape(&caption),
    ));
    html.push_str("<details><summary>The numbers</summary>\n<table id=\"gold-data\"><thead><tr>\
        <th>patient</th><th class=\"n\">mrn</th><th class=\"n\">avg_heartrate</th>\
        <th class=\"n\">min_heartrate</th><th class=\"n\">max_heartrate</th><th class=\"n\">count</th>\
        </tr></thead><tbody>\n");
    for row in gold.rows.iter().take(MAX_GOLD_ROWS) {
        // The table's values as `show` prints them (the chart's labels are rounded).
        let number = |v: Option<f64>| v.map(exact).unwrap_or_default();
        html.push_str(&format!(
            "<tr><td><bdi>{}</bdi></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            escape(row.name.as_deref().unwrap_or("")),
            row.mrn,
            row.avg.map(|a| a.to_string()).unwrap_or_default(),
            number(row.min),
            number(row.max),
            row.count
        ));
    }
    html.push_str("</tbody></table>\n");
    if gold.rows.len() > MAX_GOLD_ROWS {
        html.push_str(&empty(&format!(
            "The first {MAX_GOLD_ROWS} of {} rows: `medallion show {}` lists them all.",
            gold.rows.len(),
            catalog::GOLD.name
        )));
    }
    html.push_str("</details>\n");
    Ok(html)
}

fn daily(facts: &Facts) -> Result<String> {
    let Some(daily) = &facts.daily else {
        return Ok(empty(&format!(
            "{} is not there (yet): run `medallion gold`.",
            catalog::DAILY.name
        )));
    };
    if daily.patients.is_empty() {
        return Ok(empty(&format!(
            "{} v{} has no rows.",
            catalog::DAILY.name,
            daily.version
        )));
    }
    let names: BTreeMap<i64, String> = facts
        .gold
        .iter()
        .flat_map(|g| g.rows.iter())
        .map(|r| (r.mrn, r.label()))
        .collect();
    // The patients with the most readings, then in mrn order.
    let mut chosen: Vec<(&i64, &Vec<_>)> = daily.patients.iter().collect();
    chosen.sort_by_key(|(mrn, days)| {
        (
            std::cmp::Reverse(
                days.iter()
                    .map(|d: &super::gather::Day| d.count)
                    .sum::<i64>(),
            ),
            **mrn,
        )
    });
    chosen.truncate(MAX_PATIENTS);
    chosen.sort_by_key(|(mrn, _)| **mrn);
    let binned: Vec<(i64, Vec<_>)> = chosen
        .iter()
        .map(|(mrn, days)| (**mrn, charts::bin_days(days, MAX_POINTS)))
        .collect();
    let Some(scale) = DailyScale::of(binned.iter().map(|(_, d)| d.as_slice())) else {
        return Ok(empty("daily has no readings to draw."));
    };
    let most_days = daily.patients.values().map(Vec::len).max().unwrap_or(0);
    let mut html = format!(
        "<p class=\"note\">{} v{}: {} rows. Each chart is one patient's daily average, on the \
         same heart-rate scale; the red strip along the bottom marks the days with a device-fault \
         reading (a negative value), which pulls that day's average down.{}{}</p>\n<div class=\"grid\">\n",
        catalog::DAILY.name,
        daily.version,
        thousands(daily.rows as i64),
        if most_days > MAX_POINTS {
            format!(
                " Up to {} days per patient: each point averages consecutive days (at most \
                 {MAX_POINTS} points).",
                thousands(most_days as i64)
            )
        } else {
            String::new()
        },
        if daily.patients.len() > MAX_PATIENTS {
            format!(
                " The {MAX_PATIENTS} patients with the most readings of {} are drawn.",
                thousands(daily.patients.len() as i64)
            )
        } else {
            String::new()
        },
    );
    for (mrn, days) in &binned {
        let title = names
            .get(mrn)
            .cloned()
            .unwrap_or_else(|| format!("mrn {mrn}"));
        let all = &daily.patients[mrn];
        let faulty = all.iter().filter(|d| d.min < 0.0).count();
        html.push_str(&format!(
            "<figure>{}<figcaption>{} days, {} with a device fault</figcaption></figure>\n",
            charts::daily_line(&title, days, scale)?,
            thousands(all.len() as i64),
            thousands(faulty as i64)
        ));
    }
    html.push_str("</div>\n");
    Ok(html)
}

fn pipeline(facts: &Facts) -> Result<String> {
    let mut html = String::from("<h3>Bronze batches</h3>\n");
    if facts.batches.is_empty() {
        html.push_str(&empty(
            "No batch recorded: the bronze stream's checkpoint holds no progress record (yet).",
        ));
    } else {
        let mut durations: Vec<u64> = facts.batches.iter().map(|b| b.duration_ms).collect();
        durations.sort_unstable();
        let median = durations[durations.len() / 2];
        let rows = facts
            .batches
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b.rows));
        let mut caption = format!(
            "{} recorded ({} rows read), median latency {} ms, longest {} ms; red: rows \
             quarantined in that batch.",
            plural(facts.batches.len(), "batch", "batches"),
            thousands(rows as i64),
            median,
            durations.last().copied().unwrap_or(0)
        );
        if facts.batches.len() > MAX_BATCHES {
            caption.push_str(&format!(" The newest {MAX_BATCHES} are drawn."));
        }
        if let Some(first) = facts.batches_before {
            caption.push_str(&format!(
                " Batches before {first} have no progress record left (the checkpoint keeps \
                 the newest 1,000)."
            ));
        }
        html.push_str(&figure(
            &charts::batches(&facts.batches)?,
            &escape(&caption),
        ));
    }
    for warning in &facts.warnings {
        html.push_str(&format!(
            "<p class=\"note\">warning: {}</p>\n",
            escape(warning)
        ));
    }
    html.push_str("<h3>Rows set aside</h3>\n<table><tbody>\n");
    for (label, value) in [
        (
            format!(
                "{} (unreadable files and elements)",
                catalog::BRONZE_QUARANTINE.name
            ),
            facts.quarantined_bronze,
        ),
        (
            format!(
                "{} (refused by silver, with the reason)",
                catalog::SILVER_QUARANTINE.name
            ),
            facts.quarantined_silver,
        ),
        (
            format!("{} (patient not known yet)", catalog::SILVER_WAITING.name),
            facts.waiting,
        ),
    ] {
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>\n",
            escape(&label),
            value.map_or("not created".to_string(), |v| thousands(v as i64))
        ));
    }
    html.push_str("</tbody></table>\n<h3>Expectations</h3>\n");
    if facts.quality.rows.is_empty() {
        html.push_str(&empty(
            "No expectation counted yet (the event log records them from the first run on).",
        ));
    } else {
        html.push_str(&quality_table(&facts.quality));
    }
    html.push_str(&format!(
        "<h3>The newest events</h3>\n<p class=\"note\">The newest runs, progress, errors and \
         maintenance of {} (each expectation's counts are in the table above); `medallion events` \
         lists them all.</p>\n",
        catalog::PIPELINE_EVENTS.name
    ));
    if facts.events.rows.is_empty() {
        html.push_str(&empty("No event logged yet."));
    } else {
        html.push_str(&events_table(&facts.events));
    }
    Ok(html)
}

/// A JSON value as a cell's text.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn column(rows: &Rows, name: &str) -> Option<usize> {
    rows.columns.iter().position(|c| c == name)
}

fn quality_table(rows: &Rows) -> String {
    let at = |name| column(rows, name);
    let mut html = String::from(
        "<table id=\"quality\"><thead><tr><th>table</th><th>check</th><th>action</th>\
         <th class=\"n\">passed</th><th class=\"n\">failed</th><th>pass rate</th><th>condition</th>\
         </tr></thead><tbody>\n",
    );
    for row in &rows.rows {
        let get = |name| cell(at(name).and_then(|i| row.get(i)));
        let rate = at("pass_rate")
            .and_then(|i| row.get(i))
            .and_then(Value::as_f64);
        let meter = match rate {
            Some(rate) => format!(
                "<meter min=\"0\" max=\"1\" value=\"{rate}\"></meter> {:.2}%",
                rate * 100.0
            ),
            None => "no rows".to_string(),
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td>{meter}</td><td><code>{}</code></td></tr>\n",
            escape(&get("table")),
            escape(&get("check")),
            escape(&get("action")),
            escape(&get("passed")),
            escape(&get("failed")),
            escape(&get("condition")),
        ));
    }
    html.push_str("</tbody></table>\n");
    html
}

fn events_table(rows: &Rows) -> String {
    let names = [
        "timestamp",
        "job",
        "table_name",
        "event_type",
        "level",
        "message",
    ];
    let mut html = String::from("<table id=\"events\"><thead><tr>");
    for name in names {
        html.push_str(&format!("<th>{name}</th>"));
    }
    html.push_str("</tr></thead><tbody>\n");
    for row in &rows.rows {
        let get = |name| cell(column(rows, name).and_then(|i| row.get(i)));
        let level = get("level");
        let class = if matches!(level.as_str(), "ERROR" | "WARN") {
            format!(" class=\"{level}\"")
        } else {
            String::new()
        };
        html.push_str(&format!("<tr{class}>"));
        for name in names {
            let text = get(name);
            // `2026-12-03 11:12:08.482`: to the millisecond, on one line.
            let text = match name {
                "timestamp" => text.replace('T', " ").chars().take(23).collect(),
                _ => text,
            };
            html.push_str(&format!("<td>{}</td>", escape(&text)));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</tbody></table>\n");
    html
}

fn tables(facts: &Facts) -> Result<String> {
    let mut html = String::from(
        "<table id=\"table-list\"><thead><tr><th>table</th><th class=\"n\">version</th>\
         <th class=\"n\">rows</th><th class=\"n\">files</th><th class=\"n\">bytes</th>\
         <th>last commit</th><th>consumed</th></tr></thead><tbody>\n",
    );
    for t in &facts.tables {
        let version = if t.latest > t.version {
            format!("{} (latest {})", t.version, t.latest)
        } else {
            t.version.to_string()
        };
        let last = match (t.last_commit, &t.operation) {
            (Some(ms), Some(op)) => format!("{} {op}", format::plain(&format::millis(ms))),
            (Some(ms), None) => format::plain(&format::millis(ms)),
            (None, _) => String::new(),
        };
        let consumed = inspect::positions_text(&t.consumed);
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&t.name),
            escape(&version),
            t.rows.map_or("?".to_string(), |r| thousands(r as i64)),
            thousands(t.files as i64),
            thousands(t.bytes),
            escape(&last),
            escape(&consumed)
        ));
    }
    html.push_str("</tbody></table>\n<h3>Lineage</h3>\n");
    html.push_str(&figure(
        &charts::lineage(&facts.tables)?,
        "What flows where: each arrow says which upstream version (or bronze batch) the \
         consumer recorded in its own commit; grey arrows lead to rows set aside (kept, with the reason).",
    ));
    html.push_str("<h3>Versions over time</h3>\n");
    html.push_str(&figure(
        &charts::versions(&facts.tables)?,
        &escape(&format!(
            "Each table's version by commit time (the newest {HISTORY} commits still in its log)."
        )),
    ));
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_text_cannot_become_markup() {
        let cases = [
            ("plain", "plain"),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            (
                "Tom & \"Jerry\" 'x'",
                "Tom &amp; &quot;Jerry&quot; &#39;x&#39;",
            ),
        ];
        for (text, html) in cases {
            assert_eq!(escape(text), html);
        }
    }

    #[test]
    fn a_value_holding_a_placeholder_stays_text() {
        let cases = [
            ("<p>{{a}}</p><p>{{b}}</p>", "<p>{{b}}</p><p>B</p>"),
            ("{{a}}{{a}}", "{{b}}{{b}}"),
            ("{{unknown}} {{a", "{{unknown}} {{a"),
            ("no placeholder", "no placeholder"),
            ("{{b}}}}", "B}}"),
        ];
        for (template, filled) in cases {
            let values = [("a", "{{b}}".to_string()), ("b", "B".to_string())];
            assert_eq!(fill(template, &values), filled, "{template}");
        }
    }

    #[test]
    fn numbers_in_the_table_read_back_as_the_table_s() {
        for (value, text) in [
            (999.999, "999.999"),
            (70.0, "70.0"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
            (-100.5, "-100.5"),
        ] {
            assert_eq!(exact(value), text);
        }
    }

    #[test]
    fn every_placeholder_of_the_template_is_filled() {
        let page = render(&Facts::default()).unwrap();
        assert!(!page.contains("{{"), "{page}");
        assert!(page.contains("id=\"gold\"") && page.contains("id=\"tables\""));
        // Nothing is fetched: no script, no external reference.
        for fetched in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
            assert!(!page.contains(fetched), "{fetched}");
        }
    }
}
