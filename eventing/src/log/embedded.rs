//! The embedded event log: one directory per topic, one partition, append-only segment
//! files of checksummed records, and one committed offset per consumer group.
//!
//! Appends go through one writer thread per topic that takes every request waiting,
//! writes them in one go and fsyncs once (group commit), so that many producers share
//! each fsync. Records become visible to readers only after their fsync.
//!
//! Nothing here touches the disk on an async worker (the gateway's workers run the
//! broker ingress, and a slow disk must not stall them): deleting a topic or a group
//! is done by the topic's writer thread, after the appends queued before it; opening
//! a topic (which reads its last segment, up to a segment's size, to find its end)
//! and making one run on tokio's blocking pool.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::BytesMut;
use tokio::sync::{oneshot, watch};

use super::codec::{decode, encode, Decoded};
use super::reader::EmbeddedSubscription;
use crate::{EventLog, InitialOffset, LogError, Position, Record, Subscription};

/// How much a topic keeps; the oldest segments go first, the active one never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_bytes: u64,
    pub max_age: Duration,
    pub segment_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            max_age: Duration::from_secs(7 * 24 * 3600),
            segment_bytes: 64 << 20,
        }
    }
}

/// Offsets are committed to disk this often at most; a crash re-delivers what was
/// committed since (at least once).
const OFFSET_FLUSH: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct EmbeddedLog {
    root: PathBuf,
    retention: Retention,
    topics: Mutex<HashMap<String, OpenTopic>>,
    /// Topics are opened, made and deleted one at a time: a topic is never opened
    /// twice (two writers on one file), nor while it is being deleted.
    admin: tokio::sync::Mutex<()>,
}

/// A topic the log has open: its state, shared with its readers and its writer, and
/// the way to its writer. The writer holds the state only, so it ends once every
/// sender is gone (the topic was deleted, or the log dropped).
#[derive(Debug, Clone)]
struct OpenTopic {
    topic: Arc<Topic>,
    writer: mpsc::Sender<Request>,
}

#[derive(Debug, Clone)]
pub(crate) struct SegmentInfo {
    pub(crate) base: i64,
    pub(crate) path: PathBuf,
    pub(crate) bytes: u64,
    /// When the segment's last record was appended, for retention by age.
    pub(crate) last_append: SystemTime,
}

#[derive(Debug)]
pub(crate) struct TopicState {
    pub(crate) segments: Vec<SegmentInfo>,
    /// The offset the next record gets; everything below it is durable.
    pub(crate) next_offset: i64,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) name: String,
    dir: PathBuf,
    pub(crate) state: Mutex<TopicState>,
    /// `next_offset` after each durable append, for readers waiting at the end.
    pub(crate) durable: watch::Sender<i64>,
    groups: Mutex<HashMap<String, (i64, bool)>>,
}

/// What a topic's writer thread does, in the order asked.
enum Request {
    Append(AppendRequest),
    Control(Control),
}

enum Control {
    /// Forget a group's committed offset, on disk too.
    DeleteGroup {
        group: String,
        reply: oneshot::Sender<Result<(), LogError>>,
    },
    /// Remove the topic's directory; the writer ends.
    Delete {
        reply: oneshot::Sender<Result<(), LogError>>,
    },
}

struct AppendRequest {
    records: Vec<Record>,
    reply: oneshot::Sender<Result<Vec<Position>, LogError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn backend(topic: &str, what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Backend {
        topic: topic.to_owned(),
        message: format!("{what}: {e}"),
    }
}

/// Run a piece of disk work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    topic: &str,
    f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, LogError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| backend(topic, "a disk task ended early", e))?
}

/// Where a group's committed offset is saved.
fn group_file(dir: &Path, group: &str) -> PathBuf {
    dir.join("groups").join(format!("{group}.offset"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl EmbeddedLog {
    /// A log rooted at `root` (created if missing).
    pub fn open(root: &Path, retention: Retention) -> Result<Arc<Self>, LogError> {
        fs::create_dir_all(root)
            .map_err(|e| backend("*", &format!("creating {}", root.display()), e))?;
        Ok(Arc::new(Self {
            root: root.to_owned(),
            retention,
            topics: Mutex::new(HashMap::new()),
            admin: tokio::sync::Mutex::new(()),
        }))
    }

    fn cached(&self, name: &str) -> Option<OpenTopic> {
        lock(&self.topics).get(name).cloned()
    }

    /// The topic `name`, opened if it is not open yet; made first when `create`.
    async fn topic(&self, name: &str, create: bool) -> Result<OpenTopic, LogError> {
        if let Some(t) = self.cached(name) {
            return Ok(t);
        }
        let _admin = self.admin.lock().await;
        if let Some(t) = self.cached(name) {
            return Ok(t);
        }
        let (dir, topic, retention) = (self.root.join(name), name.to_owned(), self.retention);
        let open = blocking(name, move || {
            if !dir.is_dir() {
                if !create {
                    return Err(LogError::NoSuchTopic { topic });
                }
                fs::create_dir_all(&dir).map_err(|e| backend(&topic, "creating the topic", e))?;
            }
            Topic::open(&topic, &dir, retention)
        })
        .await?;
        lock(&self.topics).insert(name.to_owned(), open.clone());
        Ok(open)
    }

    /// Write every group's committed offset to disk now (at shutdown).
    pub fn flush_offsets(&self) {
        let topics: Vec<Arc<Topic>> = lock(&self.topics)
            .values()
            .map(|t| t.topic.clone())
            .collect();
        for t in topics {
            t.flush_offsets();
        }
    }
}

fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != "."
        && name != ".."
}

impl Topic {
    /// Read the topic in `dir` and start its writer. Blocking: reads the last segment.
    fn open(name: &str, dir: &Path, retention: Retention) -> Result<OpenTopic, LogError> {
        fs::create_dir_all(dir.join("groups"))
            .map_err(|e| backend(name, "creating the topic directory", e))?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)
            .map_err(|e| backend(name, "listing segments", e))?
            .flatten()
        {
            let path = entry.path();
            let base = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<i64>().ok());
            if let Some(base) = base {
                let meta = entry
                    .metadata()
                    .map_err(|e| backend(name, "reading a segment", e))?;
                segments.push(SegmentInfo {
                    base,
                    path,
                    bytes: meta.len(),
                    last_append: meta.modified().unwrap_or(UNIX_EPOCH),
                });
            }
        }
        segments.sort_by_key(|s| s.base);
        let next_offset = match segments.last_mut() {
            Some(last) => recover(name, last)?,
            None => 0,
        };
        if segments.is_empty() {
            let path = dir.join(format!("{:020}.log", 0));
            File::create(&path).map_err(|e| backend(name, "creating a segment", e))?;
            segments.push(SegmentInfo {
                base: 0,
                path,
                bytes: 0,
                last_append: SystemTime::now(),
            });
        }
        let mut groups = HashMap::new();
        if let Ok(entries) = fs::read_dir(dir.join("groups")) {
            for entry in entries.flatten() {
                let path = entry.path();
                let group = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned);
                let offset = fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok());
                if let (Some(group), Some(offset)) = (group, offset) {
                    groups.insert(group, (offset, false));
                }
            }
        }
        let (tx, rx) = mpsc::channel();
        let (durable, _) = watch::channel(next_offset);
        let topic = Arc::new(Self {
            name: name.to_owned(),
            dir: dir.to_owned(),
            state: Mutex::new(TopicState {
                segments,
                next_offset,
            }),
            durable,
            groups: Mutex::new(groups),
        });
        let writer = topic.clone();
        std::thread::Builder::new()
            .name(format!("log-{name}"))
            .spawn(move || writer.write_loop(&rx, retention))
            .map_err(|e| backend(name, "starting the writer", e))?;
        Ok(OpenTopic { topic, writer: tx })
    }

    /// The writer thread: group commit of every waiting append, one fsync each round.
    /// It ends when the topic is deleted, or when no one can send to it any more.
    fn write_loop(&self, rx: &mpsc::Receiver<Request>, retention: Retention) {
        let mut file = match self.open_active() {
            Ok(f) => f,
            Err(e) => {
                // Every append will fail with this; nothing else to do on this thread.
                tracing::error!(topic = %self.name, error = %e, "cannot open the active segment");
                while let Ok(req) = rx.recv() {
                    match req {
                        Request::Append(a) => {
                            let _ = a.reply.send(Err(backend(
                                &self.name,
                                "the active segment is unusable",
                                &e,
                            )));
                        }
                        Request::Control(c) => {
                            if !self.control(c) {
                                return;
                            }
                        }
                    }
                }
                return;
            }
        };
        let mut buf = BytesMut::with_capacity(1 << 20);
        let mut last_flush = std::time::Instant::now();
        // A delete found while gathering appends: done after them.
        let mut held = None;
        loop {
            // Offsets are saved on a clock, busy or idle: a crash re-delivers at most
            // what was committed since.
            if last_flush.elapsed() >= OFFSET_FLUSH {
                self.flush_offsets();
                last_flush = std::time::Instant::now();
            }
            let first = match held.take() {
                Some(r) => r,
                None => match rx.recv_timeout(OFFSET_FLUSH) {
                    Ok(r) => r,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        self.flush_offsets();
                        return;
                    }
                },
            };
            let first = match first {
                Request::Append(a) => a,
                Request::Control(c) => {
                    if self.control(c) {
                        continue;
                    }
                    return;
                }
            };
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(Request::Append(a)) => batch.push(a),
                    Ok(control) => {
                        held = Some(control);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let mut next = lock(&self.state).next_offset;
            let ts = now_ms();
            buf.clear();
            let mut positions: Vec<Vec<Position>> = Vec::with_capacity(batch.len());
            for req in &batch {
                let mut ps = Vec::with_capacity(req.records.len());
                for r in &req.records {
                    encode(&mut buf, next, ts, r);
                    ps.push(Position {
                        partition: 0,
                        offset: next,
                    });
                    next += 1;
                }
                positions.push(ps);
            }
            let written = file.write_all(&buf).and_then(|()| file.sync_data());
            match written {
                Ok(()) => {
                    {
                        let mut st = lock(&self.state);
                        st.next_offset = next;
                        if let Some(active) = st.segments.last_mut() {
                            active.bytes += buf.len() as u64;
                            active.last_append = SystemTime::now();
                        }
                    }
                    self.durable.send_replace(next);
                    for (req, ps) in batch.into_iter().zip(positions) {
                        let _ = req.reply.send(Ok(ps));
                    }
                }
                Err(e) => {
                    tracing::error!(topic = %self.name, error = %e, "appending failed");
                    // What may have reached the file past the last durable record is cut
                    // off, so that the next append starts at a record boundary.
                    let durable_len = lock(&self.state).segments.last().map_or(0, |s| s.bytes);
                    let _ = file.set_len(durable_len);
                    let _ = file.seek(SeekFrom::End(0));
                    for req in batch {
                        let _ = req.reply.send(Err(backend(&self.name, "appending", &e)));
                    }
                    continue;
                }
            }
            if let Some(f) = self.roll_and_retain(retention) {
                file = f;
            }
        }
    }

    /// Delete the topic or one of its groups; whether the writer goes on.
    fn control(&self, control: Control) -> bool {
        match control {
            Control::DeleteGroup { group, reply } => {
                lock(&self.groups).remove(&group);
                let path = group_file(&self.dir, &group);
                let _ = fs::remove_file(path.with_extension("tmp"));
                let removed = match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend(
                        &self.name,
                        &format!("deleting the offset of group {group} ({})", path.display()),
                        e,
                    )),
                    _ => Ok(()),
                };
                let _ = reply.send(removed);
                true
            }
            Control::Delete { reply } => {
                // The offsets go with the directory: none is saved again.
                lock(&self.groups).clear();
                let removed = match fs::remove_dir_all(&self.dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend(
                        &self.name,
                        &format!("deleting the topic ({})", self.dir.display()),
                        e,
                    )),
                    _ => Ok(()),
                };
                let _ = reply.send(removed);
                false
            }
        }
    }

    fn open_active(&self) -> std::io::Result<File> {
        let path = lock(&self.state)
            .segments
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| std::io::Error::other("no segment"))?;
        OpenOptions::new().append(true).open(path)
    }

    /// Start a new segment when the active one is full; drop the oldest ones past the
    /// retention limits. Returns the new active file after a roll.
    fn roll_and_retain(&self, retention: Retention) -> Option<File> {
        let mut st = lock(&self.state);
        let mut new_file = None;
        if st
            .segments
            .last()
            .is_some_and(|s| s.bytes >= retention.segment_bytes)
        {
            let base = st.next_offset;
            let path = self.dir.join(format!("{base:020}.log"));
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => {
                    st.segments.push(SegmentInfo {
                        base,
                        path,
                        bytes: 0,
                        last_append: SystemTime::now(),
                    });
                    new_file = Some(f);
                }
                Err(e) => {
                    tracing::warn!(topic = %self.name, error = %e, "cannot start a new segment")
                }
            }
        }
        let now = SystemTime::now();
        loop {
            let total: u64 = st.segments.iter().map(|s| s.bytes).sum();
            let Some(oldest) = st.segments.first() else {
                break;
            };
            if st.segments.len() < 2 {
                break;
            }
            let too_old = now
                .duration_since(oldest.last_append)
                .is_ok_and(|age| age > retention.max_age);
            if total <= retention.max_bytes && !too_old {
                break;
            }
            let gone = st.segments.remove(0);
            tracing::info!(topic = %self.name, segment = gone.base, "retention: removing a segment");
            let _ = fs::remove_file(&gone.path);
        }
        new_file
    }

    pub(crate) fn committed(&self, group: &str) -> Option<i64> {
        lock(&self.groups).get(group).map(|(o, _)| *o)
    }

    /// A group starts reading at `start`: saved at once, so that a crash before its
    /// first commit resumes there rather than at the end of the log.
    pub(crate) fn register(&self, group: &str, start: i64) {
        let new = {
            let mut groups = lock(&self.groups);
            if groups.contains_key(group) {
                false
            } else {
                groups.insert(group.to_owned(), (start, true));
                true
            }
        };
        if new {
            self.flush_offsets();
        }
    }

    pub(crate) fn commit(&self, group: &str, next: i64) {
        let mut groups = lock(&self.groups);
        let entry = groups.entry(group.to_owned()).or_insert((next, true));
        if next > entry.0 {
            *entry = (next, true);
        }
    }

    fn flush_offsets(&self) {
        let dirty: Vec<(String, i64)> = {
            let mut groups = lock(&self.groups);
            groups
                .iter_mut()
                .filter(|(_, (_, d))| *d)
                .map(|(g, (o, d))| {
                    *d = false;
                    (g.clone(), *o)
                })
                .collect()
        };
        for (group, offset) in dirty {
            let path = group_file(&self.dir, &group);
            let tmp = path.with_extension("tmp");
            let written = File::create(&tmp)
                .and_then(|mut f| {
                    f.write_all(offset.to_string().as_bytes())
                        .and_then(|()| f.sync_data())
                })
                .and_then(|()| fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(topic = %self.name, %group, error = %e, "saving a committed offset failed");
                if let Some(entry) = lock(&self.groups).get_mut(&group) {
                    entry.1 = true;
                }
            }
        }
    }

    /// The first offset still stored.
    pub(crate) fn earliest(&self) -> i64 {
        lock(&self.state).segments.first().map_or(0, |s| s.base)
    }
}

/// Scan the last segment, cut off a torn or corrupt tail, and return the next offset.
fn recover(topic: &str, seg: &mut SegmentInfo) -> Result<i64, LogError> {
    let mut data = Vec::new();
    File::open(&seg.path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|e| backend(topic, "reading the last segment", e))?;
    let mut pos = 0;
    let mut next = seg.base;
    // A torn or corrupt record ends the good part of the log.
    while let Decoded::Record(stored, used) = decode(&data[pos..]) {
        next = stored.offset + 1;
        pos += used;
    }
    if pos < data.len() {
        tracing::warn!(
            topic,
            segment = seg.base,
            cut = data.len() - pos,
            "cutting off an incomplete write at the end of the log"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .map_err(|e| backend(topic, "repairing the last segment", e))?;
        f.set_len(pos as u64)
            .and_then(|()| f.sync_all())
            .map_err(|e| backend(topic, "repairing the last segment", e))?;
    }
    seg.bytes = pos as u64;
    Ok(next)
}

#[async_trait]
impl EventLog for EmbeddedLog {
    async fn ensure_topic(&self, topic: &str) -> Result<(), LogError> {
        if !valid_topic_name(topic) {
            return Err(backend(
                topic,
                "invalid topic name",
                "use letters, digits, '.', '_' and '-'",
            ));
        }
        self.topic(topic, true).await.map(|_| ())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let _admin = self.admin.lock().await;
        let open = lock(&self.topics).remove(topic);
        if let Some(open) = open {
            // The writer deletes the directory after the appends queued before, then
            // ends; the topic's readers keep their state until they are dropped.
            let (reply, done) = oneshot::channel();
            if open
                .writer
                .send(Request::Control(Control::Delete { reply }))
                .is_ok()
            {
                if let Ok(deleted) = done.await {
                    return deleted;
                }
            }
        }
        let dir = self.root.join(topic);
        let name = topic.to_owned();
        blocking(topic, move || match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(backend(&name, "deleting the topic", e))
            }
            _ => Ok(()),
        })
        .await
    }

    async fn append(&self, topic: &str, records: Vec<Record>) -> Result<Vec<Position>, LogError> {
        let t = self.topic(topic, false).await?;
        let (reply, done) = oneshot::channel();
        // A writer that is gone was deleted with its topic.
        let gone = || LogError::NoSuchTopic {
            topic: topic.to_owned(),
        };
        t.writer
            .send(Request::Append(AppendRequest { records, reply }))
            .map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }

    async fn subscribe(
        &self,
        topic: &str,
        group: &str,
        initial: InitialOffset,
    ) -> Result<Box<dyn Subscription>, LogError> {
        let t = self.topic(topic, false).await?.topic;
        let (registering, name) = (t.clone(), group.to_owned());
        // A new group's start is saved (fsynced) before this returns.
        let start = blocking(topic, move || {
            let t = registering;
            Ok(match t.committed(&name) {
                Some(o) => o,
                None => {
                    let start = match initial {
                        InitialOffset::Earliest => t.earliest(),
                        InitialOffset::Latest => lock(&t.state).next_offset,
                    };
                    t.register(&name, start);
                    start
                }
            })
        })
        .await?;
        Ok(Box::new(EmbeddedSubscription::new(
            t,
            group.to_owned(),
            start,
        )))
    }

    async fn delete_group(&self, topic: &str, group: &str) -> Result<(), LogError> {
        let _admin = self.admin.lock().await;
        if let Some(open) = self.cached(topic) {
            // On the writer, so that no save of the group's offset races the removal.
            let (reply, done) = oneshot::channel();
            let request = Request::Control(Control::DeleteGroup {
                group: group.to_owned(),
                reply,
            });
            if open.writer.send(request).is_ok() {
                if let Ok(deleted) = done.await {
                    return deleted;
                }
            }
        }
        let (path, name) = (group_file(&self.root.join(topic), group), topic.to_owned());
        blocking(topic, move || match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(backend(
                &name,
                &format!("deleting the offset of a group ({})", path.display()),
                e,
            )),
            _ => Ok(()),
        })
        .await
    }

    fn flush(&self) {
        self.flush_offsets();
    }
}
