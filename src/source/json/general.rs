//! Any JSON: the whole text validated (without building it), then cut into elements (array
//! items or NDJSON lines), each parsed into the four source values and the keys bronze does not
//! know, or refused with the reason.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::{FileError, excerpt, nth_line};
use crate::catalog::SOURCE_COLUMNS;

/// Check that the whole text is one valid JSON value, without building it.
pub(super) fn validate(text: &str) -> Result<(), FileError> {
    serde_json::from_str::<IgnoredAny>(text)
        .map(drop)
        .map_err(|e| {
            let message = match e.classify() {
                serde_json::error::Category::Eof => format!("truncated JSON: {e}"),
                _ => format!("not valid JSON: {e}"),
            };
            FileError {
                line: Some(e.line() as u64),
                excerpt: excerpt(nth_line(text, e.line())),
                message,
            }
        })
}

/// One parsed element: the four source values as text, and any keys bronze does not know.
pub(super) struct Element<'a> {
    pub values: [Option<Cow<'a, str>>; 4],
    /// `"key":value` pairs, JSON text, in the order they came.
    rescued: Vec<String>,
}

impl Element<'_> {
    pub(super) fn rescued_json(&self) -> Option<String> {
        (!self.rescued.is_empty()).then(|| format!("{{{}}}", self.rescued.join(",")))
    }
}

/// One element (array item or NDJSON line) into an [`Element`], or the reason it cannot be one.
/// `validated`: the text is known to be valid JSON (an item of a validated array).
pub(super) fn parse_element(raw: &str, validated: bool) -> Result<Element<'_>, String> {
    // serde_json says whether it is valid JSON; the scanner below then only cuts it into parts.
    if !validated {
        serde_json::from_str::<IgnoredAny>(raw).map_err(|e| format!("not valid JSON: {e}"))?;
    }
    let kind = match raw.as_bytes()[0] {
        b'{' => return parse_object(raw),
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    Err(format!("the element is {kind}, expected an object"))
}

/// The members of a valid JSON object: the source columns' values as text, the rest rescued.
pub(super) fn parse_object(raw: &str) -> Result<Element<'_>, String> {
    let b = raw.as_bytes();
    let mut element = Element {
        values: [None, None, None, None],
        rescued: Vec::new(),
    };
    let mut keys: Vec<Cow<'_, str>> = Vec::new();
    let mut i = skip_ws(b, 1);
    while b[i] != b'}' {
        let key_end = string_end(b, i);
        let key_raw = &raw[i..key_end];
        let key = unescape(key_raw)?;
        // JSON leaves duplicate keys undefined; keeping either value would be a silent choice.
        if keys.contains(&key) {
            return Err(format!("the key {key:?} appears twice in the object"));
        }
        keys.push(key.clone());
        i = skip_ws(b, key_end) + 1; // past ':'
        i = skip_ws(b, i);
        let value_end = value_end(b, i);
        let value = &raw[i..value_end];
        match SOURCE_COLUMNS.iter().position(|c| *c == key) {
            Some(index) => {
                element.values[index] =
                    scalar_text(value).map_err(|reason| format!("{key} {reason}"))?;
            }
            None => element.rescued.push(format!("{key_raw}:{value}")),
        }
        i = skip_ws(b, value_end);
        if b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
    }
    Ok(element)
}

/// The (start, end) byte ranges of the items of a valid top-level JSON array.
pub(super) fn array_elements(b: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut i = skip_ws(b, skip_ws(b, 0) + 1); // past '['
    std::iter::from_fn(move || {
        if i >= b.len() || b[i] == b']' {
            return None;
        }
        let start = i;
        let end = value_end(b, i);
        i = skip_ws(b, end);
        if b[i] == b',' {
            i = skip_ws(b, i + 1);
        }
        Some((start, end))
    })
}

pub(super) fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// The end of the JSON string starting at `i` (its opening quote), past the closing quote.
pub(super) fn string_end(b: &[u8], mut i: usize) -> usize {
    i += 1;
    while b[i] != b'"' {
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// The end of the valid JSON value starting at `i`.
pub(super) fn value_end(b: &[u8], mut i: usize) -> usize {
    match b[i] {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match b[i] {
                    b'"' => {
                        i = string_end(b, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                i += 1;
            }
            i
        }
    }
}

/// A JSON string's content (`raw` includes the quotes).
/// Fails on what JSON validation lets through but a string cannot hold: a lone UTF-16
/// surrogate escape such as `"\ud800"`.
pub(super) fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw)
            .map(Cow::Owned)
            .map_err(|e| format!("string {raw} cannot be decoded: {e}"))
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

/// A value as bronze keeps it: a string's content, a number's text, or null. `Err` says what
/// it holds instead.
pub(super) fn scalar_text(raw: &str) -> Result<Option<Cow<'_, str>>, String> {
    match raw.as_bytes()[0] {
        b'"' => unescape(raw).map(Some),
        b'-' | b'0'..=b'9' => Ok(Some(Cow::Borrowed(raw))),
        b'n' => Ok(None),
        b't' | b'f' => Err("holds a boolean, expected a string or a number".into()),
        b'[' => Err("holds a list, expected a string or a number".into()),
        _ => Err("holds an object, expected a string or a number".into()),
    }
}
