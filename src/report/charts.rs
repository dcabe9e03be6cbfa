//! The report's pictures: each a function of plain facts to an SVG document (a string), drawn
//! with plotters' SVG backend. Text stays text (`<text>` elements, escaped by plotters), so the
//! numbers can be read back, copied and searched; nothing is fetched, no font is embedded.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::gather::{Batch, Day, GoldRow, TableFacts};
use crate::catalog;
use crate::error::{Error, Result};
use crate::inspect;

/// Ink and paper: readable on screen and in print.
const INK: RGBColor = RGBColor(0x22, 0x22, 0x22);
const MUTED: RGBColor = RGBColor(0x77, 0x77, 0x77);
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa5);
const FAULT: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const GRID: RGBColor = RGBColor(0xe4, 0xe4, 0xe4);
const PALETTE: [RGBColor; 9] = [
    RGBColor(0x3b, 0x6e, 0xa5),
    RGBColor(0xd9, 0x82, 0x1e),
    RGBColor(0x2e, 0x8b, 0x57),
    RGBColor(0xc0, 0x39, 0x2b),
    RGBColor(0x7b, 0x4f, 0x9d),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xd4, 0x5d, 0xa8),
    RGBColor(0x55, 0x55, 0x55),
    RGBColor(0x17, 0xa2, 0xb8),
];
const FONT: &str = "sans-serif";

/// Points of a line at most: a longer series is binned ([`bin_days`]).
pub const MAX_POINTS: usize = 240;
/// Batches drawn at most (the newest).
pub const MAX_BATCHES: usize = 300;

/// A value as drawn: an absurd one (1e300 is a valid double) is drawn at the edge of a range
/// people can read, while its label says what it is.
fn drawn(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(-1e9, 1e9)
    }
}

/// A plotters failure as ours.
fn failed<E: std::fmt::Display>(chart: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Render {
        chart,
        message: e.to_string(),
    }
}

/// Draw into an SVG document of `size` pixels. A panic inside plotters (an arithmetic
/// overflow on a range it did not expect) is this chart's error, not the process's end.
fn svg(
    chart: &'static str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<String> {
    let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
            root.fill(&WHITE).map_err(failed(chart))?;
            draw(&root)?;
            root.present().map_err(failed(chart))?;
        }
        Ok(text)
    }));
    drawn.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic in the charting library".to_string());
        Err(Error::Render { chart, message })
    })
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A tick of a count's axis: whole numbers only (a tick at 0.5 would print as a second 0).
fn whole(value: &f64) -> String {
    if value.fract() == 0.0 {
        thousands(*value as i64)
    } else {
        String::new()
    }
}

/// A reading as the report prints it: at most one decimal, no trailing `.0`.
pub fn bpm(value: f64) -> String {
    if !value.is_finite() || value.abs() >= 1e9 {
        return format!("{value:.3e}");
    }
    let rounded = (value * 10.0).round() / 10.0;
    // -0.0 prints as 0.
    if rounded == 0.0 {
        return "0".to_string();
    }
    if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// The label of a gold bar's value: average, range and readings.
pub fn gold_value(row: &GoldRow) -> String {
    let avg = row
        .avg
        .map_or("no average".to_string(), |a| format!("{a} bpm"));
    let range = match (row.min, row.max) {
        (Some(min), Some(max)) => format!(" ({}–{})", bpm(min), bpm(max)),
        _ => String::new(),
    };
    format!("{avg}{range} · {} readings", thousands(row.count))
}

/// Gold as a sorted bar chart: each patient's average heart rate (highest first), the
/// min–max range as a whisker, the value and reading count beside it.
/// `omitted`: (k, count): `count` patients between `rows[k - 1]` and `rows[k]` are not drawn; a
/// row says so.
pub fn gold_bars(rows: &[GoldRow], omitted: Option<(usize, usize)>) -> Result<String> {
    const CHART: &str = "gold";
    let gap = usize::from(omitted.is_some());
    let n = (rows.len() + gap).max(1);
    let height = 60 + 22 * n as u32;
    let lowest = rows
        .iter()
        .filter_map(|r| r.min.or(r.avg.map(|a| a as f64)))
        .map(drawn)
        .fold(0.0_f64, f64::min);
    let highest = rows
        .iter()
        .filter_map(|r| r.max.or(r.avg.map(|a| a as f64)))
        .map(drawn)
        .fold(1.0_f64, f64::max);
    // Room on the right for the value labels.
    let span = highest - lowest;
    let (x_from, x_to) = (lowest.floor(), highest + span * 0.45);
    // Top to bottom, then reversed: the chart's first segment is its bottom row.
    let mut labels: Vec<String> = rows.iter().map(GoldRow::label).collect();
    if let Some((k, count)) = omitted {
        labels.insert(
            k.min(labels.len()),
            format!("… {} patients not drawn …", thousands(count as i64)),
        );
    }
    labels.reverse();
    svg(CHART, (900, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(210)
            .build_cartesian_2d(x_from..x_to, (0..n as i32).into_segmented())
            .map_err(failed(CHART))?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .max_light_lines(1)
            .bold_line_style(GRID)
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| format!("{v:.0}"))
            .x_desc(
                "heart rate (beats per minute): bar = average, line = lowest to highest reading",
            )
            .label_style((FONT, 12).into_font().color(&INK))
            .axis_desc_style((FONT, 12).into_font().color(&MUTED))
            .draw()
            .map_err(failed(CHART))?;
        let value_style = (FONT, 12)
            .into_font()
            .color(&INK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (k, row) in rows.iter().enumerate() {
            let below_gap = omitted.is_some_and(|(at, _)| k >= at);
            let i = (n - 1 - k - usize::from(below_gap)) as i32;
            let avg = row.avg.map(|a| drawn(a as f64));
            if let Some(avg) = avg {
                let mut bar = Rectangle::new(
                    [
                        (0.0_f64.max(x_from), SegmentValue::Exact(i)),
                        (avg, SegmentValue::Exact(i + 1)),
                    ],
                    BAR.mix(0.85).filled(),
                );
                bar.set_margin(4, 4, 0, 0);
                chart.draw_series([bar]).map_err(failed(CHART))?;
            }
            if let (Some(min), Some(max)) = (row.min.map(drawn), row.max.map(drawn)) {
                let whisker = PathElement::new(
                    vec![
                        (min, SegmentValue::CenterOf(i)),
                        (max, SegmentValue::CenterOf(i)),
                    ],
                    INK.stroke_width(1),
                );
                chart.draw_series([whisker]).map_err(failed(CHART))?;
                let ends = [min, max]
                    .map(|x| Circle::new((x, SegmentValue::CenterOf(i)), 2, INK.filled()));
                chart.draw_series(ends).map_err(failed(CHART))?;
            }
            let right = row.max.map(drawn).or(avg).unwrap_or(x_from);
            chart
                .draw_series([Text::new(
                    gold_value(row),
                    (right + span * 0.02, SegmentValue::CenterOf(i)),
                    value_style.clone(),
                )])
                .map_err(failed(CHART))?;
        }
        Ok(())
    })
}

/// `days` in at most `max` points: consecutive days binned, each bin its first date, its
/// readings' mean (weighted by count), lowest and highest, and their count.
pub fn bin_days(days: &[Day], max: usize) -> Vec<Day> {
    if days.len() <= max || max == 0 {
        return days.to_vec();
    }
    let per_bin = days.len().div_ceil(max);
    days.chunks(per_bin)
        .map(|bin| {
            let count: i64 = bin.iter().map(|d| d.count).sum();
            let avg = if count > 0 {
                bin.iter().map(|d| d.avg * d.count as f64).sum::<f64>() / count as f64
            } else {
                bin.iter().map(|d| d.avg).sum::<f64>() / bin.len() as f64
            };
            Day {
                date: bin[0].date,
                avg,
                min: bin.iter().map(|d| d.min).fold(f64::INFINITY, f64::min),
                max: bin.iter().map(|d| d.max).fold(f64::NEG_INFINITY, f64::max),
                count,
            }
        })
        .collect()
}

/// The heart-rate scale every small chart of daily shares, so that they compare at a glance
/// (each has its own dates: patients are monitored at different times).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyScale {
    pub low: f64,
    pub high: f64,
}

impl DailyScale {
    pub fn of<'a>(series: impl Iterator<Item = &'a [Day]>) -> Option<DailyScale> {
        let mut range: Option<(f64, f64)> = None;
        for day in series.flatten() {
            let value = drawn(day.avg);
            let (low, high) = range.get_or_insert((value, value));
            *low = low.min(value);
            *high = high.max(value);
        }
        range.map(|(low, high)| {
            let pad = ((high - low) * 0.08).max(1.0);
            DailyScale {
                low: (low - pad).floor(),
                high: (high + pad).ceil(),
            }
        })
    }
}

/// One patient's daily average heart rate over time, days with a device-fault reading (a
/// negative value) marked in red.
pub fn daily_line(title: &str, days: &[Day], scale: DailyScale) -> Result<String> {
    const CHART: &str = "daily";
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let day_number = |d: NaiveDate| (d - epoch).num_days();
    let first = days.first().map_or(0, |d| day_number(d.date));
    let last = days.last().map_or(first, |d| day_number(d.date));
    // A day of margin on each side: a patient's only day is drawn inside the chart.
    let (from, to) = (first - 1, last + 1);
    let short = to - from < 120;
    svg(CHART, (300, 150), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(6)
            .margin_right(20)
            .caption(title, (FONT, 12).into_font().color(&INK))
            .x_label_area_size(18)
            .y_label_area_size(30)
            .build_cartesian_2d(from..to, scale.low..scale.high)
            .map_err(failed(CHART))?;
        let label = |n: &i64| {
            epoch
                .checked_add_signed(chrono::Duration::days(*n))
                .map(|d| {
                    d.format(if short { "%Y-%m-%d" } else { "%Y-%m" })
                        .to_string()
                })
                .unwrap_or_default()
        };
        chart
            .configure_mesh()
            .max_light_lines(1)
            .bold_line_style(GRID)
            .x_labels(3)
            .y_labels(4)
            .x_label_formatter(&label)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style((FONT, 9).into_font().color(&MUTED))
            .draw()
            .map_err(failed(CHART))?;
        // A line per stretch of readings: no line across a gap of weeks without any.
        for stretch in stretches(days) {
            chart
                .draw_series(LineSeries::new(
                    stretch.iter().map(|d| (day_number(d.date), drawn(d.avg))),
                    BAR.stroke_width(1),
                ))
                .map_err(failed(CHART))?;
            // A stretch of a point or two would be no line at all.
            if stretch.len() <= 2 {
                chart
                    .draw_series(
                        stretch.iter().map(|d| {
                            Circle::new((day_number(d.date), drawn(d.avg)), 2, BAR.filled())
                        }),
                    )
                    .map_err(failed(CHART))?;
            }
        }
        // Device faults as a red strip along the bottom, one rectangle per run of points with
        // a fault (a dot per point would be thousands of elements on a long history).
        let strip = (scale.high - scale.low) * 0.05;
        let runs = fault_runs(days).into_iter().map(|(first, last)| {
            let start = day_number(days[first].date);
            let end = days
                .get(last + 1)
                .map_or(to, |next| day_number(next.date))
                .max(start + 1);
            Rectangle::new(
                [(start, scale.low), (end, scale.low + strip)],
                FAULT.filled(),
            )
        });
        chart.draw_series(runs).map_err(failed(CHART))?;
        Ok(())
    })
}

/// `days` cut where two points are further apart than a week and three times the average
/// step between points: stretches of readings with none between them.
pub fn stretches(days: &[Day]) -> Vec<&[Day]> {
    let (Some(first), Some(last)) = (days.first(), days.last()) else {
        return Vec::new();
    };
    let span = (last.date - first.date).num_days() as f64;
    let step = span / days.len().max(1) as f64;
    let most = (3.0 * step).max(7.0);
    let mut found = Vec::new();
    let mut start = 0;
    for i in 1..days.len() {
        if (days[i].date - days[i - 1].date).num_days() as f64 > most {
            found.push(&days[start..i]);
            start = i;
        }
    }
    found.push(&days[start..]);
    found
}

/// The runs of consecutive points with a device-fault reading (a negative lowest value), as
/// (first, last) indexes.
pub fn fault_runs(days: &[Day]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, day) in days.iter().enumerate() {
        if day.min >= 0.0 {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == i => *last = i,
            _ => runs.push((i, i)),
        }
    }
    runs
}

/// Rows per bronze batch (bars) and each batch's time on the stream (a line), the newest
/// [`MAX_BATCHES`].
pub fn batches(batches: &[Batch]) -> Result<String> {
    const CHART: &str = "bronze batches";
    let shown = &batches[batches.len().saturating_sub(MAX_BATCHES)..];
    let (Some(first), Some(last)) = (shown.first(), shown.last()) else {
        return svg(CHART, (900, 60), |root| {
            root.draw(&Text::new(
                "no batch recorded",
                (10, 20),
                (FONT, 13).into_font().color(&MUTED),
            ))
            .map_err(failed(CHART))
        });
    };
    // Batch k's bar spans [k, k + 1); its latency point sits at its middle, k + 0.5.
    let (from, to) = (first.id as f64, last.id as f64 + 1.0);
    let most_rows = shown.iter().map(|b| b.rows).max().unwrap_or(1).max(1);
    let longest = shown
        .iter()
        .map(|b| b.duration_ms)
        .max()
        .unwrap_or(1)
        .max(1);
    // Small counts get as many labels as whole numbers fit, so no label repeats.
    let labels = |most: u64| (most as usize + 1).clamp(2, 6);
    let gap = if shown.len() > 100 { 0 } else { 1 };
    svg(CHART, (900, 440), |root| {
        let (top, bottom) = root.split_vertically(210);
        let mut rows = ChartBuilder::on(&top)
            .margin(8)
            .caption("rows per batch", (FONT, 13).into_font().color(&INK))
            .x_label_area_size(24)
            .y_label_area_size(70)
            .build_cartesian_2d(from..to, 0.0..most_rows as f64 * 1.1)
            .map_err(failed(CHART))?;
        rows.configure_mesh()
            .disable_x_mesh()
            .max_light_lines(1)
            .bold_line_style(GRID)
            .y_labels(labels(most_rows))
            .x_label_formatter(&whole)
            .y_label_formatter(&whole)
            .label_style((FONT, 10).into_font().color(&MUTED))
            .draw()
            .map_err(failed(CHART))?;
        rows.draw_series(shown.iter().map(|b| {
            let x = b.id as f64;
            let mut bar = Rectangle::new([(x, 0.0), (x + 1.0, b.rows as f64)], BAR.filled());
            bar.set_margin(0, 0, gap, gap);
            bar
        }))
        .map_err(failed(CHART))?;
        rows.draw_series(shown.iter().filter(|b| b.quarantined > 0).map(|b| {
            let x = b.id as f64;
            Rectangle::new([(x, 0.0), (x + 1.0, b.quarantined as f64)], FAULT.filled())
        }))
        .map_err(failed(CHART))?;
        let mut latency = ChartBuilder::on(&bottom)
            .margin(8)
            .caption(
                "batch latency (trigger to commit, ms)",
                (FONT, 13).into_font().color(&INK),
            )
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(from..to, 0.0..longest as f64 * 1.1)
            .map_err(failed(CHART))?;
        latency
            .configure_mesh()
            .max_light_lines(1)
            .bold_line_style(GRID)
            .x_desc("batch id")
            .y_labels(labels(longest))
            .x_label_formatter(&whole)
            .y_label_formatter(&whole)
            .label_style((FONT, 10).into_font().color(&MUTED))
            .axis_desc_style((FONT, 11).into_font().color(&MUTED))
            .draw()
            .map_err(failed(CHART))?;
        let points = || {
            shown
                .iter()
                .map(|b| (b.id as f64 + 0.5, b.duration_ms as f64))
        };
        latency
            .draw_series(LineSeries::new(points(), INK.stroke_width(1)))
            .map_err(failed(CHART))?;
        latency
            .draw_series(points().map(|p| Circle::new(p, 2, INK.filled())))
            .map_err(failed(CHART))?;
        Ok(())
    })
}

/// Each table's versions over time (the newest commits kept in its log), a line per table.
pub fn versions(tables: &[TableFacts]) -> Result<String> {
    const CHART: &str = "versions";
    let points = tables.iter().flat_map(|t| t.history.iter());
    let (mut start, mut end, mut top) = (i64::MAX, i64::MIN, 1u64);
    for (version, at) in points {
        start = start.min(*at);
        end = end.max(*at);
        top = top.max(*version);
    }
    if start > end {
        (start, end) = (0, 1);
    }
    let pad = ((end - start) / 20).max(1_000);
    let (start, end) = (start - pad, end + pad);
    // Seconds after `start` (an i64 axis of epoch milliseconds overflows plotters' ticks).
    let x = move |ms: i64| (ms - start) as f64 / 1000.0;
    let width = x(end);
    svg(CHART, (900, 320), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..width, 0.0..(top as f64 * 1.08).max(1.0))
            .map_err(failed(CHART))?;
        let format = move |seconds: &f64| {
            let ms = start + (*seconds * 1000.0) as i64;
            let time = DateTime::from_timestamp_millis(ms).unwrap_or_default();
            // Precise enough that six labels over the span differ.
            if width < 60.0 {
                time.format("%H:%M:%S%.3f").to_string()
            } else if width < 86_400.0 {
                time.format("%H:%M:%S").to_string()
            } else {
                time.format("%Y-%m-%d %H:%M").to_string()
            }
        };
        chart
            .configure_mesh()
            .max_light_lines(1)
            .bold_line_style(GRID)
            .x_labels(6)
            .y_labels((top as usize + 1).clamp(2, 8))
            .x_label_formatter(&format)
            .y_label_formatter(&whole)
            .y_desc("version")
            .label_style((FONT, 10).into_font().color(&MUTED))
            .axis_desc_style((FONT, 11).into_font().color(&MUTED))
            .draw()
            .map_err(failed(CHART))?;
        for (k, table) in tables.iter().enumerate() {
            let color = PALETTE[k % PALETTE.len()];
            // A step line: a version holds until the next commit.
            let mut steps = Vec::new();
            for pair in table.history.windows(2) {
                steps.push((x(pair[0].1), pair[0].0 as f64));
                steps.push((x(pair[1].1), pair[0].0 as f64));
            }
            if let Some((version, at)) = table.history.last() {
                steps.push((x(*at), *version as f64));
            }
            chart
                .draw_series(LineSeries::new(steps, color.stroke_width(2)))
                .map_err(failed(CHART))?
                .label(table.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(GRID)
            .label_font((FONT, 11).into_font().color(&INK))
            .draw()
            .map_err(failed(CHART))?;
        Ok(())
    })
}

/// A box of the lineage graph: a table (or the tracker folder), at a column and row.
struct Node {
    key: &'static str,
    title: &'static str,
    column: i32,
    row: i32,
}

const NODES: [Node; 9] = [
    Node {
        key: inspect::SOURCE_POSITION,
        title: "tracker files",
        column: 0,
        row: 0,
    },
    Node {
        key: catalog::DIM_PATIENTS.name,
        title: catalog::DIM_PATIENTS.name,
        column: 0,
        row: 2,
    },
    Node {
        key: catalog::BRONZE.name,
        title: catalog::BRONZE.name,
        column: 1,
        row: 0,
    },
    Node {
        key: catalog::BRONZE_QUARANTINE.name,
        title: catalog::BRONZE_QUARANTINE.name,
        column: 1,
        row: 2,
    },
    Node {
        key: catalog::SILVER.name,
        title: catalog::SILVER.name,
        column: 2,
        row: 0,
    },
    Node {
        key: catalog::SILVER_QUARANTINE.name,
        title: catalog::SILVER_QUARANTINE.name,
        column: 2,
        row: 1,
    },
    Node {
        key: catalog::SILVER_WAITING.name,
        title: catalog::SILVER_WAITING.name,
        column: 3,
        row: 2,
    },
    Node {
        key: catalog::GOLD.name,
        title: catalog::GOLD.name,
        column: 3,
        row: 0,
    },
    Node {
        key: catalog::DAILY.name,
        title: catalog::DAILY.name,
        column: 3,
        row: 1,
    },
];

/// An arrow of the lineage graph: what flows, and what the consumer recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: &'static str,
    pub to: &'static str,
    pub label: String,
    /// A consumer's position (solid), or rows set aside (dashed).
    pub consumed: bool,
}

/// The arrows of the lineage graph, from what each table recorded consuming.
pub fn edges(tables: &[TableFacts]) -> Vec<Edge> {
    let by_name: BTreeMap<&str, &TableFacts> =
        tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let position = |consumer: &str, upstream: &str| {
        let recorded = by_name
            .get(consumer)
            .and_then(|t| t.consumed.get(upstream).copied());
        match (recorded, by_name.get(upstream)) {
            (Some(v), Some(up)) => format!("consumed v{v} of v{}", up.version),
            (Some(v), None) if upstream == inspect::SOURCE_POSITION => format!("batch {v}"),
            (Some(v), None) => format!("consumed v{v}"),
            (None, _) => "nothing consumed yet".to_string(),
        }
    };
    let mut found = vec![
        Edge {
            from: inspect::SOURCE_POSITION,
            to: catalog::BRONZE.name,
            label: position(catalog::BRONZE.name, inspect::SOURCE_POSITION),
            consumed: true,
        },
        Edge {
            from: catalog::BRONZE.name,
            to: catalog::SILVER.name,
            label: position(catalog::SILVER.name, catalog::BRONZE.name),
            consumed: true,
        },
        Edge {
            from: catalog::DIM_PATIENTS.name,
            to: catalog::SILVER.name,
            label: position(catalog::SILVER.name, catalog::DIM_PATIENTS.name),
            consumed: true,
        },
        Edge {
            from: catalog::SILVER.name,
            to: catalog::GOLD.name,
            label: position(catalog::GOLD.name, catalog::SILVER.name),
            consumed: true,
        },
        Edge {
            from: catalog::SILVER.name,
            to: catalog::DAILY.name,
            label: position(catalog::DAILY.name, catalog::SILVER.name),
            consumed: true,
        },
    ];
    for (from, to, label) in [
        (
            catalog::BRONZE.name,
            catalog::BRONZE_QUARANTINE.name,
            "unreadable",
        ),
        (
            catalog::SILVER.name,
            catalog::SILVER_QUARANTINE.name,
            "refused",
        ),
        (
            catalog::SILVER.name,
            catalog::SILVER_WAITING.name,
            "patient unknown",
        ),
    ] {
        found.push(Edge {
            from,
            to,
            label: label.to_string(),
            consumed: false,
        });
    }
    found
}

/// The lineage graph: the tracker folder and the tables as boxes (version and rows), the
/// flows between them as arrows labelled with the position each consumer recorded.
pub fn lineage(tables: &[TableFacts]) -> Result<String> {
    const CHART: &str = "lineage";
    // Laid out so that no arrow crosses a box: dim_patients and bronze's quarantine in the
    // bottom row, silver's waiting rows beside daily.
    const W: i32 = 190;
    const H: i32 = 52;
    const GAP_X: i32 = 130;
    const GAP_Y: i32 = 40;
    let by_name: BTreeMap<&str, &TableFacts> =
        tables.iter().map(|t| (t.name.as_str(), t)).collect();
    let corner = |node: &Node| (10 + node.column * (W + GAP_X), 10 + node.row * (H + GAP_Y));
    let find = |key: &str| NODES.iter().find(|n| n.key == key);
    let width = (20 + 4 * W + 3 * GAP_X) as u32;
    let height = (10 + 3 * (H + GAP_Y)) as u32;
    svg(CHART, (width, height), |root| {
        let text = |size: u32, color: &'static RGBColor| {
            (FONT, size)
                .into_font()
                .color(color)
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        for edge in edges(tables) {
            let (Some(from), Some(to)) = (find(edge.from), find(edge.to)) else {
                continue;
            };
            let (fx, fy) = corner(from);
            let (tx, ty) = corner(to);
            // Rightwards between columns (from the side of the box); downwards within one.
            let (start, end) = if from.column == to.column {
                ((fx + W / 2, fy + H), (tx + W / 2, ty))
            } else {
                ((fx + W, fy + H / 2), (tx, ty + H / 2))
            };
            let color = if edge.consumed { INK } else { MUTED };
            root.draw(&PathElement::new(vec![start, end], color.stroke_width(1)))
                .map_err(failed(CHART))?;
            let (dx, dy) = ((end.0 - start.0) as f64, (end.1 - start.1) as f64);
            let length = (dx * dx + dy * dy).sqrt().max(1.0);
            let (ux, uy) = (dx / length, dy / length);
            let back = (end.0 as f64 - ux * 8.0, end.1 as f64 - uy * 8.0);
            let head = vec![
                end,
                ((back.0 - uy * 4.0) as i32, (back.1 + ux * 4.0) as i32),
                ((back.0 + uy * 4.0) as i32, (back.1 - ux * 4.0) as i32),
            ];
            root.draw(&Polygon::new(head, color.filled()))
                .map_err(failed(CHART))?;
            let middle = ((start.0 + end.0) / 2, (start.1 + end.1) / 2 - 8);
            let middle = if from.column == to.column {
                (middle.0 + 52, middle.1 + 8)
            } else {
                middle
            };
            root.draw(&Text::new(edge.label.clone(), middle, text(10, &MUTED)))
                .map_err(failed(CHART))?;
        }
        for node in &NODES {
            let (x, y) = corner(node);
            let table = by_name.get(node.key);
            let present = table.is_some() || node.key == inspect::SOURCE_POSITION;
            let fill = if present {
                RGBColor(0xf3, 0xf6, 0xfa)
            } else {
                RGBColor(0xfa, 0xfa, 0xfa)
            };
            root.draw(&Rectangle::new([(x, y), (x + W, y + H)], fill.filled()))
                .map_err(failed(CHART))?;
            root.draw(&Rectangle::new(
                [(x, y), (x + W, y + H)],
                if present { BAR } else { GRID }.stroke_width(1),
            ))
            .map_err(failed(CHART))?;
            root.draw(&Text::new(
                node.title,
                (x + W / 2, y + 17),
                text(10, if present { &INK } else { &MUTED }),
            ))
            .map_err(failed(CHART))?;
            let detail = match table {
                Some(t) => format!(
                    "v{} · {} rows",
                    t.version,
                    t.rows.map_or("?".to_string(), |r| thousands(r as i64))
                ),
                None if node.key == inspect::SOURCE_POSITION => {
                    "JSON arrays, one per file".to_string()
                }
                None => "not created".to_string(),
            };
            root.draw(&Text::new(detail, (x + W / 2, y + 36), text(10, &MUTED)))
                .map_err(failed(CHART))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, avg: f64, min: f64, count: i64) -> Day {
        Day {
            date: NaiveDate::from_ymd_opt(2024, 1, d).unwrap(),
            avg,
            min,
            max: avg + 10.0,
            count,
        }
    }

    #[test]
    fn days_are_binned_by_reading_count_and_keep_their_extremes() {
        let days = [
            day(1, 60.0, 50.0, 1),
            day(2, 90.0, -3.0, 3),
            day(3, 70.0, 65.0, 2),
            day(4, 80.0, 70.0, 2),
            day(5, 100.0, 90.0, 1),
        ];
        // (max points, expected (day of month, avg, min, count) per point)
        type Binned = &'static [(u32, f64, f64, i64)];
        let cases: [(usize, Binned); 3] = [
            (
                10,
                &[
                    (1, 60.0, 50.0, 1),
                    (2, 90.0, -3.0, 3),
                    (3, 70.0, 65.0, 2),
                    (4, 80.0, 70.0, 2),
                    (5, 100.0, 90.0, 1),
                ],
            ),
            (
                3,
                &[(1, 82.5, -3.0, 4), (3, 75.0, 65.0, 4), (5, 100.0, 90.0, 1)],
            ),
            (1, &[(1, 730.0 / 9.0, -3.0, 9)]),
        ];
        for (max, expected) in cases {
            let binned = bin_days(&days, max);
            let got: Vec<(u32, f64, f64, i64)> = binned
                .iter()
                .map(|d| (chrono::Datelike::day(&d.date), d.avg, d.min, d.count))
                .collect();
            assert_eq!(got.len(), expected.len(), "max {max}");
            for (g, e) in got.iter().zip(expected) {
                assert_eq!((g.0, g.2, g.3), (e.0, e.2, e.3), "max {max}");
                assert!((g.1 - e.1).abs() < 1e-9, "max {max}: {g:?} {e:?}");
            }
        }
    }

    #[test]
    fn a_line_is_cut_where_weeks_pass_without_a_reading() {
        let at =
            |dates: &[u32]| -> Vec<Day> { dates.iter().map(|d| day(*d, 70.0, 60.0, 1)).collect() };
        // (days of January, lengths of the stretches)
        let cases: [(&[u32], &[usize]); 4] = [
            (&[], &[]),
            (&[1], &[1]),
            (&[1, 2, 3, 4, 5], &[5]),
            (&[1, 2, 3, 20, 21, 22], &[3, 3]),
        ];
        for (dates, lengths) in cases {
            let days = at(dates);
            let got: Vec<usize> = stretches(&days).iter().map(|s| s.len()).collect();
            assert_eq!(got, lengths, "{dates:?}");
        }
    }

    #[test]
    fn faults_are_drawn_as_runs_of_consecutive_points() {
        let with =
            |mins: &[f64]| -> Vec<Day> { mins.iter().map(|m| day(1, 70.0, *m, 1)).collect() };
        type Runs = &'static [(usize, usize)];
        let cases: [(&[f64], Runs); 5] = [
            (&[], &[]),
            (&[50.0, 60.0], &[]),
            (&[-1.0], &[(0, 0)]),
            (
                &[-1.0, -2.0, 50.0, -0.5, 40.0, -3.0, -3.0],
                &[(0, 1), (3, 3), (5, 6)],
            ),
            // -0.0 is not below zero: no fault.
            (&[-0.0, 0.0], &[]),
        ];
        for (mins, runs) in cases {
            assert_eq!(fault_runs(&with(mins)), runs, "{mins:?}");
        }
    }

    #[test]
    fn numbers_print_as_people_read_them() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
            (-45_000, "-45,000"),
        ];
        for (n, text) in cases {
            assert_eq!(thousands(n), text);
        }
        for (value, text) in [
            (72.0, "72"),
            (-0.0, "0"),
            (71.26, "71.3"),
            (-12.5, "-12.5"),
            (1e300, "1.000e300"),
            (-1e300, "-1.000e300"),
        ] {
            assert_eq!(bpm(value), text);
        }
    }

    #[test]
    fn the_lineage_labels_say_what_each_consumer_recorded() {
        let table = |name: &str, version: u64, consumed: &[(&str, i64)]| TableFacts {
            name: name.to_string(),
            version,
            consumed: consumed.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..TableFacts::default()
        };
        let tables = [
            table(catalog::BRONZE.name, 5, &[("source", 4)]),
            table(catalog::SILVER.name, 3, &[(catalog::BRONZE.name, 4)]),
            table(catalog::GOLD.name, 2, &[(catalog::SILVER.name, 3)]),
        ];
        let labels: BTreeMap<(&str, &str), String> = edges(&tables)
            .into_iter()
            .map(|e| ((e.from, e.to), e.label))
            .collect();
        let cases = [
            (("source", catalog::BRONZE.name), "batch 4"),
            (
                (catalog::BRONZE.name, catalog::SILVER.name),
                "consumed v4 of v5",
            ),
            (
                (catalog::DIM_PATIENTS.name, catalog::SILVER.name),
                "nothing consumed yet",
            ),
            (
                (catalog::SILVER.name, catalog::GOLD.name),
                "consumed v3 of v3",
            ),
            (
                (catalog::SILVER.name, catalog::DAILY.name),
                "nothing consumed yet",
            ),
        ];
        for (edge, label) in cases {
            assert_eq!(labels[&edge], label, "{edge:?}");
        }
    }

    #[test]
    fn degenerate_inputs_still_draw() {
        let one = GoldRow {
            mrn: 1,
            name: None,
            avg: Some(0),
            min: Some(-0.0),
            max: Some(0.0),
            count: 1,
        };
        let absurd = GoldRow {
            mrn: 2,
            name: Some("x".into()),
            avg: None,
            min: Some(-1e300),
            max: Some(f64::MAX),
            count: 0,
        };
        for rows in [vec![], vec![one.clone()], vec![one, absurd]] {
            let svg = gold_bars(&rows, Some((1, 7))).unwrap();
            assert!(
                svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
                "{svg}"
            );
        }
        let batch = |id: i64| Batch {
            id,
            timestamp: String::new(),
            rows: 0,
            quarantined: 0,
            duration_ms: 0,
            version: 1,
        };
        for list in [vec![], vec![batch(0)], vec![batch(0), batch(1_000_000)]] {
            batches(&list).unwrap();
        }
        let table = |history: Vec<(u64, i64)>| TableFacts {
            name: "t".into(),
            history,
            ..TableFacts::default()
        };
        for history in [
            vec![],
            vec![(0, 0)],
            vec![(0, 1_700_000_000_000), (5, 253_402_300_799_000)],
        ] {
            versions(&[table(history)]).unwrap();
        }
        lineage(&[]).unwrap();
        let day = day(1, 1e300, -1e300, 1);
        let scale = DailyScale::of([std::slice::from_ref(&day)].into_iter()).unwrap();
        daily_line("one day", &[day], scale).unwrap();
    }
}
