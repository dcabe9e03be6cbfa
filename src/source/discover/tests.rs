//! Listing, completeness (the second look), what is passed over and why.

use super::*;

/// [`super::discover`] on a local folder.
async fn discover(dir: &Path, seen: &mut Seen, completeness: Completeness) -> Result<Discovery> {
    super::discover(&Folder::Local(dir.to_path_buf()), seen, completeness).await
}

/// Write `name` in `dir`, modified `age_s` seconds ago.
fn write_aged(dir: &Path, name: &str, text: &str, age_s: u64) {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let t = SystemTime::now() - Duration::from_secs(age_s);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

async fn look(dir: &Path, seen: &mut Seen) -> (Vec<String>, Vec<String>) {
    let found = discover(dir, seen, Completeness::default()).await.unwrap();
    let names = found.files.into_iter().map(|f| f.name).collect();
    (names, found.warnings)
}

#[test]
fn hidden_internal_and_temporary_names_are_skipped() {
    for name in ["01.json", "data.ndjson", "x"] {
        assert!(is_candidate_name(name), "{name}");
    }
    for name in [
        ".01.json",
        "_SUCCESS",
        "01.json.tmp",
        "a.partial",
        "b.crdownload",
        ".x.swp",
    ] {
        assert!(!is_candidate_name(name), "{name}");
    }
}

#[tokio::test]
async fn lists_new_files_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    for (name, age_s) in [
        ("b.json", 100),
        ("a.json", 100),
        ("c.json", 300),
        (".hidden", 500),
    ] {
        write_aged(dir.path(), name, "[]", age_s);
    }
    let mut seen = Seen::default();
    seen.files.insert("b.json".to_string(), None);
    let (names, warnings) = look(dir.path(), &mut seen).await;
    assert_eq!(names, ["c.json", "a.json"]);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn a_missing_folder_has_no_files() {
    let found = discover(
        Path::new("/nonexistent/x"),
        &mut Seen::default(),
        Completeness::default(),
    )
    .await
    .unwrap();
    assert!(found.files.is_empty() && found.warnings.is_empty());
}

#[tokio::test]
async fn a_symlink_to_a_file_is_listed_under_its_own_name() {
    // <data>/healthcare/streaming/tracker/link.json -> <data>/archive/real.json
    let data = tempfile::tempdir().unwrap();
    let tracker = data.path().join("healthcare/streaming/tracker");
    std::fs::create_dir_all(&tracker).unwrap();
    std::fs::create_dir_all(data.path().join("archive")).unwrap();
    write_aged(&data.path().join("archive"), "real.json", "[1, 2]", 100);
    std::os::unix::fs::symlink(
        data.path().join("archive/real.json"),
        tracker.join("link.json"),
    )
    .unwrap();
    let found = discover(&tracker, &mut Seen::default(), Completeness::default())
        .await
        .unwrap();
    assert_eq!(found.files.len(), 1);
    assert_eq!(found.files[0].name, "link.json");
    assert_eq!(found.files[0].size, 6, "the target's size");
    assert!(found.warnings.is_empty(), "{:?}", found.warnings);
}

#[tokio::test]
async fn regression_a_symlink_out_of_the_data_folder_is_not_followed() {
    // A link to any file the process can read (/etc/passwd) put its text in the
    // warehouse, as a quarantined file's excerpt.
    let data = tempfile::tempdir().unwrap();
    let tracker = data.path().join("healthcare/streaming/tracker");
    std::fs::create_dir_all(&tracker).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    write_aged(elsewhere.path(), "secret.json", "[1]", 100);
    std::os::unix::fs::symlink(elsewhere.path().join("secret.json"), tracker.join("x.json"))
        .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tracker.join("passwd.json")).unwrap();
    let found = discover(&tracker, &mut Seen::default(), Completeness::default())
        .await
        .unwrap();
    assert!(found.files.is_empty(), "{:?}", found.files);
    assert_eq!(found.warnings.len(), 2, "{:?}", found.warnings);
    for w in &found.warnings {
        assert!(w.contains("outside the data folder"), "{w}");
    }
}

#[tokio::test]
async fn what_cannot_be_ingested_is_named_with_its_reason() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_aged(d, "ok.json", "[]", 100);
    std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling.json")).unwrap();
    std::os::unix::fs::symlink(d.join("loop.json"), d.join("loop.json")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::os::unix::fs::symlink(d.join("sub"), d.join("to_folder.json")).unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b"caf\xe9.json")), "[]").unwrap();
    // Skipped by design, quietly.
    std::fs::create_dir(d.join("_archive")).unwrap();
    std::fs::write(d.join(std::ffi::OsStr::from_bytes(b".\xff")), "[]").unwrap();
    std::os::unix::fs::symlink(d.join("nowhere"), d.join(".hidden_link")).unwrap();

    let mut seen = Seen::default();
    let (names, warnings) = look(d, &mut seen).await;
    assert_eq!(names, ["ok.json"]);
    let expected = [
        format!(
            "{}: the file name is not valid UTF-8",
            d.join("caf\u{FFFD}.json").display()
        ),
        format!(
            "{}: a symbolic link to {}, which does not exist; not ingested",
            d.join("dangling.json").display(),
            d.join("nowhere").display()
        ),
        format!(
            "{}: a symbolic link to {} that cannot be followed (",
            d.join("loop.json").display(),
            d.join("loop.json").display()
        ),
        format!(
            "{}: a folder (bronze reads only the files directly in the tracker folder;",
            d.join("sub").display()
        ),
        format!(
            "{}: a symbolic link to the folder {} (bronze reads only",
            d.join("to_folder.json").display(),
            d.join("sub").display()
        ),
    ];
    assert_eq!(warnings.len(), expected.len(), "{warnings:#?}");
    for (warning, start) in warnings.iter().zip(&expected) {
        assert!(
            warning.starts_with(start.as_str()),
            "{warning}\nexpected {start}"
        );
    }

    // Said once per run.
    let (_, again) = look(d, &mut seen).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_file_changed_after_its_batch_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_aged(d, "01.json", "[]", 100);
    let mut seen = Seen::default();
    let found = discover(d, &mut seen, Completeness::default())
        .await
        .unwrap();
    seen.record(7, &found.files);
    assert_eq!(
        look(d, &mut seen).await,
        (vec![], vec![]),
        "unchanged: nothing to say"
    );

    write_aged(d, "01.json", "[1]", 50);
    let (names, warnings) = look(d, &mut seen).await;
    assert!(names.is_empty());
    assert_eq!(
        warnings,
        [format!(
            "{}: changed after it was ingested in batch 7 (its size is 3 bytes, was 2); \
             not ingested again: write new readings to a new file",
            d.join("01.json").display()
        )]
    );
    // Changed again, in the same run: said already.
    write_aged(d, "01.json", "[1, 2]", 40);
    assert_eq!(look(d, &mut seen).await, (vec![], vec![]));

    // Same size, new time.
    write_aged(d, "02.json", "[]", 100);
    let found = discover(d, &mut seen, Completeness::default())
        .await
        .unwrap();
    seen.record(8, &found.files);
    write_aged(d, "02.json", "[]", 30);
    let (_, warnings) = look(d, &mut seen).await;
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("batch 8 (its modification time moved)"),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_file_still_being_written_is_taken_once_it_stops_changing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("01.json");
    let append = |text: &str| {
        use std::io::Write;
        let mut file = std::fs::File::options().append(true).open(&path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    };
    // Younger than the settle time throughout: only the second look decides.
    let completeness = Completeness {
        settle: Duration::from_secs(3600),
        recheck: Duration::from_millis(50),
    };
    let mut seen = Seen::default();
    std::fs::write(&path, "[{\"mrn\": \"1\"},").unwrap();
    {
        // The first look lists the file, then waits to look again; the writer appends
        // in between.
        let mut looking = std::pin::pin!(discover(dir.path(), &mut seen, completeness));
        assert!(futures::poll!(looking.as_mut()).is_pending());
        append(" {\"mrn\": \"2\"}");
        let found = looking.await.unwrap();
        assert!(
            found.files.is_empty(),
            "taken while it grew: {:?}",
            found.files
        );
        assert!(found.warnings.is_empty(), "{:?}", found.warnings);
    }
    // Finished: the same size and time at both looks.
    append("]");
    let whole = std::fs::metadata(&path).unwrap();
    let found = discover(dir.path(), &mut seen, completeness).await.unwrap();
    assert_eq!(
        found.files,
        [SourceFile {
            name: "01.json".into(),
            size: whole.len(),
            mtime_ms: mtime_ms(&whole),
            e_tag: None,
        }]
    );
}

#[tokio::test]
async fn a_file_known_by_name_only_is_not_compared() {
    let dir = tempfile::tempdir().unwrap();
    write_aged(dir.path(), "01.json", "[]", 100);
    let mut seen = Seen::default();
    seen.files.insert("01.json".to_string(), None);
    assert_eq!(look(dir.path(), &mut seen).await, (vec![], vec![]));
}

#[tokio::test]
async fn objects_are_complete_when_listed_and_a_rewritten_one_is_named_once() {
    use deltalake::logstore::object_store::memory::InMemory;
    use deltalake::logstore::object_store::path::Path as ObjectPath;
    use deltalake::logstore::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
    let store = std::sync::Arc::new(InMemory::new());
    let put = |name: &str, text: &'static str| {
        let store = store.clone();
        let path = ObjectPath::from(format!("data/tracker/{name}"));
        async move { store.put(&path, PutPayload::from(text)).await.unwrap() }
    };
    put("02.json", "[]").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    put("01.json", "[1]").await;
    put(".hidden.json", "[]").await;
    put("sub/inner.json", "[]").await;
    let folder = Folder::Store {
        store: store.clone() as std::sync::Arc<dyn ObjectStore>,
        prefix: ObjectPath::from("data/tracker"),
        url: url::Url::parse("s3://lake/data/tracker/").unwrap(),
    };
    // No settle wait: an object is whole once listed. Oldest first, hidden names skipped,
    // objects under a deeper prefix are not in this folder.
    let mut seen = Seen::default();
    let never = Completeness {
        settle: Duration::from_secs(3600),
        recheck: Duration::from_secs(3600),
    };
    let found = super::discover(&folder, &mut seen, never).await.unwrap();
    let names: Vec<_> = found.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["02.json", "01.json"]);
    assert!(found.files.iter().all(|f| f.e_tag.is_some()));
    seen.record(0, &found.files);
    // Rewritten with the same size: the e-tag tells, said once.
    put("01.json", "[2]").await;
    let again = super::discover(&folder, &mut seen, never).await.unwrap();
    assert!(again.files.is_empty());
    assert_eq!(again.warnings.len(), 1, "{:?}", again.warnings);
    assert!(
        again.warnings[0].contains("s3://lake/data/tracker/01.json"),
        "{:?}",
        again.warnings
    );
    let third = super::discover(&folder, &mut seen, never).await.unwrap();
    assert!(third.warnings.is_empty());
}
