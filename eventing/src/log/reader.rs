//! A consumer group's view of an embedded topic: reads batches of records from the
//! segment files after the group's committed offset, and waits at the end for appends.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use super::codec::{decode, Decoded};
use super::embedded::Topic;
use crate::{Delivery, LogError, Position, Subscription};

/// Bytes read from a segment per batch.
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct EmbeddedSubscription {
    topic: Arc<Topic>,
    group: String,
    /// The next offset to hand out.
    next: i64,
    buffer: VecDeque<Delivery>,
    /// Where reading left off: segment base, byte position, and the offset found there.
    cursor: Option<(i64, u64, i64)>,
    durable: watch::Receiver<i64>,
}

impl EmbeddedSubscription {
    pub(crate) fn new(topic: Arc<Topic>, group: String, start: i64) -> Self {
        let durable = topic.durable.subscribe();
        Self {
            topic,
            group,
            next: start,
            buffer: VecDeque::new(),
            cursor: None,
            durable,
        }
    }

    /// Read what is durable after `self.next` into the buffer.
    async fn fill(&mut self, end: i64) -> Result<(), LogError> {
        let earliest = self.topic.earliest();
        if self.next < earliest {
            // Retention removed what this group had not read yet.
            tracing::warn!(topic = %self.topic.name, group = %self.group, from = self.next, to = earliest, "records removed by retention were skipped");
            self.next = earliest;
            self.cursor = None;
        }
        let segments: Vec<(i64, PathBuf)> = {
            let st = self.topic.state.lock().unwrap_or_else(|e| e.into_inner());
            st.segments
                .iter()
                .map(|s| (s.base, s.path.clone()))
                .collect()
        };
        let Some(index) = segments.iter().rposition(|(base, _)| *base <= self.next) else {
            return Ok(());
        };
        let (base, path) = segments[index].clone();
        let pos = match self.cursor {
            Some((b, p, o)) if b == base && o == self.next => p,
            _ => 0,
        };
        let next = self.next;
        let topic = self.topic.name.clone();
        let read = tokio::task::spawn_blocking(move || read_batch(&path, pos, next, end))
            .await
            .map_err(|e| LogError::Backend {
                topic: topic.clone(),
                message: format!("reading: {e}"),
            })?
            .map_err(|e| LogError::Backend {
                topic,
                message: format!("reading a segment: {e}"),
            })?;
        match read {
            Batch::Records(records, new_pos) => {
                for stored in records {
                    self.next = stored.offset + 1;
                    self.buffer.push_back(Delivery {
                        position: Position {
                            partition: 0,
                            offset: stored.offset,
                        },
                        record: stored.record,
                        timestamp_ms: Some(stored.timestamp_ms),
                    });
                }
                self.cursor = Some((base, new_pos, self.next));
            }
            Batch::EndOfSegment => {
                // This segment is done; the next one starts at `self.next`.
                if let Some((next_base, _)) = segments.get(index + 1) {
                    self.cursor = Some((*next_base, 0, self.next));
                }
            }
        }
        Ok(())
    }
}

enum Batch {
    Records(Vec<super::codec::Stored>, u64),
    EndOfSegment,
}

fn read_batch(path: &PathBuf, pos: u64, next: i64, end: i64) -> std::io::Result<Batch> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(pos))?;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    (&mut file).take(READ_CHUNK as u64).read_to_end(&mut buf)?;
    // A record larger than a chunk: read exactly as much as it needs.
    if buf.len() >= 8 {
        let need = 8 + u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if need > buf.len() && buf.len() == READ_CHUNK {
            let mut rest = Vec::with_capacity(need - buf.len());
            (&mut file)
                .take((need - buf.len()) as u64)
                .read_to_end(&mut rest)?;
            buf.extend_from_slice(&rest);
        }
    }
    let mut at = 0;
    let mut out = Vec::new();
    // Past the durable end, or a chunk boundary: the next batch goes on from there.
    while let Decoded::Record(stored, used) = decode(&buf[at..]) {
        if stored.offset >= end {
            break;
        }
        at += used;
        if stored.offset >= next {
            out.push(stored);
        }
    }
    if out.is_empty() && at == 0 && buf.len() < READ_CHUNK {
        return Ok(Batch::EndOfSegment);
    }
    Ok(Batch::Records(out, pos + at as u64))
}

#[async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next(&mut self) -> Result<Delivery, LogError> {
        loop {
            if let Some(d) = self.buffer.pop_front() {
                return Ok(d);
            }
            let end = *self.durable.borrow_and_update();
            if self.next < end {
                let before = (self.next, self.cursor);
                self.fill(end).await?;
                if !self.buffer.is_empty() || (self.next, self.cursor) != before {
                    continue;
                }
            }
            self.durable
                .changed()
                .await
                .map_err(|_| LogError::Backend {
                    topic: self.topic.name.clone(),
                    message: "the log was closed".into(),
                })?;
        }
    }

    async fn commit(&mut self, position: Position) -> Result<(), LogError> {
        self.topic.commit(&self.group, position.offset + 1);
        Ok(())
    }
}
