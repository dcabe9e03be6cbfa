//! Text tables, JSON lines and CSV agree; streamed output equals the in-memory rendering.

use std::io::{self, Write};

use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use deltalake::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringViewArray};
use serde_json::json;

use super::*;

fn sample() -> Rows {
    let mut rows = Rows::new(&["id", "name", "note"]);
    rows.push(vec![json!(1), json!("Ada, \"the first\""), Value::Null]);
    rows.push(vec![json!(22), json!("x".repeat(50)), json!(1.5)]);
    rows
}

#[test]
fn text_tables_align_and_truncate() {
    let text = sample().render(Format::Text, true);
    let expected = format!(
        "+----+------------------------------------------+------+\n\
         | id | name                                     | note |\n\
         +----+------------------------------------------+------+\n\
         | 1  | Ada, \"the first\"                         | NULL |\n\
         | 22 | {}... | 1.5  |\n\
         +----+------------------------------------------+------+\n",
        "x".repeat(37)
    );
    assert_eq!(text, expected);
    assert!(
        sample()
            .render(Format::Text, false)
            .contains(&"x".repeat(50))
    );
}

#[test]
fn text_tables_fit_a_width_by_cutting_the_widest_columns() {
    let text = sample().render_within(Format::Text, true, Some(30));
    assert_eq!(
        text,
        "+----+----------------+------+\n\
         | id | name           | note |\n\
         +----+----------------+------+\n\
         | 1  | Ada, \"the fir… | NULL |\n\
         | 22 | xxxxxxxxxxxxx… | 1.5  |\n\
         +----+----------------+------+\n"
    );
    // Wide enough, or not cut at all: the table as it was.
    let whole = sample().render(Format::Text, true);
    assert_eq!(sample().render_within(Format::Text, true, Some(200)), whole);
    assert_eq!(
        sample().render_within(Format::Text, false, Some(30)),
        sample().render(Format::Text, false)
    );
    assert_eq!(
        sample().render_within(Format::Json, true, Some(30)),
        sample().render(Format::Json, true)
    );
}

#[test]
fn too_many_columns_wrap_into_tables_that_repeat_the_lead() {
    let mut rows = Rows::new(&["change", "k", "old_a", "new_a", "old_b", "new_b"]);
    rows.lead = 2;
    rows.push(vec![
        json!("changed"),
        json!(7),
        json!("a".repeat(12)),
        json!("A".repeat(12)),
        json!(1),
        json!(2),
    ]);
    let text = rows.render_within(Format::Text, true, Some(34));
    let expected = "+---------+---+--------+---------+\n\
                    | change  | k | old_a  | new_a   |\n\
                    +---------+---+--------+---------+\n\
                    | changed | 7 | aaaaa… | AAAAAA… |\n\
                    +---------+---+--------+---------+\n\
                    \n\
                    +---------+---+-------+-------+\n\
                    | change  | k | old_b | new_b |\n\
                    +---------+---+-------+-------+\n\
                    | changed | 7 | 1     | 2     |\n\
                    +---------+---+-------+-------+\n";
    assert_eq!(text, expected);
    assert!(text.lines().all(|l| l.chars().count() <= 34), "{text}");
    // Too narrow for a pair: old_a and new_a wrap apart, each whole.
    let text = rows.render_within(Format::Text, true, Some(30));
    assert!(text.contains("| changed | 7 | aaaaaaaaaaaa |\n"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= 30), "{text}");
}

#[test]
fn json_lines_and_csv_keep_every_value() {
    assert_eq!(
        sample().render(Format::Json, true),
        format!(
            "{{\"id\":1,\"name\":\"Ada, \\\"the first\\\"\",\"note\":null}}\n\
             {{\"id\":22,\"name\":\"{}\",\"note\":1.5}}\n",
            "x".repeat(50)
        )
    );
    assert_eq!(
        sample().render(Format::Csv, true),
        format!(
            "id,name,note\n1,\"Ada, \"\"the first\"\"\",\n22,{},1.5\n",
            "x".repeat(50)
        )
    );
}

#[test]
fn json_lines_are_the_objects_of_the_rows() {
    // A name given to two columns (a join's) is one key, as a JSON object has it.
    let mut rows = Rows::new(&["mrn", "na\"me", "mrn", "é\n"]);
    rows.push(vec![
        json!(1),
        json!("a\u{7f}\"b"),
        json!(2),
        json!([1.5, null]),
    ]);
    rows.push(vec![
        Value::Null,
        json!(true),
        Value::Null,
        json!({"k": "v"}),
    ]);
    let objects: String = rows
        .rows
        .iter()
        .map(|row| {
            let object: serde_json::Map<String, Value> =
                rows.columns.iter().cloned().zip(row.clone()).collect();
            format!("{}\n", Value::Object(object))
        })
        .collect();
    assert_eq!(rows.render(Format::Json, true), objects);
    assert!(objects.starts_with("{\"mrn\":2,"), "{objects}");
}

/// A batch of ids and names, every third name null.
fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let names: Vec<Option<String>> = ids
        .clone()
        .map(|i| (i % 3 != 0).then(|| format!("n{i}")))
        .collect();
    RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from_iter_values(ids)) as ArrayRef,
        ),
        (
            "name",
            Arc::new(StringViewArray::from_iter(names)) as ArrayRef,
        ),
    ])
    .unwrap()
}

/// Batches of 4, 0 and 3 rows: ids 0 to 6.
fn batches() -> Vec<RecordBatch> {
    vec![batch(0..4), batch(4..4), batch(4..7)]
}

/// A stream of `batches`, counting in `read` the batches read from it.
fn stream(batches: Vec<RecordBatch>, limit: Option<usize>, read: Arc<AtomicUsize>) -> RowStream {
    let schema = batches[0].schema();
    let batches = futures::stream::iter(batches)
        .inspect(move |_| {
            read.fetch_add(1, Ordering::Relaxed);
        })
        .map(Ok)
        .boxed();
    RowStream::new(schema, batches, limit)
}

#[tokio::test]
async fn a_stream_prints_the_bytes_its_rows_render() {
    let all = Rows::from_batches(&batches()[0].schema(), &batches()).unwrap();
    assert_eq!(all.rows.len(), 7);
    for format in [Format::Json, Format::Csv, Format::Text] {
        for limit in [None, Some(1), Some(4), Some(5), Some(7), Some(9)] {
            let mut expected = all.clone();
            expected.rows.truncate(limit.unwrap_or(usize::MAX));
            let mut out = Vec::new();
            let printed = stream(batches(), limit, Arc::default())
                .print(format, true, None, &mut out)
                .await
                .unwrap();
            let case = format!("{format:?} {limit:?}");
            assert_eq!(
                String::from_utf8(out).unwrap(),
                expected.render(format, true),
                "{case}"
            );
            let more = limit.is_some_and(|limit| limit < 7);
            let rows = expected.rows.len();
            assert_eq!(
                printed,
                Printed {
                    rows,
                    more,
                    closed: false
                },
                "{case}"
            );
        }
    }
}

/// Takes `room` bytes, then fails with `kind`.
struct Pipe {
    room: usize,
    kind: io::ErrorKind,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            return Err(self.kind.into());
        }
        let n = buf.len().min(self.room);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_closed_pipe_stops_the_reading_and_other_failures_are_errors() {
    // 50 batches of 1,000 rows, more than any buffer on the way holds.
    let many = || (0..50).map(|b| batch(b * 1000..(b + 1) * 1000)).collect();
    for format in [Format::Json, Format::Csv] {
        let read = Arc::new(AtomicUsize::new(0));
        let pipe = Pipe {
            room: 10,
            kind: io::ErrorKind::BrokenPipe,
        };
        let printed = stream(many(), None, read.clone())
            .print(format, true, None, pipe)
            .await
            .unwrap();
        assert!(printed.closed && !printed.more, "{format:?}: {printed:?}");
        // Rows in the writers' buffers count as written: a CSV writer holds 8 KiB.
        assert!(printed.rows < 2000, "{format:?}: {printed:?}");
        assert!(read.load(Ordering::Relaxed) <= 2, "{format:?}: {read:?}");

        let full = Pipe {
            room: 10,
            kind: io::ErrorKind::StorageFull,
        };
        let err = stream(many(), None, Arc::default())
            .print(format, true, None, full)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("write the results to stdout"),
            "{err}"
        );
    }
}

#[test]
fn instants_are_rfc3339_utc() {
    assert_eq!(millis(1_700_000_000_123), json!("2023-11-14T22:13:20.123Z"));
    assert_eq!(millis(1_700_000_000_000), json!("2023-11-14T22:13:20Z"));
}
