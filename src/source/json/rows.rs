//! The builder of bronze's columns: rows appended as text, full batches of at most
//! [`BATCH_ROWS`] rows handed out with their lineage and delivery positions.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};

use super::general::parse_element;
use super::{BATCH_ROWS, FileOutcome, Lineage, Reject, excerpt};

/// Appends rows to the bronze columns and hands out full batches.
pub(super) struct RowBuilder<'l> {
    lineage: &'l Lineage,
    columns: [StringBuilder; 4],
    rescued: StringBuilder,
    pending: usize,
    pub(super) total: usize,
}

impl<'l> RowBuilder<'l> {
    pub(super) fn new(lineage: &'l Lineage) -> Self {
        Self {
            lineage,
            columns: std::array::from_fn(|_| StringBuilder::new()),
            rescued: StringBuilder::new(),
            pending: 0,
            total: 0,
        }
    }

    /// Parse one element; append it as a row, or record why it cannot be one.
    pub(super) fn push_element(
        &mut self,
        raw: &str,
        line: u64,
        validated: bool,
        outcome: &mut FileOutcome,
    ) {
        match parse_element(raw, validated) {
            Ok(element) => self.push_row(
                element.values.each_ref().map(|v| v.as_deref()),
                element.rescued_json().as_deref(),
            ),
            Err(message) => outcome.rejects.push(Reject {
                line,
                message,
                excerpt: excerpt(raw),
            }),
        }
    }

    pub(super) fn push_row(&mut self, values: [Option<&str>; 4], rescued: Option<&str>) {
        for (builder, value) in self.columns.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.rescued.append_option(rescued);
        self.pending += 1;
        self.total += 1;
    }

    pub(super) fn flush_if_full(&mut self, sink: &mut dyn FnMut(RecordBatch)) {
        if self.pending >= BATCH_ROWS {
            self.flush(sink);
        }
    }

    pub(super) fn flush(&mut self, sink: &mut dyn FnMut(RecordBatch)) {
        if self.pending == 0 {
            return;
        }
        let n = self.pending;
        self.pending = 0;
        let mut columns: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        columns.push(Arc::new(StringArray::from(vec![
            self.lineage
                .source_file
                .as_str();
            n
        ])));
        columns.push(Arc::new(Int64Array::from(vec![self.lineage.batch_id; n])));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![self.lineage.ingested_at; n]).with_timezone("UTC"),
        ));
        columns.push(Arc::new(self.rescued.finish()));
        let first = self.lineage.first_position + (self.total - n) as i64;
        columns.push(Arc::new(Int64Array::from_iter_values(
            first..first + n as i64,
        )));
        sink(
            RecordBatch::try_new(crate::catalog::BRONZE.schema(), columns)
                .expect("columns match the schema"),
        );
    }
}
