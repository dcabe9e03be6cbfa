//! The lab's shape read in one pass (an array of flat objects of plain strings and numbers),
//! validating as it goes; anything else is left to [`super::general`].

use deltalake::arrow::array::RecordBatch;

use super::Lineage;
use super::rows::RowBuilder;
use crate::catalog::SOURCE_COLUMNS;

/// The lab's shape read in one pass, validating as it goes: an array of flat objects whose
/// values are strings without escapes, numbers or null. Anything else, valid or not (an escape,
/// a nested value, a syntax error...), gives `None`, and the general path (validate the whole
/// text, then cut it into elements) reads the file and says what is wrong: both paths give the
/// same rows for what this one accepts (tested on random and mutated files).
pub(super) fn read_plain_array(text: &str, lineage: &Lineage) -> Option<(Vec<RecordBatch>, usize)> {
    let mut c = Cursor {
        b: text.as_bytes(),
        i: 0,
    };
    let mut rows = RowBuilder::new(lineage);
    let mut batches = Vec::new();
    c.ws();
    c.eat(b'[')?;
    c.ws();
    if c.peek() == Some(b']') {
        c.i += 1;
    } else {
        loop {
            plain_object(&mut c, text, &mut rows)?;
            rows.flush_if_full(&mut |b| batches.push(b));
            c.ws();
            match c.next()? {
                b',' => c.ws(),
                b']' => break,
                _ => return None,
            }
        }
    }
    c.ws();
    if c.i != text.len() {
        return None;
    }
    let total = rows.total;
    rows.flush(&mut |b| batches.push(b));
    Some((batches, total))
}

/// One flat object, appended as a row.
fn plain_object(c: &mut Cursor<'_>, text: &str, rows: &mut RowBuilder<'_>) -> Option<()> {
    c.eat(b'{')?;
    c.ws();
    let mut values: [Option<&str>; 4] = [None; 4];
    let mut seen = 0u8;
    let mut rescued: Vec<String> = Vec::new();
    if c.peek() == Some(b'}') {
        c.i += 1;
    } else {
        loop {
            let key_start = c.i;
            let key = c.plain_string(text)?;
            let key_raw = &text[key_start..c.i];
            c.ws();
            c.eat(b':')?;
            c.ws();
            let value_start = c.i;
            let value = match c.peek()? {
                b'"' => Some(c.plain_string(text)?),
                b'-' | b'0'..=b'9' => {
                    c.number()?;
                    Some(&text[value_start..c.i])
                }
                b'n' => {
                    c.literal(b"null")?;
                    None
                }
                _ => return None,
            };
            // A key given twice: the general path rejects the element, with its line.
            match SOURCE_COLUMNS.iter().position(|c| *c == key) {
                Some(index) if seen & (1 << index) != 0 => return None,
                Some(index) => {
                    seen |= 1 << index;
                    values[index] = value;
                }
                None if rescued
                    .iter()
                    .any(|r| r.starts_with(&format!("{key_raw}:"))) =>
                {
                    return None;
                }
                None => rescued.push(format!("{key_raw}:{}", &text[value_start..c.i])),
            }
            c.ws();
            match c.next()? {
                b',' => c.ws(),
                b'}' => break,
                _ => return None,
            }
        }
    }
    let rescued = (!rescued.is_empty()).then(|| format!("{{{}}}", rescued.join(",")));
    rows.push_row(values, rescued.as_deref());
    Some(())
}

/// A position in JSON text, for [`read_plain_array`].
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.i += 1;
        Some(byte)
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    /// A string without escapes or control characters: its content.
    fn plain_string<'t>(&mut self, text: &'t str) -> Option<&'t str> {
        self.eat(b'"')?;
        let start = self.i;
        let len = self.b[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.i = start + len;
        self.eat(b'"')?;
        Some(&text[start..start + len])
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            (self.digits() > 0).then_some(())?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            (self.digits() > 0).then_some(())?;
        }
        Some(())
    }
}
