//! The store seam: Kubernetes-style objects with optimistic concurrency and a watch.
//! What is here is the backends' common ground and says nothing of how one stores:
//! [`SqliteStore`] (`sqlite.rs`) keeps the objects in one SQLite file in the data
//! directory; a Kubernetes backend would keep them in its API server.

use std::path::PathBuf;

use async_trait::async_trait;
use paas_api::Object;
use tokio::sync::broadcast;

mod sqlite;

pub use sqlite::SqliteStore;

/// Which object, in a kind-agnostic way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A change, sent to watchers after it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Upserted(ObjectKey),
    Deleted(ObjectKey),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{key} already exists")]
    AlreadyExists { key: ObjectKey },
    #[error("{key} was changed by someone else (resourceVersion {expected} is stale): read it again and retry")]
    Conflict { key: ObjectKey, expected: String },
    #[error("{key} not found")]
    NotFound { key: ObjectKey },
    /// The backend failed (its database, its connection): its own error, boxed so that
    /// this type names no backend.
    #[error("store database: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the store at {} is damaged ({problem}): restore it from a backup, or move it aside to start empty", path.display())]
    Damaged { path: PathBuf, problem: String },
    #[error("a store operation was interrupted: {0}")]
    Interrupted(String),
    #[error("stored {key} is not valid JSON: {source}")]
    Corrupt {
        key: ObjectKey,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Raw object storage, kind-agnostic, as a Kubernetes API server offers it.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    async fn get_raw(&self, key: &ObjectKey) -> Result<Option<serde_json::Value>>;
    async fn list_raw(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
    ) -> Result<Vec<serde_json::Value>>;
    /// The objects of `kind` whose labels hold every `(key, value)` of `selector`, as a
    /// Kubernetes `labelSelector=key=value,...` lists them. Reconcilers look up children
    /// this way (a configuration's revisions) so that their cost does not grow with
    /// every object in the namespace; a backend that cannot select lists and filters.
    async fn list_raw_labelled(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
        selector: &[(&str, &str)],
    ) -> Result<Vec<serde_json::Value>> {
        let mut all = self.list_raw(kind, namespace).await?;
        all.retain(|v| has_labels(v, selector));
        Ok(all)
    }
    /// Stores a new object: sets uid, generation 1, resourceVersion, creationTimestamp.
    async fn create_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
    ) -> Result<serde_json::Value>;
    /// Replaces an object. When the new object carries a resourceVersion it must be the
    /// stored one. `status_only` keeps the stored spec and metadata (the status
    /// subresource); otherwise the stored status is kept and generation grows when spec changes.
    async fn update_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
        status_only: bool,
    ) -> Result<serde_json::Value>;
    async fn delete_raw(&self, key: &ObjectKey) -> Result<bool>;
    fn watch(&self) -> broadcast::Receiver<WatchEvent>;
    /// Whether the store can still serve: `/healthz` answers with it.
    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// Typed access for every [`Object`] kind.
#[async_trait]
pub trait StoreExt: Store {
    async fn get<T: Object>(&self, namespace: &str, name: &str) -> Result<Option<T>> {
        let key = key_of::<T>(namespace, name);
        match self.get_raw(&key).await? {
            Some(v) => Ok(Some(decode(&key, v)?)),
            None => Ok(None),
        }
    }

    async fn list<T: Object>(&self, namespace: Option<&str>) -> Result<Vec<T>> {
        decode_all(self.list_raw(T::KIND, namespace).await?)
    }

    /// The objects whose labels hold every `(key, value)` of `selector`.
    async fn list_labelled<T: Object>(
        &self,
        namespace: Option<&str>,
        selector: &[(&str, &str)],
    ) -> Result<Vec<T>> {
        decode_all(self.list_raw_labelled(T::KIND, namespace, selector).await?)
    }

    async fn create<T: Object>(&self, object: &T) -> Result<T> {
        let key = key_of::<T>(object.namespace(), object.name());
        let v = self.create_raw(&key, encode(object)).await?;
        decode(&key, v)
    }

    async fn update<T: Object>(&self, object: &T) -> Result<T> {
        let key = key_of::<T>(object.namespace(), object.name());
        let v = self.update_raw(&key, encode(object), false).await?;
        decode(&key, v)
    }

    async fn update_status<T: Object>(&self, object: &T) -> Result<T> {
        let key = key_of::<T>(object.namespace(), object.name());
        let v = self.update_raw(&key, encode(object), true).await?;
        decode(&key, v)
    }

    async fn delete<T: Object>(&self, namespace: &str, name: &str) -> Result<bool> {
        self.delete_raw(&key_of::<T>(namespace, name)).await
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

pub fn key_of<T: Object>(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind: T::KIND,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn encode<T: Object>(object: &T) -> serde_json::Value {
    let mut v = serde_json::to_value(object).unwrap_or(serde_json::Value::Null);
    v["apiVersion"] = T::API_VERSION.into();
    v["kind"] = T::KIND.into();
    v
}

fn decode_all<T: Object>(raw: Vec<serde_json::Value>) -> Result<Vec<T>> {
    raw.into_iter()
        .map(|v| {
            let key = ObjectKey {
                kind: T::KIND,
                namespace: v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            };
            decode(&key, v)
        })
        .collect()
}

/// Whether an object's labels hold every `(key, value)` of `selector`.
pub fn has_labels(object: &serde_json::Value, selector: &[(&str, &str)]) -> bool {
    let labels = &object["metadata"]["labels"];
    selector
        .iter()
        .all(|(k, v)| labels[*k].as_str() == Some(*v))
}

fn decode<T: Object>(key: &ObjectKey, v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v).map_err(|source| StoreError::Corrupt {
        key: key.clone(),
        source,
    })
}
