//! JSON lines and CSV, written a row at a time ([`Lines`]), and the rows of a query streamed
//! through them a record batch at a time ([`RowStream`]).

use std::io::{self, Write};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::Value;

use super::{Format, Rows, batch_rows, column_names, plain};
use crate::error::Result;
use crate::output;

/// Rows written one at a time as JSON lines or CSV (its header first). [`Rows`] renders and a
/// [`RowStream`] prints through this one writer, so both give the same bytes.
pub(super) enum Lines<W: Write> {
    /// One object per row. `keys` are the object's keys, as JSON text, each with the column it
    /// takes its value from: a name given to two columns (a join's `mrn`) is one key, where the
    /// first column stood, with the last column's value, as a JSON object built from the row
    /// (`serde_json::Map` keeps the order keys came in) had it.
    Json {
        keys: Vec<(String, usize)>,
        out: W,
    },
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> Lines<W> {
    /// A writer of JSON lines (any format but CSV) or of CSV, whose header it writes.
    pub(super) fn new(format: Format, columns: &[String], out: W) -> io::Result<Self> {
        if format == Format::Csv {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(columns).map_err(csv_io)?;
            return Ok(Self::Csv(Box::new(writer)));
        }
        let mut keys: Vec<(String, usize)> = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let key = Value::String(name.clone()).to_string();
            match keys.iter_mut().find(|(k, _)| *k == key) {
                Some(seen) => seen.1 = i,
                None => keys.push((key, i)),
            }
        }
        Ok(Self::Json { keys, out })
    }

    /// One row: one value per column.
    pub(super) fn row(&mut self, row: &[Value]) -> io::Result<()> {
        match self {
            Self::Json { keys, out } => {
                // `Value::Object(..).to_string()`'s bytes, without building the object.
                out.write_all(b"{")?;
                for (n, (key, i)) in keys.iter().enumerate() {
                    if n > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(key.as_bytes())?;
                    out.write_all(b":")?;
                    serde_json::to_writer(&mut *out, &row[*i]).map_err(io::Error::from)?;
                }
                out.write_all(b"}\n")
            }
            Self::Csv(writer) => writer.write_record(row.iter().map(plain)).map_err(csv_io),
        }
    }

    /// Flush what is buffered; the writer back.
    pub(super) fn finish(self) -> io::Result<W> {
        match self {
            Self::Json { mut out, .. } => {
                out.flush()?;
                Ok(out)
            }
            Self::Csv(writer) => {
                let mut out = (*writer).into_inner().map_err(|e| e.into_error())?;
                out.flush()?;
                Ok(out)
            }
        }
    }
}

/// A CSV writer's failure as the I/O error it is (a closed pipe stays one).
pub(super) fn csv_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("CSV: {other:?}")),
    }
}

/// The rows of a query as they come: the record batches DataFusion produces, at most `limit`
/// rows of them printed. Printing reads a batch, writes it, and drops it.
pub struct RowStream {
    schema: SchemaRef,
    batches: BoxStream<'static, Result<RecordBatch>>,
    /// At most this many rows (`None`: all). One more may come, to tell that rows were left out.
    limit: Option<usize>,
}

/// What printing a [`RowStream`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printed {
    /// Rows written (to `out`, or to a buffer on the way when the pipe closed).
    pub rows: usize,
    /// Whether the limit left rows out.
    pub more: bool,
    /// Whether the reader went away first (a closed pipe: `| head`).
    pub closed: bool,
}

impl RowStream {
    pub fn new(
        schema: SchemaRef,
        batches: BoxStream<'static, Result<RecordBatch>>,
        limit: Option<usize>,
    ) -> Self {
        Self {
            schema,
            batches,
            limit,
        }
    }

    /// Read the rows (as many as the limit lets), each batch cut to what is left of it, with
    /// `each(batch)` for each non-empty one; whether the limit left rows out.
    async fn read(&mut self, mut each: impl FnMut(RecordBatch) -> Result<bool>) -> Result<bool> {
        let mut left = self.limit;
        while let Some(batch) = self.batches.next().await {
            let batch = batch?;
            let take = left.map_or(batch.num_rows(), |left| left.min(batch.num_rows()));
            if take > 0 && !each(batch.slice(0, take))? {
                return Ok(false);
            }
            if take < batch.num_rows() {
                return Ok(true);
            }
            left = left.map(|left| left - take);
        }
        Ok(false)
    }

    /// The rows, as many as the limit lets, and whether it left rows out.
    pub async fn collect(mut self) -> Result<(Rows, bool)> {
        let mut rows = Rows {
            columns: column_names(&self.schema),
            ..Rows::default()
        };
        let more = self
            .read(|batch| {
                rows.rows.extend(batch_rows(&batch)?);
                Ok(true)
            })
            .await?;
        Ok((rows, more))
    }

    /// Print to `out` (stdout: [`output::results`]) in `format`, as [`Rows::print`] would print
    /// the same rows. JSON and CSV are written a batch at a time; a text table once its rows
    /// are read. A closed pipe stops the reading and ends the output quietly.
    pub async fn print(
        mut self,
        format: Format,
        truncate: bool,
        width: Option<usize>,
        mut out: impl Write,
    ) -> Result<Printed> {
        if format == Format::Text {
            let (rows, more) = self.collect().await?;
            let text = rows.render_within(format, truncate, width);
            let delivered =
                output::delivered(out.write_all(text.as_bytes()).and_then(|()| out.flush()))?;
            return Ok(Printed {
                rows: rows.rows.len(),
                more,
                closed: !delivered,
            });
        }
        let columns = column_names(&self.schema);
        let mut lines = match Lines::new(format, &columns, &mut out) {
            Ok(lines) => lines,
            Err(e) => return closed(e, 0),
        };
        let mut printed = 0;
        let mut failed = None;
        let more = self
            .read(|batch| {
                for row in batch_rows(&batch)? {
                    if let Err(e) = lines.row(&row) {
                        failed = Some(e);
                        return Ok(false);
                    }
                    printed += 1;
                }
                Ok(true)
            })
            .await?;
        if let Some(e) = failed.or_else(|| lines.finish().err()) {
            return closed(e, printed);
        }
        Ok(Printed {
            rows: printed,
            more,
            closed: false,
        })
    }
}

/// Printing stopped by a failed write: a closed pipe, or else the error it is.
pub(super) fn closed(e: io::Error, rows: usize) -> Result<Printed> {
    output::delivered(Err(e))?;
    Ok(Printed {
        rows,
        more: false,
        closed: true,
    })
}
