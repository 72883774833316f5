//! The embedded store: [`SqliteStore`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::broadcast;

use super::{has_labels, ObjectKey, Result, Store, StoreError, WatchEvent};

/// SQLite's errors reach callers as the backend's, so that [`StoreError`] names no
/// backend; every `?` on a rusqlite call below goes through here.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

/// The embedded store: one SQLite database, one row per object, JSON bodies.
///
/// Every statement runs on tokio's blocking pool: a commit is an fsync
/// (`synchronous = FULL`), and a slow disk must not stall the async workers that also
/// serve the API and the gateway.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    events: broadcast::Sender<WatchEvent>,
}

impl SqliteStore {
    /// Open (or create) the store at `path`, refusing one that fails SQLite's integrity
    /// check: a paas that answers 500 on every call is worse than one that does not start.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        check_integrity(&conn).map_err(|problem| StoreError::Damaged {
            path: path.to_owned(),
            problem,
        })?;
        Self::init(conn)
    }

    pub fn in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS objects (
                 kind TEXT NOT NULL,
                 namespace TEXT NOT NULL,
                 name TEXT NOT NULL,
                 resource_version INTEGER NOT NULL,
                 body TEXT NOT NULL,
                 PRIMARY KEY (kind, namespace, name)
             );
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT OR IGNORE INTO counters VALUES ('resource_version', 0);
             CREATE TABLE IF NOT EXISTS labels (
                 kind TEXT NOT NULL,
                 namespace TEXT NOT NULL,
                 name TEXT NOT NULL,
                 key TEXT NOT NULL,
                 value TEXT NOT NULL,
                 PRIMARY KEY (kind, namespace, name, key)
             );
             CREATE INDEX IF NOT EXISTS labels_by_value ON labels (kind, key, value, namespace, name);",
        )?;
        index_labels_of_older_stores(&mut conn)?;
        let (events, _) = broadcast::channel(4096);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            events,
        })
    }

    /// Run `f` with the connection on the blocking pool.
    async fn blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves SQLite consistent (a transaction
            // not committed is rolled back when dropped), so the poison is ignored.
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Interrupted(e.to_string()))?
    }

    fn next_version(tx: &rusqlite::Transaction<'_>) -> Result<i64> {
        tx.execute(
            "UPDATE counters SET value = value + 1 WHERE name = 'resource_version'",
            [],
        )?;
        Ok(tx.query_row(
            "SELECT value FROM counters WHERE name = 'resource_version'",
            [],
            |r| r.get(0),
        )?)
    }

    fn read(conn: &Connection, key: &ObjectKey) -> Result<Option<serde_json::Value>> {
        let body: Option<String> = conn
            .prepare_cached(
                "SELECT body FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
            )?
            .query_row(params![key.kind, key.namespace, key.name], |r| r.get(0))
            .optional()?;
        body.map(|b| {
            serde_json::from_str(&b).map_err(|source| StoreError::Corrupt {
                key: key.clone(),
                source,
            })
        })
        .transpose()
    }

    /// Store `body` under `key`; its labels are indexed again when `labels_changed`.
    fn write(
        tx: &rusqlite::Transaction<'_>,
        key: &ObjectKey,
        version: i64,
        body: &serde_json::Value,
        labels_changed: bool,
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO objects (kind, namespace, name, resource_version, body) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kind, namespace, name) DO UPDATE SET resource_version = ?4, body = ?5",
            params![key.kind, key.namespace, key.name, version, body.to_string()],
        )?;
        if labels_changed {
            index_labels(tx, key, body)?;
        }
        Ok(())
    }

    fn notify(&self, event: WatchEvent) {
        // No receiver is fine: nobody watches yet.
        let _ = self.events.send(event);
    }
}

/// Replace the indexed labels of `key` with those of `body`.
fn index_labels(conn: &Connection, key: &ObjectKey, body: &serde_json::Value) -> Result<()> {
    conn.execute(
        "DELETE FROM labels WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
        params![key.kind, key.namespace, key.name],
    )?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO labels (kind, namespace, name, key, value) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (k, v) in labels_of(body) {
        insert.execute(params![key.kind, key.namespace, key.name, k, v])?;
    }
    Ok(())
}

/// Stores written before labels were indexed (`user_version` 0) get their index once,
/// in one transaction.
fn index_labels_of_older_stores(conn: &mut Connection) -> Result<()> {
    const LABELS_INDEXED: i64 = 1;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version >= LABELS_INDEXED {
        return Ok(());
    }
    let tx = conn.transaction()?;
    let rows: Vec<(String, String, String, String)> = {
        let mut stmt = tx.prepare("SELECT kind, namespace, name, body FROM objects")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (kind, namespace, name, body) in rows {
        // An unreadable body has no labels to index; reading it reports it.
        let Ok(body) = serde_json::from_str::<serde_json::Value>(&body) else {
            continue;
        };
        for (k, v) in labels_of(&body) {
            tx.execute(
                "INSERT OR REPLACE INTO labels (kind, namespace, name, key, value) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![kind, namespace, name, k, v],
            )?;
        }
    }
    tx.pragma_update(None, "user_version", LABELS_INDEXED)?;
    tx.commit()?;
    Ok(())
}

/// An object's labels as `(key, value)` pairs.
fn labels_of(object: &serde_json::Value) -> Vec<(&str, &str)> {
    object["metadata"]["labels"]
        .as_object()
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// SQLite's `quick_check`: `Err` with what it found when the file is damaged.
fn check_integrity(conn: &Connection) -> Result<(), String> {
    let found: Result<Vec<String>, rusqlite::Error> =
        conn.prepare("PRAGMA quick_check(5)").and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        });
    match found {
        Ok(lines) if lines.len() == 1 && lines[0] == "ok" => Ok(()),
        Ok(lines) => Err(lines.join("; ")),
        Err(e) => Err(e.to_string()),
    }
}

fn create_row(
    conn: &mut Connection,
    key: &ObjectKey,
    mut object: serde_json::Value,
) -> Result<serde_json::Value> {
    let tx = conn.transaction()?;
    if SqliteStore::read(&tx, key)?.is_some() {
        return Err(StoreError::AlreadyExists { key: key.clone() });
    }
    let version = SqliteStore::next_version(&tx)?;
    let meta = &mut object["metadata"];
    meta["name"] = key.name.clone().into();
    meta["namespace"] = key.namespace.clone().into();
    meta["uid"] = uuid::Uuid::new_v4().to_string().into();
    meta["generation"] = 1.into();
    meta["resourceVersion"] = version.to_string().into();
    meta["creationTimestamp"] = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true).into();
    SqliteStore::write(&tx, key, version, &object, true)?;
    tx.commit()?;
    Ok(object)
}

/// Replace a stored object; the flag says whether anything changed.
fn update_row(
    conn: &mut Connection,
    key: &ObjectKey,
    mut object: serde_json::Value,
    status_only: bool,
) -> Result<(serde_json::Value, bool)> {
    let tx = conn.transaction()?;
    let Some(stored) = SqliteStore::read(&tx, key)? else {
        return Err(StoreError::NotFound { key: key.clone() });
    };
    let stored_version = stored["metadata"]["resourceVersion"].clone();
    if let Some(expected) = object["metadata"]["resourceVersion"].as_str() {
        if Some(expected) != stored_version.as_str() {
            return Err(StoreError::Conflict {
                key: key.clone(),
                expected: expected.to_owned(),
            });
        }
    }
    if status_only {
        let status = object["status"].take();
        object = stored.clone();
        object["status"] = status;
    } else {
        // Identity and bookkeeping are the server's; status has its own writer.
        for field in ["uid", "creationTimestamp", "generation"] {
            object["metadata"][field] = stored["metadata"][field].clone();
        }
        object["metadata"]["name"] = key.name.clone().into();
        object["metadata"]["namespace"] = key.namespace.clone().into();
        object["status"] = stored["status"].clone();
        if object["spec"] != stored["spec"] {
            let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            object["metadata"]["generation"] = generation.into();
        }
    }
    if object["status"].is_null() {
        if let Some(map) = object.as_object_mut() {
            map.remove("status");
        }
    }
    object["metadata"]["resourceVersion"] = stored_version;
    let changed = object != stored;
    if changed {
        let version = SqliteStore::next_version(&tx)?;
        object["metadata"]["resourceVersion"] = version.to_string().into();
        let labels_changed = object["metadata"]["labels"] != stored["metadata"]["labels"];
        SqliteStore::write(&tx, key, version, &object, labels_changed)?;
        tx.commit()?;
    }
    Ok((object, changed))
}

fn list_rows(
    conn: &Connection,
    kind: &'static str,
    namespace: Option<&str>,
) -> Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT namespace, name, body FROM objects WHERE kind = ?1 AND (?2 IS NULL OR namespace = ?2)
         ORDER BY namespace, name",
    )?;
    decode_rows(&mut stmt, params![kind, namespace], kind)
}

/// The objects with label `key` = `value` (through the index), in the order of
/// [`list_rows`].
fn list_labelled_rows(
    conn: &Connection,
    kind: &'static str,
    namespace: Option<&str>,
    (key, value): (&str, &str),
) -> Result<Vec<serde_json::Value>> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.namespace, o.name, o.body FROM labels l
         JOIN objects o ON o.kind = l.kind AND o.namespace = l.namespace AND o.name = l.name
         WHERE l.kind = ?1 AND l.key = ?2 AND l.value = ?3 AND (?4 IS NULL OR l.namespace = ?4)
         ORDER BY o.namespace, o.name",
    )?;
    decode_rows(&mut stmt, params![kind, key, value, namespace], kind)
}

fn decode_rows(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    kind: &'static str,
) -> Result<Vec<serde_json::Value>> {
    let rows = stmt.query_map(params, |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (namespace, name, body) = row?;
        let key = ObjectKey {
            kind,
            namespace,
            name,
        };
        out.push(
            serde_json::from_str(&body).map_err(|source| StoreError::Corrupt { key, source })?,
        );
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn get_raw(&self, key: &ObjectKey) -> Result<Option<serde_json::Value>> {
        let key = key.clone();
        self.blocking(move |conn| Self::read(conn, &key)).await
    }

    async fn list_raw(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
    ) -> Result<Vec<serde_json::Value>> {
        let namespace = namespace.map(str::to_owned);
        self.blocking(move |conn| list_rows(conn, kind, namespace.as_deref()))
            .await
    }

    async fn list_raw_labelled(
        &self,
        kind: &'static str,
        namespace: Option<&str>,
        selector: &[(&str, &str)],
    ) -> Result<Vec<serde_json::Value>> {
        let Some(((first_key, first_value), _)) = selector.split_first() else {
            return self.list_raw(kind, namespace).await;
        };
        let namespace = namespace.map(str::to_owned);
        let (key, value) = ((*first_key).to_owned(), (*first_value).to_owned());
        let mut found = self
            .blocking(move |conn| {
                list_labelled_rows(conn, kind, namespace.as_deref(), (&key, &value))
            })
            .await?;
        // The index found the first label; the rest are checked on the few rows it gave.
        found.retain(|v| has_labels(v, selector));
        Ok(found)
    }

    async fn create_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let k = key.clone();
        let object = self
            .blocking(move |conn| create_row(conn, &k, object))
            .await?;
        self.notify(WatchEvent::Upserted(key.clone()));
        Ok(object)
    }

    async fn update_raw(
        &self,
        key: &ObjectKey,
        object: serde_json::Value,
        status_only: bool,
    ) -> Result<serde_json::Value> {
        let k = key.clone();
        let (object, changed) = self
            .blocking(move |conn| update_row(conn, &k, object, status_only))
            .await?;
        if changed {
            self.notify(WatchEvent::Upserted(key.clone()));
        }
        Ok(object)
    }

    async fn delete_raw(&self, key: &ObjectKey) -> Result<bool> {
        let k = key.clone();
        let deleted = self
            .blocking(move |conn| {
                let tx = conn.transaction()?;
                let deleted = tx.execute(
                    "DELETE FROM objects WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                    params![k.kind, k.namespace, k.name],
                )? > 0;
                tx.execute(
                    "DELETE FROM labels WHERE kind = ?1 AND namespace = ?2 AND name = ?3",
                    params![k.kind, k.namespace, k.name],
                )?;
                tx.commit()?;
                Ok(deleted)
            })
            .await?;
        if deleted {
            self.notify(WatchEvent::Deleted(key.clone()));
        }
        Ok(deleted)
    }

    fn watch(&self) -> broadcast::Receiver<WatchEvent> {
        self.events.subscribe()
    }

    async fn health(&self) -> Result<()> {
        self.blocking(|conn| {
            check_integrity(conn).map_err(|problem| StoreError::Damaged {
                path: conn.path().unwrap_or("(in memory)").into(),
                problem,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{key_of, StoreExt};
    use paas_api::serving::{Container, ServiceSpec};
    use paas_api::Object;
    use paas_api::Service;

    fn hello(image: &str) -> Service {
        let mut spec = ServiceSpec::default();
        spec.template.spec.containers.push(Container {
            image: Some(image.into()),
            ..Container::default()
        });
        Service::new("default", "hello", spec)
    }

    #[tokio::test]
    async fn create_sets_kubernetes_metadata() {
        let store = SqliteStore::in_memory().unwrap();
        let svc = store.create(&hello("a")).await.unwrap();
        assert_eq!(svc.metadata.generation, Some(1));
        assert!(svc.metadata.uid.is_some());
        assert!(svc.metadata.creation_timestamp.is_some());
        assert_eq!(svc.metadata.resource_version.as_deref(), Some("1"));
        assert!(matches!(
            store.create(&hello("a")).await,
            Err(StoreError::AlreadyExists { .. })
        ));
    }

    #[tokio::test]
    async fn generation_grows_only_when_spec_changes() {
        let store = SqliteStore::in_memory().unwrap();
        let svc = store.create(&hello("a")).await.unwrap();
        let same = store.update(&svc).await.unwrap();
        assert_eq!(same.metadata.generation, Some(1));
        assert_eq!(
            same.metadata.resource_version,
            svc.metadata.resource_version
        );
        let changed = store.update(&hello("b")).await.unwrap();
        assert_eq!(changed.metadata.generation, Some(2));
        assert_eq!(changed.metadata.uid, svc.metadata.uid);
    }

    #[tokio::test]
    async fn stale_resource_version_conflicts() {
        let store = SqliteStore::in_memory().unwrap();
        let v1 = store.create(&hello("a")).await.unwrap();
        let mut v2 = v1.clone();
        v2.spec.template.spec.containers[0].image = Some("b".into());
        store.update(&v2).await.unwrap();
        let mut stale = v1.clone();
        stale.spec.template.spec.containers[0].image = Some("c".into());
        assert!(matches!(
            store.update(&stale).await,
            Err(StoreError::Conflict { .. })
        ));
    }

    #[tokio::test]
    async fn status_updates_keep_spec_and_generation() {
        let store = SqliteStore::in_memory().unwrap();
        let svc = store.create(&hello("a")).await.unwrap();
        let mut with_status = svc.clone();
        with_status.status.url = Some("http://x".into());
        with_status.spec.template.spec.containers[0].image = Some("ignored".into());
        let stored = store.update_status(&with_status).await.unwrap();
        assert_eq!(stored.status.url.as_deref(), Some("http://x"));
        assert_eq!(stored.spec, svc.spec);
        assert_eq!(stored.metadata.generation, Some(1));
        // A spec update keeps the status written before.
        let mut next = stored.clone();
        next.status = Default::default();
        let kept = store.update(&next).await.unwrap();
        assert_eq!(kept.status.url.as_deref(), Some("http://x"));
    }

    #[tokio::test]
    async fn watch_sees_commits() {
        let store = SqliteStore::in_memory().unwrap();
        let mut rx = store.watch();
        store.create(&hello("a")).await.unwrap();
        store.delete::<Service>("default", "hello").await.unwrap();
        let key = key_of::<Service>("default", "hello");
        assert_eq!(rx.recv().await.unwrap(), WatchEvent::Upserted(key.clone()));
        assert_eq!(rx.recv().await.unwrap(), WatchEvent::Deleted(key));
    }

    #[tokio::test]
    async fn survives_reopen() {
        let path = std::env::temp_dir().join(format!("paas-store-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create(&hello("a")).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let svc: Service = store.get("default", "hello").await.unwrap().unwrap();
        assert_eq!(
            svc.spec.template.spec.containers[0].image.as_deref(),
            Some("a")
        );
        let next = store
            .create(&Service::new("default", "other", ServiceSpec::default()))
            .await
            .unwrap();
        assert_eq!(next.metadata.resource_version.as_deref(), Some("2"));
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn a_sqlite_failure_is_the_backends_error_with_sqlites_message() {
        let store = SqliteStore::in_memory().unwrap();
        store
            .blocking(|conn| Ok(conn.execute_batch("DROP TABLE objects")?))
            .await
            .unwrap();
        let err = store.get::<Service>("default", "hello").await.unwrap_err();
        let StoreError::Backend(source) = &err else {
            panic!("not a backend error: {err:?}");
        };
        assert!(
            source.downcast_ref::<rusqlite::Error>().is_some(),
            "{source:?}"
        );
        assert!(
            err.to_string()
                .starts_with("store database: no such table: objects"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_damaged_store_is_refused_at_open_and_by_health() {
        let dir = std::env::temp_dir().join(format!("paas-store-damaged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("paas.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            for i in 0..300 {
                let svc = Service::new("default", &format!("svc-{i}"), ServiceSpec::default());
                store.create(&svc).await.unwrap();
            }
            store.health().await.unwrap();
        }
        // Overwrite pages in the middle of the file (the objects' b-tree), keeping the
        // header: SQLite still opens it, but the data no longer reads.
        let mut bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > 8 * 4096, "the store is {} bytes", bytes.len());
        for b in &mut bytes[2 * 4096..6 * 4096] {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("paas.db") && message.contains("damaged"),
            "{message}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn labelled(name: &str, app: &str) -> Service {
        let mut svc = Service::new("default", name, ServiceSpec::default());
        svc.metadata.labels.insert("app".into(), app.into());
        svc.metadata.labels.insert("tier".into(), "web".into());
        svc
    }

    fn names(found: &[Service]) -> Vec<&str> {
        found.iter().map(|s| s.name()).collect()
    }

    #[tokio::test]
    async fn a_labelled_list_follows_creates_updates_and_deletes() {
        let store = SqliteStore::in_memory().unwrap();
        for (name, app) in [("a", "one"), ("b", "two"), ("c", "one")] {
            store.create(&labelled(name, app)).await.unwrap();
        }
        let mut other_ns = labelled("d", "one");
        other_ns.metadata.namespace = Some("other".into());
        store.create(&other_ns).await.unwrap();
        let one: Vec<Service> = store
            .list_labelled(Some("default"), &[("app", "one")])
            .await
            .unwrap();
        assert_eq!(names(&one), ["a", "c"]);
        let everywhere: Vec<Service> = store.list_labelled(None, &[("app", "one")]).await.unwrap();
        assert_eq!(names(&everywhere), ["a", "c", "d"]);
        let both: Vec<Service> = store
            .list_labelled(None, &[("app", "one"), ("tier", "db")])
            .await
            .unwrap();
        assert!(both.is_empty());

        // c moves to app two; a status write keeps a's labels indexed; b goes.
        let mut c: Service = store.get("default", "c").await.unwrap().unwrap();
        c.metadata.labels.insert("app".into(), "two".into());
        store.update(&c).await.unwrap();
        let mut a: Service = store.get("default", "a").await.unwrap().unwrap();
        a.status.url = Some("http://a".into());
        store.update_status(&a).await.unwrap();
        store.delete::<Service>("default", "b").await.unwrap();
        let one: Vec<Service> = store
            .list_labelled(Some("default"), &[("app", "one")])
            .await
            .unwrap();
        assert_eq!(names(&one), ["a"]);
        let two: Vec<Service> = store
            .list_labelled(Some("default"), &[("app", "two")])
            .await
            .unwrap();
        assert_eq!(names(&two), ["c"]);
    }

    #[tokio::test]
    async fn a_store_written_before_labels_were_indexed_is_indexed_when_opened() {
        let dir = std::env::temp_dir().join(format!("paas-store-labels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("paas.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create(&labelled("a", "one")).await.unwrap();
            store.create(&labelled("b", "two")).await.unwrap();
            // As an older paas left it: no label index, user_version 0.
            let conn = store.conn.lock().unwrap();
            conn.execute_batch("DROP TABLE labels; PRAGMA user_version = 0;")
                .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let one: Vec<Service> = store.list_labelled(None, &[("app", "one")]).await.unwrap();
        assert_eq!(names(&one), ["a"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn the_default_labelled_list_filters_a_plain_list() {
        // A backend without a label index (the trait's default) selects the same.
        #[derive(Debug)]
        struct Plain(SqliteStore);
        #[async_trait]
        impl Store for Plain {
            async fn get_raw(&self, key: &ObjectKey) -> Result<Option<serde_json::Value>> {
                self.0.get_raw(key).await
            }
            async fn list_raw(
                &self,
                kind: &'static str,
                namespace: Option<&str>,
            ) -> Result<Vec<serde_json::Value>> {
                self.0.list_raw(kind, namespace).await
            }
            async fn create_raw(
                &self,
                key: &ObjectKey,
                object: serde_json::Value,
            ) -> Result<serde_json::Value> {
                self.0.create_raw(key, object).await
            }
            async fn update_raw(
                &self,
                key: &ObjectKey,
                object: serde_json::Value,
                status_only: bool,
            ) -> Result<serde_json::Value> {
                self.0.update_raw(key, object, status_only).await
            }
            async fn delete_raw(&self, key: &ObjectKey) -> Result<bool> {
                self.0.delete_raw(key).await
            }
            fn watch(&self) -> broadcast::Receiver<WatchEvent> {
                self.0.watch()
            }
        }
        let store = Plain(SqliteStore::in_memory().unwrap());
        for (name, app) in [("a", "one"), ("b", "two"), ("c", "one")] {
            store.create(&labelled(name, app)).await.unwrap();
        }
        let one: Vec<Service> = store
            .list_labelled(Some("default"), &[("app", "one"), ("tier", "web")])
            .await
            .unwrap();
        assert_eq!(names(&one), ["a", "c"]);
    }

    #[tokio::test]
    async fn store_calls_do_not_block_the_async_worker() {
        // Someone else holds the database (a slow commit); a write must wait on the
        // blocking pool, leaving this runtime's only thread free for other tasks.
        let store = SqliteStore::in_memory().unwrap();
        let (locked_tx, locked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let held = store.conn.clone();
        let holder = std::thread::spawn(move || {
            let _g = held.lock().unwrap();
            locked_tx.send(()).unwrap();
            // Released when told; the deadline only ends a test that is failing.
            let _ = release_rx.recv_timeout(std::time::Duration::from_secs(10));
        });
        locked_rx.recv().unwrap();
        let write = tokio::spawn({
            let store = store.clone();
            async move { store.create(&hello("a")).await }
        });
        tokio::task::yield_now().await;
        let other = tokio::spawn(async { 42 }).await.unwrap();
        assert_eq!(other, 42);
        assert!(
            !write.is_finished(),
            "the write ran inline and held the runtime until the lock was released"
        );
        release_tx.send(()).unwrap();
        write.await.unwrap().unwrap();
        holder.join().unwrap();
    }
}
