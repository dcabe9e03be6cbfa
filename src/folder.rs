//! A folder of small files, on the local disk or in an object store: the operations the
//! stream's checkpoint, the store probe and the source listing need, with one meaning on both.
//!
//! - On a local disk a file appears whole or not at all (temporary name, sync, rename), and
//!   "create only if absent" is a hard link ([`crate::atomic`]).
//! - In an object store every put is atomic, and "create only if absent" is a conditional put
//!   (`PutMode::Create`, `If-None-Match: *` on S3); the store probe
//!   ([`crate::storage::ensure_safe`]) refuses a store that does not honour it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use deltalake::logstore::object_store::path::Path as ObjectPath;
use deltalake::logstore::object_store::{
    self, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use url::Url;

use crate::atomic::{self, Durability};
use crate::error::{Error, Result};
use crate::failpoint::failpoint;

/// A folder: a local path, or a prefix in an object store.
#[derive(Debug, Clone)]
pub enum Folder {
    Local(PathBuf),
    Store {
        store: Arc<dyn ObjectStore>,
        /// The folder's prefix in `store`, without a trailing `/`.
        prefix: ObjectPath,
        /// The folder's URL, for messages.
        url: Url,
    },
}

impl Folder {
    /// The folder at `url` (a `file://` URL is a local folder), its store configured by
    /// `options` and the usual environment variables (`AWS_*`).
    pub fn at(url: &Url, options: &HashMap<String, String>) -> Result<Self> {
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| Error::Usage(format!("{url} does not name a local folder")))?;
            return Ok(Self::Local(path));
        }
        crate::warehouse::check_endpoint(options)?;
        // The store deltalake gives is rooted at the URL's path (a prefix store).
        let store = deltalake::logstore::store_for(url, options.clone()).map_err(|e| {
            Error::Usage(format!(
                "{url}: cannot reach the object store: {}",
                crate::error::chain_of(&e)
            ))
        })?;
        Ok(Self::Store {
            store,
            prefix: ObjectPath::default(),
            url: url.clone(),
        })
    }

    /// The folder `name` inside this one.
    pub fn join(&self, name: &str) -> Self {
        match self {
            Self::Local(path) => Self::Local(path.join(name)),
            Self::Store { store, prefix, url } => Self::Store {
                store: store.clone(),
                prefix: prefix.clone().join(name),
                url: url
                    .join(&format!("{name}/"))
                    .unwrap_or_else(|_| url.clone()),
            },
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }

    /// The folder as a user names it: a path, or a URL with a trailing `/`.
    pub fn display(&self) -> String {
        match self {
            Self::Local(path) => path.display().to_string(),
            Self::Store { url, .. } => with_slash(url.as_str()),
        }
    }

    /// The file `name` as a user names it.
    pub fn display_file(&self, name: &str) -> String {
        match self {
            Self::Local(path) => path.join(name).display().to_string(),
            Self::Store { url, .. } => format!("{}{name}", with_slash(url.as_str())),
        }
    }

    /// The path (or URL) of `name`, for errors.
    pub fn path_of(&self, name: &str) -> PathBuf {
        PathBuf::from(self.display_file(name))
    }

    /// The object of `name`: a name as a listing gave it (already in object_store's encoded
    /// form: a key `pct%41.json` lists as that text) is taken as it is, never encoded again,
    /// so every key a listing shows is read back by exactly that key.
    fn object(&self, name: &str) -> ObjectPath {
        match self {
            Self::Local(_) => ObjectPath::from(name),
            Self::Store { prefix, .. } => {
                let joined = if prefix.as_ref().is_empty() {
                    name.to_string()
                } else {
                    format!("{prefix}/{name}")
                };
                ObjectPath::parse(&joined).unwrap_or_else(|_| prefix.clone().join(name))
            }
        }
    }

    /// The bytes of `name`, `None` if there is no such file.
    pub async fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(name);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("read", path)(e)),
                }
            }
            Self::Store { store, .. } => {
                let location = self.object(name);
                let got = match store.get(&location).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(self.failed("read", name, e)),
                };
                let bytes = got
                    .bytes()
                    .await
                    .map_err(|e| self.failed("read", name, e))?;
                Ok(Some(bytes.to_vec()))
            }
        }
    }

    /// Whether `name` exists.
    pub async fn exists(&self, name: &str) -> Result<bool> {
        match self {
            Self::Local(dir) => Ok(dir.join(name).is_file()),
            Self::Store { store, .. } => match store.head(&self.object(name)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.failed("look for", name, e)),
            },
        }
    }

    /// The size, modification time (milliseconds) and e-tag of `name` (a local link is
    /// followed), `None` if there is no such file.
    pub async fn meta(&self, name: &str) -> Result<Option<(u64, i64, Option<String>)>> {
        match self {
            Self::Local(dir) => {
                let path = dir.join(name);
                match std::fs::metadata(&path) {
                    Ok(m) => Ok(Some((m.len(), crate::source::discover::mtime_ms(&m), None))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("inspect", path)(e)),
                }
            }
            Self::Store { store, .. } => match store.head(&self.object(name)).await {
                Ok(m) => Ok(Some((m.size, m.last_modified.timestamp_millis(), m.e_tag))),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.failed("look for", name, e)),
            },
        }
    }

    /// Write `name` only if it does not exist; whether this call created it. Locally,
    /// `durability` says whether it must survive a power cut; `failpoint_name` names a point
    /// between the write and the moment the name is taken (crash tests).
    pub async fn create_new(
        &self,
        name: &str,
        bytes: &[u8],
        durability: Durability,
        failpoint_name: Option<&str>,
    ) -> Result<bool> {
        match self {
            Self::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
                atomic::create_new(&dir.join(name), bytes, durability, failpoint_name)
            }
            Self::Store { store, .. } => {
                if let Some(point) = failpoint_name {
                    failpoint(point);
                }
                let options = PutOptions {
                    mode: PutMode::Create,
                    ..PutOptions::default()
                };
                let payload = PutPayload::from(bytes.to_vec());
                match store.put_opts(&self.object(name), payload, options).await {
                    Ok(_) => Ok(true),
                    Err(
                        object_store::Error::AlreadyExists { .. }
                        | object_store::Error::Precondition { .. },
                    ) => Ok(false),
                    Err(e) => Err(self.failed("create", name, e)),
                }
            }
        }
    }

    /// Write `name`, replacing it if it exists (whole or not at all).
    pub async fn replace(&self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Self::Local(dir) => atomic::write_atomically(&dir.join(name), bytes),
            Self::Store { store, .. } => store
                .put(&self.object(name), PutPayload::from(bytes.to_vec()))
                .await
                .map(|_| ())
                .map_err(|e| self.failed("write", name, e)),
        }
    }

    /// Add `line` at the end of `name` (created if absent). In an object store this rewrites
    /// the object: fit for a file only one process writes (a stream's progress records).
    pub async fn append(&self, name: &str, line: &[u8]) -> Result<()> {
        match self {
            Self::Local(dir) => {
                use std::io::Write;
                let path = dir.join(name);
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(line))
                    .map_err(Error::io("append to", path))
            }
            Self::Store { .. } => {
                let mut bytes = self.read(name).await?.unwrap_or_default();
                bytes.extend_from_slice(line);
                self.replace(name, &bytes).await
            }
        }
    }

    /// Delete `name`; a file that is not there is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self {
            Self::Local(dir) => match std::fs::remove_file(dir.join(name)) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("remove", dir.join(name))(e)),
            },
            Self::Store { store, .. } => match store.delete(&self.object(name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.failed("delete", name, e)),
            },
        }
    }

    /// The names of the files directly in the folder (not in sub-folders), any order; a
    /// folder that does not exist has none.
    pub async fn names(&self) -> Result<Vec<String>> {
        match self {
            // A link to a folder is listed as a file: discovery names what it is.
            Self::Local(dir) => local_entries(dir, |e| !e.file_type().is_ok_and(|t| t.is_dir())),
            Self::Store { .. } => Ok(self
                .objects()
                .await?
                .into_iter()
                .map(|(name, _)| name)
                .collect()),
        }
    }

    /// The names of the folders directly in this one (in an object store: the common prefixes
    /// one level down), any order; none if it does not exist.
    pub async fn subfolders(&self) -> Result<Vec<String>> {
        match self {
            // The entry's type from the listing (no look at each file: a table's folder holds
            // thousands); only a link is followed to see what it leads to.
            Self::Local(dir) => local_entries(dir, |e| match e.file_type() {
                Ok(t) if t.is_symlink() => e.path().is_dir(),
                Ok(t) => t.is_dir(),
                Err(_) => e.path().is_dir(),
            }),
            Self::Store { store, prefix, .. } => {
                let listed = store
                    .list_with_delimiter(Some(prefix))
                    .await
                    .map_err(|e| self.failed("list", "", e))?;
                Ok(listed
                    .common_prefixes
                    .iter()
                    .filter_map(|p| p.filename().map(str::to_string))
                    .collect())
            }
        }
    }

    /// The objects directly in an object-store folder, with their metadata (size,
    /// last-modified, e-tag), by name; empty for a local folder (listed by [`Folder::names`]).
    pub async fn objects(&self) -> Result<Vec<(String, ObjectMeta)>> {
        let Self::Store { store, prefix, .. } = self else {
            return Ok(Vec::new());
        };
        let listed = store
            .list_with_delimiter(Some(prefix))
            .await
            .map_err(|e| self.failed("list", "", e))?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                Some((name, meta))
            })
            .collect())
    }

    fn failed(&self, action: &'static str, name: &str, e: object_store::Error) -> Error {
        let mut message = store_message(&crate::error::chain_of(&e));
        // The store's reply says what is wrong; a user needs the first step to mend it.
        if message.contains("NoSuchBucket") {
            message = "the bucket does not exist (NoSuchBucket): medallion creates no buckets, \
                       create it first"
                .to_string();
        } else if [
            "credentials",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ]
        .iter()
        .any(|m| message.contains(m))
        {
            message.push_str(
                " (no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                 or AWS_PROFILE, and AWS_ENDPOINT_URL for a store that is not AWS)",
            );
        }
        Error::Store {
            action,
            location: self.display_file(name),
            message,
        }
    }
}

/// An object store's error without the XML body S3 replies with: the text before it, and the
/// reply's `Code` and `Message`.
fn store_message(text: &str) -> String {
    let Some(start) = text.find("<?xml") else {
        return text.to_string();
    };
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text[start..].find(&open)? + start + open.len();
        let to = text[from..].find('<')? + from;
        Some(text[from..to].to_string())
    };
    let head = text[..start].trim_end().trim_end_matches(':');
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(said)) => format!("{head}: {code}: {said}"),
        (Some(code), None) => format!("{head}: {code}"),
        _ => head.to_string(),
    }
}

fn with_slash(text: &str) -> String {
    if text.ends_with('/') {
        text.to_string()
    } else {
        format!("{text}/")
    }
}

/// The UTF-8 names of the entries of a local folder that `keep` keeps, any order; none if it
/// does not exist.
fn local_entries(
    dir: &std::path::Path,
    keep: impl Fn(&std::fs::DirEntry) -> bool,
) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        if keep(&entry)
            && let Ok(name) = entry.file_name().into_string()
        {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::logstore::object_store::memory::InMemory;

    fn in_memory() -> Folder {
        Folder::Store {
            store: Arc::new(InMemory::new()),
            prefix: ObjectPath::from("wh/t/_checkpoint"),
            url: Url::parse("memory:///wh/t/_checkpoint/").unwrap(),
        }
    }

    #[test]
    fn a_stores_xml_reply_is_cut_to_its_code_and_message() {
        let text = "Error performing PUT http://h/b/k in 4ms - Server returned non-2xx status \
                    code: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId\
                    </Code><Message>The key is wrong</Message></Error>";
        assert_eq!(
            store_message(text),
            "Error performing PUT http://h/b/k in 4ms - Server returned non-2xx status code: \
             403 Forbidden: InvalidAccessKeyId: The key is wrong"
        );
        assert_eq!(store_message("plain"), "plain");
    }

    #[tokio::test]
    async fn both_kinds_create_once_replace_append_list_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        for folder in [Folder::Local(dir.path().join("cp")), in_memory()] {
            let kind = folder.display();
            assert_eq!(folder.read("metadata").await.unwrap(), None, "{kind}");
            assert!(folder.names().await.unwrap().is_empty(), "{kind}");
            assert!(
                folder
                    .create_new("metadata", b"one", Durability::Crash, None)
                    .await
                    .unwrap()
            );
            assert!(
                !folder
                    .create_new("metadata", b"two", Durability::Crash, None)
                    .await
                    .unwrap(),
                "{kind}: a second create of one name must be refused"
            );
            assert_eq!(folder.read("metadata").await.unwrap().unwrap(), b"one");
            folder.replace("metadata", b"three").await.unwrap();
            assert_eq!(folder.read("metadata").await.unwrap().unwrap(), b"three");
            folder.append("log", b"a\n").await.unwrap();
            folder.append("log", b"b\n").await.unwrap();
            assert_eq!(folder.read("log").await.unwrap().unwrap(), b"a\nb\n");
            let sub = folder.join("offsets");
            sub.create_new("0", b"{}", Durability::Crash, None)
                .await
                .unwrap();
            let mut names = folder.names().await.unwrap();
            names.sort();
            assert_eq!(
                names,
                ["log", "metadata"],
                "{kind}: sub-folders are not files"
            );
            assert_eq!(sub.names().await.unwrap(), ["0"], "{kind}");
            folder.delete("log").await.unwrap();
            folder.delete("log").await.unwrap();
            assert!(!folder.exists("log").await.unwrap(), "{kind}");
        }
    }
}
