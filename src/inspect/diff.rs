//! `medallion diff <table> --from V [--to W]`: which rows a table gained, lost and changed
//! between two versions, matched by key (the table's merge key unless `--key` says otherwise),
//! with the old and new values side by side. Answers "what did this refresh do?".

use deltalake::datafusion::prelude::SessionContext;
use serde_json::Value;

use super::format::Rows;
use crate::catalog;
use crate::delta;
use crate::error::{Error, Result};
use crate::warehouse::Warehouse;

/// The key rows are matched by: the columns the table is merged on; `None` for tables
/// appended to (every column is the key).
pub fn default_key(table: &str) -> Option<&'static [&'static str]> {
    catalog::find(table)
        .map(|t| t.key)
        .filter(|key| !key.is_empty())
}

#[derive(Debug, Clone)]
pub struct DiffOptions {
    pub from: u64,
    /// `None`: the latest version.
    pub to: Option<u64>,
    /// `None`: the table's merge key.
    pub key: Option<Vec<String>>,
}

/// The differences: one row per added, removed or changed key, in key order, with a `change`
/// column, the key, then `old_<column>` and `new_<column>` for every other column.
#[derive(Debug, Clone)]
pub struct Diff {
    pub table: String,
    pub from: u64,
    pub to: u64,
    pub key: Vec<String>,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub rows: Rows,
}

impl Diff {
    /// A line for people, e.g. `fact_heartrate_gold v1 -> v3 (key mrn): 1 added, 0 removed, 2 changed`.
    pub fn summary(&self) -> String {
        format!(
            "{} v{} -> v{} (key {}): {} added, {} removed, {} changed",
            self.table,
            self.from,
            self.to,
            self.key.join(", "),
            self.added,
            self.removed,
            self.changed
        )
    }

    /// The rows with only `change`, the key, and the `old_`/`new_` pairs of the columns whose
    /// values differ in at least one row (an added or removed row differs wherever it has a
    /// value); and the names of the columns left out. What a person reading a wide table wants:
    /// a refresh that changed the counts of gold does not need `patient_name` twice per row.
    pub fn changed_columns(&self) -> (Rows, Vec<String>) {
        let pairs = 1 + self.key.len();
        let mut keep: Vec<usize> = (0..pairs.min(self.rows.columns.len())).collect();
        let mut hidden = Vec::new();
        for old in (pairs..self.rows.columns.len()).step_by(2) {
            let new = old + 1;
            if self.rows.rows.iter().any(|row| row[old] != row[new]) {
                keep.extend([old, new]);
            } else {
                let name = &self.rows.columns[old];
                hidden.push(name.strip_prefix("old_").unwrap_or(name).to_string());
            }
        }
        let rows = Rows {
            columns: keep.iter().map(|&i| self.rows.columns[i].clone()).collect(),
            rows: self
                .rows
                .rows
                .iter()
                .map(|row| keep.iter().map(|&i| row[i].clone()).collect())
                .collect(),
            lead: self.rows.lead,
        };
        (rows, hidden)
    }
}

pub async fn run(warehouse: &Warehouse, name: &str, options: &DiffOptions) -> Result<Diff> {
    let (id, latest) = super::open_table(warehouse, name).await?;
    super::check_version(&id, &latest, options.from)?;
    let to = match options.to {
        Some(to) => {
            super::check_version(&id, &latest, to)?;
            to
        }
        None => super::latest_version(&id, &latest)?,
    };
    let ctx = SessionContext::new();
    let old = delta::open_version(&id, options.from).await?;
    let new = delta::open_version(&id, to).await?;
    let old_provider = delta::provider(&id, &old, &ctx).await?;
    let new_provider = delta::provider(&id, &new, &ctx).await?;
    // Columns of both versions, in the new version's order.
    let old_schema = old_provider.schema();
    let columns: Vec<String> = new_provider
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|c| old_schema.field_with_name(c).is_ok())
        .collect();
    ctx.register_table("__old", old_provider)
        .map_err(id.query_err("read"))?;
    ctx.register_table("__new", new_provider)
        .map_err(id.query_err("read"))?;

    let key: Vec<String> = match &options.key {
        Some(key) => key.iter().map(|k| k.trim().to_string()).collect(),
        None => match default_key(name) {
            Some(key) => key.iter().map(|k| k.to_string()).collect(),
            None => columns.clone(),
        },
    };
    if let Some(missing) = key.iter().find(|k| !columns.contains(k)) {
        return Err(Error::Usage(format!(
            "table {name}: no column {missing:?} to use as a key (its columns: {})",
            columns.join(", ")
        )));
    }
    let others: Vec<&String> = columns.iter().filter(|c| !key.contains(c)).collect();

    let query = diff_query(&key, &others);
    let frame = ctx.sql(&query).await.map_err(id.query_err("diff"))?;
    let schema = frame.schema().as_arrow().clone();
    let batches = frame.collect().await.map_err(id.query_err("diff"))?;
    let mut rows = Rows::from_batches(&schema, &batches)?;
    rows.lead = 1 + key.len();
    let count = |kind: &str| {
        rows.rows
            .iter()
            .filter(|r| r[0] == Value::String(kind.into()))
            .count()
    };
    Ok(Diff {
        table: id.name.clone(),
        from: options.from,
        to,
        added: count("added"),
        removed: count("removed"),
        changed: count("changed"),
        key,
        rows,
    })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A full outer join of the two versions on the key: a row only in the new version is added,
/// only in the old one removed, in both with any other column different (NULL-aware) changed.
fn diff_query(key: &[String], others: &[&String]) -> String {
    let mut select = vec![
        "CASE WHEN o.__present IS NULL THEN 'added' \
         WHEN n.__present IS NULL THEN 'removed' ELSE 'changed' END AS change"
            .to_string(),
    ];
    for k in key {
        let k = quote(k);
        select.push(format!("COALESCE(o.{k}, n.{k}) AS {k}"));
    }
    for c in others {
        select.push(format!("o.{} AS {}", quote(c), quote(&format!("old_{c}"))));
        select.push(format!("n.{} AS {}", quote(c), quote(&format!("new_{c}"))));
    }
    let on: Vec<String> = key
        .iter()
        .map(|k| format!("(o.{0} IS NOT DISTINCT FROM n.{0})", quote(k)))
        .collect();
    let mut differs = vec![
        "o.__present IS NULL".to_string(),
        "n.__present IS NULL".to_string(),
    ];
    differs.extend(
        others
            .iter()
            .map(|c| format!("(o.{0} IS DISTINCT FROM n.{0})", quote(c))),
    );
    let order: Vec<String> = key.iter().map(|k| quote(k)).collect();
    format!(
        "SELECT {} FROM (SELECT *, TRUE AS __present FROM __old) o \
         FULL OUTER JOIN (SELECT *, TRUE AS __present FROM __new) n ON {} \
         WHERE {} ORDER BY {}, change",
        select.join(", "),
        on.join(" AND "),
        differs.join(" OR "),
        order.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_columns_keep_the_key_and_what_differs_in_some_row() {
        let mut rows = Rows::new(&[
            "change",
            "mrn",
            "old_name",
            "new_name",
            "old_count",
            "new_count",
            "old_min",
            "new_min",
        ]);
        rows.lead = 2;
        rows.push(vec![
            json!("changed"),
            json!(1),
            json!("Ada"),
            json!("Ada"),
            json!(3),
            json!(5),
            json!(60),
            json!(60),
        ]);
        rows.push(vec![
            json!("added"),
            json!(2),
            Value::Null,
            json!("Bo"),
            Value::Null,
            json!(4),
            Value::Null,
            Value::Null,
        ]);
        let diff = Diff {
            table: "gold".into(),
            from: 1,
            to: 2,
            key: vec!["mrn".into()],
            added: 1,
            removed: 0,
            changed: 1,
            rows,
        };
        let (shown, hidden) = diff.changed_columns();
        // The added row gives its name: a value where there was none is a change.
        assert_eq!(
            shown.columns,
            [
                "change",
                "mrn",
                "old_name",
                "new_name",
                "old_count",
                "new_count"
            ]
        );
        assert_eq!(
            shown.rows[1],
            [
                json!("added"),
                json!(2),
                Value::Null,
                json!("Bo"),
                Value::Null,
                json!(4)
            ]
        );
        assert_eq!(shown.lead, 2);
        assert_eq!(hidden, ["min"]);
    }
}
