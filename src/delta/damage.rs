//! A look at a table's commit files before a job trusts them.
//!
//! Delta readers (deltalake's kernel included) read a 0-byte commit file as an empty commit
//! and move on to its version: a torn write then silently drops what the commit recorded
//! (e.g. the upstream version a consumer consumed, so it reads its input again and counts it
//! twice). A medallion job stops instead, naming the file; it never "repairs" a log. The
//! newest checkpoint must be a whole Parquet file and `_last_checkpoint` must point at one
//! (deltalake's own errors for those name no file).

use deltalake::DeltaTable;
use deltalake::logstore::object_store::ObjectStoreExt;
use futures::TryStreamExt;

use super::TableId;
use crate::error::{Error, Result};

const EMPTY: &str = "the commit file is empty (0 bytes): a torn write";

/// What is wrong with one commit file, if anything: `(line, message)`.
pub fn damage(bytes: &[u8]) -> Option<(Option<u64>, String)> {
    if bytes.is_empty() {
        return Some((None, EMPTY.into()));
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some((None, "the commit file is not UTF-8 text".into()));
    };
    let mut actions = 0;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => actions += 1,
            Ok(_) => return Some((Some(index as u64 + 1), "not a JSON object (action)".into())),
            Err(e) => return Some((Some(index as u64 + 1), format!("not valid JSON: {e}"))),
        }
    }
    (actions == 0).then(|| (None, "the commit file holds no action".into()))
}

/// The version of a `_delta_log` file name: `NNNNNNNNNNNNNNNNNNNN.json` is a commit,
/// `NNNNNNNNNNNNNNNNNNNN.checkpoint[.k.n].parquet` a checkpoint.
fn parse_name(name: &str) -> Option<(u64, bool)> {
    let (digits, rest) = name.split_at_checked(20)?;
    let version = digits
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| digits.parse().ok())??;
    match rest {
        ".json" => Some((version, true)),
        _ if rest.starts_with(".checkpoint") && rest.ends_with(".parquet") => {
            Some((version, false))
        }
        _ => None,
    }
}

/// Check the commit files a reader of the table at `version` (None: the latest) replays: from
/// the checkpoint `_last_checkpoint` names (the whole log for a version before it, or without
/// one), every commit must be non-empty, and those after the newest checkpoint (the ones read
/// as JSON) must parse. Listing from the checkpoint keeps the cost of opening a table flat
/// however long its log (an object store lists from an offset). `table` need not be loaded.
pub async fn check(id: &TableId, table: &DeltaTable, version: Option<u64>) -> Result<()> {
    let store = table.log_store().object_store(None);
    let prefix = deltalake::Path::from("_delta_log");
    let pointed = super::log::last_checkpoint(table.log_store().as_ref()).await;
    let from = pointed.filter(|&c| c > 0 && version.is_none_or(|v| v >= c));
    let listing = match from {
        // Strictly after `<c-1>.json`: `<c>.checkpoint.parquet`, `<c>.json` and later.
        Some(c) => {
            let offset = deltalake::Path::from(format!("_delta_log/{:020}.json", c - 1));
            store.list_with_offset(Some(&prefix), &offset)
        }
        None => store.list(Some(&prefix)),
    };
    let listed: Vec<_> = listing
        .try_collect()
        .await
        .map_err(|e| id.err("list the log")(e.into()))?;
    let mut commits = Vec::new();
    let mut checkpoint = None;
    let mut checkpoints = Vec::new();
    for meta in &listed {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        match parse_name(name) {
            Some((version, true)) => {
                if meta.size == 0 {
                    return Err(damaged(id, &meta.location, None, EMPTY.into()));
                }
                commits.push((version, meta.location.clone()));
            }
            Some((version, false)) => {
                checkpoint = checkpoint.max(Some(version));
                checkpoints.push((version, meta.location.clone(), meta.size));
            }
            None => {}
        }
    }
    // The newest checkpoint is what a reader starts from: it must be a whole Parquet file
    // (`PAR1` at both ends), and `_last_checkpoint` must point at one that is there.
    for (version, location, size) in &checkpoints {
        if Some(*version) != checkpoint {
            continue;
        }
        let whole = *size >= 8 && {
            let read = |range| store.get_range(location, range);
            let (head, tail) = (read(0..4).await, read(size - 4..*size).await);
            matches!((head, tail), (Ok(h), Ok(t)) if h.as_ref() == b"PAR1" && t.as_ref() == b"PAR1")
        };
        if !whole {
            return Err(damaged(
                id,
                location,
                None,
                format!(
                    "the checkpoint ({size} bytes) is not a whole Parquet file (a torn write?)"
                ),
            ));
        }
    }
    if let Some(version) = pointed
        && !checkpoints.iter().any(|(v, _, _)| *v == version)
    {
        return Err(damaged(
            id,
            &deltalake::Path::from("_delta_log/_last_checkpoint"),
            None,
            format!("it points at a checkpoint of v{version}, which is not in the log"),
        ));
    }
    for (version, location) in commits {
        if checkpoint.is_some_and(|c| version <= c) {
            continue;
        }
        let bytes = store
            .get(&location)
            .await
            .map_err(|e| id.err("read the log")(e.into()))?
            .bytes()
            .await
            .map_err(|e| id.err("read the log")(e.into()))?;
        if let Some((line, message)) = damage(&bytes) {
            return Err(damaged(id, &location, line, message));
        }
    }
    Ok(())
}

fn damaged(id: &TableId, location: &deltalake::Path, line: Option<u64>, message: String) -> Error {
    let path = match id.url.join(location.as_ref()) {
        Ok(url) => url
            .to_file_path()
            .map_or(url.to_string(), |p| p.display().to_string()),
        Err(_) => location.to_string(),
    };
    Error::DamagedLog {
        table: id.name.clone(),
        path,
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_files_are_whole_or_named_as_damaged() {
        let cases: [(&[u8], Option<&str>); 7] = [
            (b"", Some("empty (0 bytes)")),
            (b"\n\n", Some("holds no action")),
            (b"{\"add\":{}}\n{\"commitInfo\":{}}\n", None),
            (b"{\"add\":{}}\n{\"commitInfo\":", Some("not valid JSON")),
            (b"{\"add\":{}}\n[1]\n", Some("not a JSON object")),
            (b"\xff\xfe", Some("not UTF-8")),
            (b"{\"txn\":{}}", None),
        ];
        for (bytes, expected) in cases {
            let found = damage(bytes).map(|(_, m)| m);
            match expected {
                None => assert_eq!(found, None, "{bytes:?}"),
                Some(text) => assert!(
                    found.as_deref().is_some_and(|m| m.contains(text)),
                    "{bytes:?}: {found:?}"
                ),
            }
        }
        assert_eq!(damage(b"{}\n{").map(|(l, _)| l), Some(Some(2)));
    }

    #[test]
    fn log_file_names_give_their_version_and_kind() {
        assert_eq!(parse_name("00000000000000000012.json"), Some((12, true)));
        assert_eq!(
            parse_name("00000000000000000100.checkpoint.parquet"),
            Some((100, false))
        );
        assert_eq!(
            parse_name("00000000000000000100.checkpoint.0000000001.0000000002.parquet"),
            Some((100, false))
        );
        for other in [
            "_last_checkpoint",
            "00000000000000000012.crc",
            "_commit_1234.json.tmp",
            "0000000000000000001x.json",
            "12.json",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }
}
