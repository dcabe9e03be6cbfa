//! Text tables laid out within a width: the widest columns cut with `…`, too many columns wrapped
//! into tables that repeat the lead (key) columns, cells on one line and cut at
//! [`TRUNCATE_AT`](super::TRUNCATE_AT) characters.

use serde_json::Value;

use super::{MIN_COLUMN, TRUNCATE_AT};

pub(super) fn line_width(widths: &[usize]) -> usize {
    widths.iter().map(|w| w + 3).sum::<usize>() + 1
}

/// The narrowest a column of natural width `w` is cut to.
pub(super) fn floor(w: usize) -> usize {
    w.min(MIN_COLUMN)
}

/// Column widths within `width`: the widest column shrinks first, one character at a time, none
/// below its [`floor`], the `lead` columns (what tells rows apart) only once the others are at
/// theirs. The result is wider than `width` only if the floors are.
pub(super) fn fit(natural: &[usize], lead: usize, width: usize) -> Vec<usize> {
    let mut widths = natural.to_vec();
    while line_width(&widths) > width {
        let widest = |from: usize| {
            (from..widths.len())
                .filter(|&i| widths[i] > floor(natural[i]))
                .max_by_key(|&i| (widths[i], std::cmp::Reverse(i)))
        };
        match widest(lead).or_else(|| widest(0)) {
            Some(i) => widths[i] -= 1,
            None => break,
        }
    }
    widths
}

/// The columns of each table. One table if its columns fit in `width` at their floors (then
/// [`fit`] cuts them); else the columns wrap, in order, each table after the first repeating the
/// `lead` columns (a commit's version, a diff's change and key) so that its rows can be told
/// apart, and holding as many as fit whole, or cut to half of what the lead columns leave: a
/// diff's `old_<c>` and the `new_<c>` after it stay side by side.
pub(super) fn blocks(
    header: &[String],
    widths: &[usize],
    lead: usize,
    width: usize,
) -> Vec<Vec<usize>> {
    let floors: Vec<usize> = widths.iter().map(|&w| floor(w)).collect();
    let lead = lead.min(widths.len());
    if line_width(&floors) <= width || widths.len() <= lead {
        return vec![(0..widths.len()).collect()];
    }
    let free = width.saturating_sub(line_width(&widths[..lead]));
    let cap = (free / 2).saturating_sub(3).max(MIN_COLUMN);
    let packed: Vec<usize> = widths
        .iter()
        .enumerate()
        .map(|(i, &w)| if i < lead { w } else { w.min(cap) })
        .collect();
    let pair = |i: usize| {
        let old = header[i].strip_prefix("old_");
        let fits = || {
            let with: Vec<usize> = (0..lead).chain([i, i + 1]).map(|j| packed[j]).collect();
            line_width(&with) <= width
        };
        old.is_some() && header.get(i + 1).and_then(|h| h.strip_prefix("new_")) == old && fits()
    };
    let mut blocks: Vec<Vec<usize>> = Vec::new();
    let mut block: Vec<usize> = (0..lead).collect();
    let mut i = lead;
    while i < widths.len() {
        let unit: Vec<usize> = if pair(i) { vec![i, i + 1] } else { vec![i] };
        let with: Vec<usize> = block.iter().chain(&unit).map(|&j| packed[j]).collect();
        // A table holds at least one column of its own.
        if block.len() > lead && line_width(&with) > width {
            blocks.push(std::mem::replace(&mut block, (0..lead).collect()));
        }
        i += unit.len();
        block.extend(unit);
    }
    blocks.push(block);
    blocks
}

/// An aligned table of the `columns` of the header and cells, each cut to its width with `…`.
pub(super) fn table(
    header: &[String],
    cells: &[Vec<String>],
    columns: &[usize],
    widths: &[usize],
) -> String {
    let rule = format!(
        "+{}+\n",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("+")
    );
    let line = |values: &[String]| {
        let padded: Vec<String> = columns
            .iter()
            .zip(widths)
            .map(|(&i, &w)| {
                let v = cut(&values[i], w);
                format!(" {v}{} ", " ".repeat(w - v.chars().count()))
            })
            .collect();
        format!("|{}|\n", padded.join("|"))
    };
    let mut text = rule.clone();
    text.push_str(&line(header));
    text.push_str(&rule);
    for row in cells {
        text.push_str(&line(row));
    }
    if !cells.is_empty() {
        text.push_str(&rule);
    }
    text
}

/// `text` in at most `width` characters: cut with `…` if it is longer.
pub(super) fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A value as plain text: strings without quotes, null as nothing, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A value as a text-table cell: on one line, `NULL` for null, cut short when `truncate`.
pub(super) fn text_cell(value: &Value, truncate: bool) -> String {
    let text = match value {
        Value::Null => "NULL".to_string(),
        other => one_line(&plain(other)),
    };
    if truncate && text.chars().count() > TRUNCATE_AT {
        let mut cut: String = text.chars().take(TRUNCATE_AT - 3).collect();
        cut.push_str("...");
        cut
    } else {
        text
    }
}

/// Text on one line: line breaks shown as `\\n` and `\\r`, tabs as spaces.
pub(super) fn one_line(text: &str) -> String {
    text.replace('\n', "\\n")
        .replace('\r', "\\r")
        .replace('\t', " ")
}
