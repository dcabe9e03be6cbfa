//! Whether a warehouse's store can be trusted with commits. Every "create only if absent" of
//! medallion (Delta commits, the checkpoint's metadata, plans and done markers) is a
//! conditional put; a store that accepts a second create of the same key silently lets two
//! writers take one version, and one of them loses its commit without an error (seen: an
//! S3-compatible store lost 47 of 80 acknowledged commits in an 8-writer race).
//!
//! So before the first write to an object-store warehouse, [`ensure_safe`] probes it once:
//! create a marker object, create it again (which must be refused), read it back (the first
//! must have stayed). A store that passes gets a record (`_medallion/store-check.json`), so the
//! probe is not repeated every run; one that fails is refused with the reason and what would
//! make it safe. A local warehouse is safe by construction (a hard link cannot take a name
//! twice) and is not probed unless asked (`medallion check-store`).

use serde::{Deserialize, Serialize};

use crate::atomic::Durability;
use crate::error::{Error, Result};
use crate::folder::Folder;
use crate::warehouse::Warehouse;

/// The warehouse sub-folder of medallion's own records.
const FOLDER: &str = "_medallion";
/// The record of a passed probe, in [`FOLDER`].
const RECORD: &str = "store-check.json";

/// What a probe found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreCheck {
    /// The warehouse probed.
    pub location: String,
    /// Whether a second create of the same object was refused.
    pub put_if_absent: bool,
    /// When it was probed (RFC 3339).
    pub checked_at: String,
    /// Milliseconds the probe took.
    pub duration_ms: u64,
    /// The medallion that probed it.
    pub medallion: String,
}

impl crate::output::Report for StoreCheck {
    fn summary(&self) -> String {
        format!(
            "check-store: {} honours put-if-absent (a second create of one object was refused); \
             safe for concurrent writers ({} ms)",
            self.location, self.duration_ms
        )
    }
}

/// Probe the store of `folder` now: create a marker twice (the second must be refused) and
/// read it back. The marker is deleted afterwards.
pub async fn probe(folder: &Folder) -> Result<StoreCheck> {
    let start = std::time::Instant::now();
    let location = folder.display();
    let probes = folder.join(FOLDER).join("probe");
    let name = uuid::Uuid::new_v4().to_string();
    let first = probes
        .create_new(&name, b"first\n", Durability::Crash, None)
        .await?;
    if !first {
        return Err(unsafe_store(
            &location,
            "the store refused to create a new, unique object as if it existed",
        ));
    }
    let second = probes
        .create_new(&name, b"second\n", Durability::Crash, None)
        .await;
    let kept = probes.read(&name).await;
    probes.delete(&name).await?;
    let refused = !second?;
    let kept_first = kept?.as_deref() == Some(b"first\n".as_slice());
    if !refused || !kept_first {
        return Err(unsafe_store(
            &location,
            "the store accepted a second create of the same object (a PUT with `If-None-Match: \
             *` on a key that exists): it does not honour put-if-absent, so two writers could \
             both commit the same table version and one commit would be lost without an error",
        ));
    }
    Ok(StoreCheck {
        location,
        put_if_absent: true,
        checked_at: chrono::Utc::now().to_rfc3339(),
        duration_ms: start.elapsed().as_millis() as u64,
        medallion: env!("CARGO_PKG_VERSION").to_string(),
    })
}

fn unsafe_store(location: &str, why: &str) -> Error {
    Error::UnsafeStore {
        location: location.to_string(),
        message: format!(
            "{why}. medallion writes nothing to it. Use a store that honours conditional \
             writes (AWS S3, MinIO, Cloudflare R2 and moto do; for another S3-compatible \
             store, check that its `If-None-Match: *` support is enabled), or give a local \
             --warehouse folder"
        ),
    }
}

/// Before the first write to `warehouse`: probe its store once and keep the record, or refuse
/// it. A local warehouse needs no probe.
pub async fn ensure_safe(warehouse: &Warehouse) -> Result<()> {
    if warehouse.is_local() {
        return Ok(());
    }
    let records = warehouse.folder()?.join(FOLDER);
    if let Some(bytes) = records.read(RECORD).await?
        && serde_json::from_slice::<StoreCheck>(&bytes).is_ok_and(|c| c.put_if_absent)
    {
        return Ok(());
    }
    let check = probe(&warehouse.folder()?).await?;
    record(&records, &check).await
}

/// `medallion check-store`: probe the warehouse's store now, and keep the record if it passed.
pub async fn check_store(warehouse: &Warehouse) -> Result<StoreCheck> {
    let folder = warehouse.folder()?;
    let check = probe(&folder).await?;
    record(&folder.join(FOLDER), &check).await?;
    Ok(check)
}

async fn record(records: &Folder, check: &StoreCheck) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(check).expect("a store check serialises");
    bytes.push(b'\n');
    records.replace(RECORD, &bytes).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::logstore::object_store::memory::InMemory;
    use deltalake::logstore::object_store::path::Path as ObjectPath;
    use deltalake::logstore::object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use futures::StreamExt;
    use futures::stream::BoxStream;
    use url::Url;

    use super::*;

    /// A store that takes every PUT, "create only if absent" included, as some S3-compatible
    /// stores do.
    #[derive(Debug)]
    struct AcceptsEveryPut(InMemory);

    impl std::fmt::Display for AcceptsEveryPut {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "AcceptsEveryPut")
        }
    }

    type Boxed<'a, T> = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = deltalake::logstore::object_store::Result<T>>
                + Send
                + 'a,
        >,
    >;

    impl ObjectStore for AcceptsEveryPut {
        fn put_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b ObjectPath,
            payload: PutPayload,
            mut opts: PutOptions,
        ) -> Boxed<'c, PutResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            opts.mode = PutMode::Overwrite;
            self.0.put_opts(location, payload, opts)
        }
        fn put_multipart_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b ObjectPath,
            opts: PutMultipartOptions,
        ) -> Boxed<'c, Box<dyn MultipartUpload>>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self.0.put_multipart_opts(location, opts)
        }
        fn get_opts<'a, 'b, 'c>(
            &'a self,
            location: &'b ObjectPath,
            options: GetOptions,
        ) -> Boxed<'c, GetResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self.0.get_opts(location, options)
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, deltalake::logstore::object_store::Result<ObjectPath>>,
        ) -> BoxStream<'static, deltalake::logstore::object_store::Result<ObjectPath>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> BoxStream<'static, deltalake::logstore::object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }
        fn list_with_offset(
            &self,
            prefix: Option<&ObjectPath>,
            offset: &ObjectPath,
        ) -> BoxStream<'static, deltalake::logstore::object_store::Result<ObjectMeta>> {
            self.0.list_with_offset(prefix, offset)
        }
        fn list_with_delimiter<'a, 'b, 'c>(
            &'a self,
            prefix: Option<&'b ObjectPath>,
        ) -> Boxed<'c, ListResult>
        where
            'a: 'c,
            'b: 'c,
            Self: 'c,
        {
            self.0.list_with_delimiter(prefix)
        }
        fn copy_opts<'a, 'b, 'c, 'd>(
            &'a self,
            from: &'b ObjectPath,
            to: &'c ObjectPath,
            options: CopyOptions,
        ) -> Boxed<'d, ()>
        where
            'a: 'd,
            'b: 'd,
            'c: 'd,
            Self: 'd,
        {
            self.0.copy_opts(from, to, options)
        }
    }

    fn folder(store: Arc<dyn ObjectStore>) -> Folder {
        Folder::Store {
            store,
            prefix: ObjectPath::from("wh"),
            url: Url::parse("s3://lake/wh/").unwrap(),
        }
    }

    async fn objects(store: &dyn ObjectStore) -> Vec<String> {
        store
            .list(None)
            .map(|m| m.unwrap().location.to_string())
            .collect()
            .await
    }

    #[tokio::test]
    async fn a_store_that_accepts_every_put_is_refused_and_left_as_it_was() {
        let store = Arc::new(AcceptsEveryPut(InMemory::new()));
        let refused = probe(&folder(store.clone())).await.unwrap_err();
        let message = refused.to_string();
        assert!(matches!(refused, Error::UnsafeStore { .. }), "{message}");
        assert!(message.contains("put-if-absent"), "{message}");
        assert!(message.contains("s3://lake/wh/"), "{message}");
        assert!(
            objects(store.as_ref()).await.is_empty(),
            "the probe leaves nothing behind"
        );
    }

    #[tokio::test]
    async fn a_store_that_refuses_a_second_create_passes() {
        let store = Arc::new(InMemory::new());
        let check = probe(&folder(store.clone())).await.unwrap();
        assert!(check.put_if_absent);
        assert!(objects(store.as_ref()).await.is_empty());
        // The record a passed probe leaves, read back.
        let records = folder(store.clone()).join(FOLDER);
        record(&records, &check).await.unwrap();
        let kept = store
            .get(&ObjectPath::from("wh/_medallion/store-check.json"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let kept: StoreCheck = serde_json::from_slice(&kept).unwrap();
        assert!(kept.put_if_absent);
    }
}
