//! `--clean-source archive=FOLDER|delete`, as Spark's file source `cleanSource`: once a batch is
//! committed and marked done, its source files are moved into the archive folder (under their
//! own names) or deleted, and `_cleaned/<N>` records what became of each.
//!
//! The order is what makes it safe: a file is touched only after its rows are in bronze and
//! the batch's done marker is written, so a crash before the clean-up leaves a done batch whose
//! files are still there (never planned again: the checkpoint holds them), and the next start
//! cleans every done batch that was planned to be cleaned and has no `_cleaned` marker. A file
//! already gone is taken as moved by the run that crashed. An archive copy is written whole and
//! synced before the source file is removed; an archive file of that name with other bytes is
//! never replaced: the source file stays, and the marker says why.
//!
//! A symbolic link in the source folder is removed as a link (its target is not touched); with
//! `archive`, the bytes it leads to are copied into the archive first.

use std::io::ErrorKind;

use crate::atomic::{self, Durability};
use crate::error::{Error, Result};
use crate::failpoint::{failpoint, points};
use crate::folder::Folder;
use crate::stream::checkpoint::{Checkpoint, Cleaned, Plan};
use crate::stream::state::{CleanAction, CleanedFile};
use crate::warehouse::{Location, StorageOptions, parse_location};

/// What to do with a batch's source files once it is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanSource {
    Delete,
    Archive(Location),
}

/// Parse `--clean-source`: `delete` or `archive=FOLDER` (a path or an object-store URL).
pub fn parse(text: &str) -> std::result::Result<CleanSource, String> {
    if text == "delete" {
        return Ok(CleanSource::Delete);
    }
    match text.split_once('=') {
        Some(("archive", folder)) if !folder.is_empty() => {
            Ok(CleanSource::Archive(parse_location(folder)?))
        }
        _ => Err(format!(
            "{text:?}: expected delete or archive=FOLDER (e.g. archive=/data/archive or \
             archive=s3://bucket/archive/)"
        )),
    }
}

impl CleanSource {
    /// As a plan records it (and [`parse`] reads it back).
    pub fn to_text(&self) -> String {
        match self {
            Self::Delete => "delete".into(),
            Self::Archive(location) => format!("archive={}", location.display()),
        }
    }
}

/// Check `--clean-source` against a source before anything is written: an archive folder must
/// not be the source folder, nor the folder another stream of the warehouse reads (`bound`:
/// their checkpoints' sources), since archived files would be listed and ingested again; nor
/// lie inside the warehouse (`warehouse`, when local), where vacuum would take archived files
/// for orphans. A local one is created. Returns the text the plans record (a local archive
/// folder made absolute).
pub(super) fn check(
    clean: &CleanSource,
    source: &Folder,
    bound: &[String],
    warehouse: Option<&std::path::Path>,
) -> Result<String> {
    let CleanSource::Archive(Location::Local(path)) = clean else {
        if let CleanSource::Archive(Location::Url(url)) = clean {
            let url = url.as_str().trim_end_matches('/');
            let taken = bound.iter().any(|b| b.trim_end_matches('/') == url);
            if taken || (!source.is_local() && url == source.display().trim_end_matches('/')) {
                return Err(same_folder(url));
            }
        }
        return Ok(clean.to_text());
    };
    std::fs::create_dir_all(path).map_err(Error::io("create the archive folder", path))?;
    let archive = std::fs::canonicalize(path).map_err(Error::io("resolve", path))?;
    let read_by_a_stream = bound.iter().any(|b| std::path::Path::new(b) == archive);
    let is_source = matches!(source, Folder::Local(dir)
        if std::fs::canonicalize(dir).is_ok_and(|dir| dir == archive));
    if read_by_a_stream || is_source {
        return Err(same_folder(&archive.display().to_string()));
    }
    if let Some(root) = warehouse.and_then(|w| std::fs::canonicalize(w).ok())
        && archive.starts_with(&root)
    {
        return Err(Error::Usage(format!(
            "--clean-source archive={} is inside the warehouse ({}): vacuum would take the \
             archived files for orphans and delete them; give a folder outside it",
            archive.display(),
            root.display()
        )));
    }
    Ok(CleanSource::Archive(Location::Local(archive)).to_text())
}

fn same_folder(folder: &str) -> Error {
    Error::Usage(format!(
        "--clean-source archive={folder} is a folder a bronze stream reads (this one's, or \
         another source's): archived files would be listed and ingested again; give another \
         folder (a sub-folder of a source is fine: only the files directly in it are read)"
    ))
}

/// Clean the files of a done batch as its plan asked, and record it in `_cleaned/<N>`; the
/// warnings to show (files kept, and why).
pub(super) async fn clean_batch(
    checkpoint: &Checkpoint,
    source: &Folder,
    plan: &Plan,
    options: &StorageOptions,
) -> Result<Vec<String>> {
    let Some(text) = &plan.clean_source else {
        return Ok(Vec::new());
    };
    let clean = parse(text).map_err(|message| Error::Checkpoint {
        path: checkpoint
            .dir()
            .join("offsets")
            .path_of(&plan.batch_id.to_string()),
        message: format!("its cleanSource {text:?}: {message}"),
    })?;
    let archive = match &clean {
        CleanSource::Delete => None,
        CleanSource::Archive(location) => Some(location.folder(options)?),
    };
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for (i, file) in plan.files.iter().enumerate() {
        if i > 0 {
            failpoint(points::CLEAN_BETWEEN_FILES);
        }
        let done = match changed_since(source, file).await? {
            Some(how) => CleanedFile {
                name: file.name.clone(),
                action: CleanAction::Kept,
                detail: Some(format!(
                    "{how} since batch {} took it, so it is not the file bronze holds: left \
                     where it is (it is not ingested again: write new readings to a new file)",
                    plan.batch_id
                )),
            },
            None => clean_file(source, archive.as_ref(), &file.name).await?,
        };
        if done.action == CleanAction::Kept {
            warnings.push(format!(
                "{}: left in the source folder after batch {}: {}",
                source.display_file(&file.name),
                plan.batch_id,
                done.detail.as_deref().unwrap_or("")
            ));
        }
        files.push(done);
    }
    checkpoint
        .mark_cleaned(&Cleaned {
            batch_id: plan.batch_id,
            files,
        })
        .await?;
    Ok(warnings)
}

/// How a source file differs from what its batch's plan recorded (size, time, e-tag), if it
/// does: a file rewritten after its batch took it is not the file bronze holds, and is never
/// moved or deleted as if it were. A file that is gone is not changed (clean-up finds it
/// moved, or says it is gone).
async fn changed_since(
    source: &Folder,
    planned: &crate::source::discover::SourceFile,
) -> Result<Option<String>> {
    let Some((size, mtime_ms, e_tag)) = source.meta(&planned.name).await? else {
        return Ok(None);
    };
    // An object's e-tag says it all (a HEAD's time may be coarser than a listing's).
    let tagged = e_tag.is_some() && planned.e_tag.is_some();
    Ok(if size != planned.size {
        Some(format!("its size is {size} bytes, was {}", planned.size))
    } else if tagged && e_tag != planned.e_tag {
        Some("its e-tag changed".to_string())
    } else if !tagged && mtime_ms != planned.mtime_ms {
        Some("its modification time moved".to_string())
    } else {
        None
    })
}

/// Move (or delete) one source file.
async fn clean_file(source: &Folder, archive: Option<&Folder>, name: &str) -> Result<CleanedFile> {
    let cleaned = |action, detail: Option<String>| CleanedFile {
        name: name.to_string(),
        action,
        detail,
    };
    let Some(archive) = archive else {
        source.delete(name).await?;
        return Ok(cleaned(CleanAction::Deleted, None));
    };
    let to = archive.display_file(name);
    if let (Folder::Local(from_dir), Folder::Local(to_dir)) = (source, archive) {
        let (from, target) = (from_dir.join(name), to_dir.join(name));
        let is_link = match std::fs::symlink_metadata(&from) {
            Ok(m) => m.file_type().is_symlink(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return gone_or_archived(name, archive, &to).await;
            }
            Err(e) => return Err(Error::io("read", from)(e)),
        };
        if !is_link {
            match std::fs::hard_link(&from, &target) {
                Ok(()) => {
                    atomic::sync_dir(to_dir)?;
                    source.delete(name).await?;
                    return Ok(cleaned(CleanAction::Archived, Some(to)));
                }
                // Another file system: copy below. A name taken: compared below.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::CrossesDevices | ErrorKind::AlreadyExists
                    ) => {}
                Err(e) => return Err(Error::io("archive", from)(e)),
            }
        }
    }
    let Some(bytes) = source.read(name).await? else {
        return gone_or_archived(name, archive, &to).await;
    };
    if !archive
        .create_new(name, &bytes, Durability::PowerCut, None)
        .await?
    {
        // Moved by a run that crashed before removing it, or another file of that name.
        if archive.read(name).await?.as_deref() != Some(bytes.as_slice()) {
            return Ok(cleaned(
                CleanAction::Kept,
                Some(format!(
                    "{to} exists with other bytes; it is not replaced (move one of them, and \
                     delete the source file by hand once its rows are in bronze: they are)"
                )),
            ));
        }
    }
    source.delete(name).await?;
    Ok(cleaned(CleanAction::Archived, Some(to)))
}

/// A source file that is gone: archived by a run that crashed before it recorded so, or
/// removed by someone else.
async fn gone_or_archived(name: &str, archive: &Folder, to: &str) -> Result<CleanedFile> {
    let archived = archive.exists(name).await?;
    Ok(CleanedFile {
        name: name.to_string(),
        action: if archived {
            CleanAction::Archived
        } else {
            CleanAction::Kept
        },
        detail: Some(if archived {
            to.to_string()
        } else {
            "it was gone from the source folder before clean-up".to_string()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_source_parses_delete_and_archive_folders() {
        let cases: [(&str, Option<CleanSource>); 6] = [
            ("delete", Some(CleanSource::Delete)),
            (
                "archive=/data/old",
                Some(CleanSource::Archive(Location::Local("/data/old".into()))),
            ),
            (
                "archive=s3://lake/archive/",
                Some(CleanSource::Archive(Location::Url(
                    url::Url::parse("s3://lake/archive/").unwrap(),
                ))),
            ),
            ("archive=", None),
            ("move", None),
            ("Delete", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text).ok(), expected, "{text}");
            if let Some(clean) = expected {
                assert_eq!(parse(&clean.to_text()).unwrap(), clean, "{text}");
            }
        }
    }

    #[tokio::test]
    async fn a_file_is_archived_once_and_an_archive_file_with_other_bytes_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, arc) = (tmp.path().join("src"), tmp.path().join("arc"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&arc).unwrap();
        let (source, archive) = (Folder::Local(src.clone()), Folder::Local(arc.clone()));
        std::fs::write(src.join("a.json"), "[1]").unwrap();
        let a = clean_file(&source, Some(&archive), "a.json").await.unwrap();
        assert_eq!(a.action, CleanAction::Archived);
        assert!(!src.join("a.json").exists());
        assert_eq!(std::fs::read_to_string(arc.join("a.json")).unwrap(), "[1]");
        // Again (a crash after the move, before the marker): found archived.
        let again = clean_file(&source, Some(&archive), "a.json").await.unwrap();
        assert_eq!(again.action, CleanAction::Archived);
        // The same bytes in the archive already: the source goes.
        std::fs::write(src.join("b.json"), "[2]").unwrap();
        std::fs::write(arc.join("b.json"), "[2]").unwrap();
        let b = clean_file(&source, Some(&archive), "b.json").await.unwrap();
        assert_eq!(b.action, CleanAction::Archived);
        assert!(!src.join("b.json").exists());
        // Other bytes: both stay.
        std::fs::write(src.join("c.json"), "[3]").unwrap();
        std::fs::write(arc.join("c.json"), "[other]").unwrap();
        let c = clean_file(&source, Some(&archive), "c.json").await.unwrap();
        assert_eq!(c.action, CleanAction::Kept, "{c:?}");
        assert_eq!(std::fs::read_to_string(src.join("c.json")).unwrap(), "[3]");
        assert_eq!(
            std::fs::read_to_string(arc.join("c.json")).unwrap(),
            "[other]"
        );
        // A link: its target's bytes are archived, the link goes, the target stays.
        std::fs::write(tmp.path().join("target.json"), "[4]").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("target.json"), src.join("d.json")).unwrap();
        let d = clean_file(&source, Some(&archive), "d.json").await.unwrap();
        assert_eq!(d.action, CleanAction::Archived);
        assert!(std::fs::symlink_metadata(src.join("d.json")).is_err());
        assert!(
            !std::fs::symlink_metadata(arc.join("d.json"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(arc.join("d.json")).unwrap(), "[4]");
        assert!(tmp.path().join("target.json").exists());
        // Delete: gone; a link deleted leaves its target.
        std::os::unix::fs::symlink(tmp.path().join("target.json"), src.join("e.json")).unwrap();
        let e = clean_file(&source, None, "e.json").await.unwrap();
        assert_eq!(e.action, CleanAction::Deleted);
        assert!(tmp.path().join("target.json").exists());
    }
}
