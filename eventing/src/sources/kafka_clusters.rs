//! The Kafka clusters KafkaSources read, one connection each, shared by every source
//! that names the same bootstrap servers. Connecting runs in the background: a
//! reconcile never waits on a cluster that does not answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::log::kafka::{KafkaConfig, KafkaLog};
use crate::LogError;

/// A cluster that failed is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Where a cluster's connection stands.
#[derive(Debug, Clone)]
pub enum Cluster {
    Connected(Arc<KafkaLog>),
    Connecting,
    /// Why the last attempt failed.
    Failed(String),
}

#[derive(Debug)]
enum Entry {
    Connected(Arc<KafkaLog>),
    Connecting,
    Failed { why: String, at: Instant },
}

#[derive(Debug, Default)]
pub struct SourceClusters {
    clusters: Arc<Mutex<HashMap<String, Entry>>>,
    /// This installation's stable name, for static group membership (see
    /// `KafkaConfig::instance`).
    instance: Option<String>,
}

impl SourceClusters {
    pub fn new(instance: Option<String>) -> Self {
        Self {
            clusters: Arc::default(),
            instance,
        }
    }

    /// Disconnect from the clusters no source names any more.
    pub fn retain(&self, in_use: &[String]) {
        self.clusters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|bootstrap, _| in_use.contains(bootstrap));
    }

    /// The cluster at `bootstrap`, starting (or retrying) its connection when there is
    /// none.
    pub fn get(&self, bootstrap: &str) -> Cluster {
        let mut clusters = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        match clusters.get(bootstrap) {
            Some(Entry::Connected(log)) => return Cluster::Connected(log.clone()),
            Some(Entry::Connecting) => return Cluster::Connecting,
            Some(Entry::Failed { why, at }) if at.elapsed() < RETRY_AFTER => {
                return Cluster::Failed(why.clone())
            }
            _ => {}
        }
        clusters.insert(bootstrap.to_owned(), Entry::Connecting);
        let (all, bootstrap) = (self.clusters.clone(), bootstrap.to_owned());
        let mut config = KafkaConfig::new(bootstrap.clone());
        config.instance = self.instance.clone();
        tokio::spawn(async move {
            let entry = match KafkaLog::connect(config).await {
                Ok(log) => Entry::Connected(log),
                Err(e) => {
                    tracing::warn!(%bootstrap, error = %e, "a KafkaSource's cluster did not answer");
                    let why = match e {
                        LogError::Unreachable { reason, .. } => format!(
                            "no Kafka broker answered at {bootstrap} ({reason}): is the cluster up, and are those spec.bootstrapServers?"
                        ),
                        e => e.to_string(),
                    };
                    Entry::Failed {
                        why,
                        at: Instant::now(),
                    }
                }
            };
            let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
            // Unless the last source naming it went away meanwhile.
            if matches!(all.get(&bootstrap), Some(Entry::Connecting)) {
                all.insert(bootstrap, entry);
            }
        });
        Cluster::Connecting
    }
}
