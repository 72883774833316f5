//! Reconcilers: level-triggered functions that read the world and converge it. Each
//! returns an [`Action`]; none sleeps.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use paas_api::condition::ConditionStatus;
use paas_api::meta::OwnerReference;
use paas_api::{keys, Object, Revision};
use paas_gateway::RoutingTable;

use crate::fleet::Fleet;
use crate::store::{Store, StoreError, StoreExt};

pub mod broker;
pub mod canary;
pub mod configuration;
mod destination;
pub mod gc;
pub mod kafkasource;
pub mod parallel;
pub mod pingsource;
pub mod revision;
pub mod rollout;
pub mod route;
pub mod sequence;
pub mod service;
pub mod trigger;

/// What a reconciler wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Done,
    RequeueAfter(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = ReconcileError> = std::result::Result<T, E>;

/// What every reconciler may use.
#[derive(Debug)]
pub struct Context {
    pub store: Arc<dyn Store>,
    pub fleet: Arc<Fleet>,
    pub autoscaler: Arc<paas_autoscaler::Autoscaler>,
    pub event_log: Arc<dyn paas_eventing::EventLog>,
    pub dispatchers: Arc<paas_eventing::dispatcher::Dispatchers>,
    pub table: Arc<RoutingTable>,
    /// The gateway's port, for the URLs in status.
    pub http_port: u16,
    /// Revisions without traffic kept per configuration; older ones are deleted.
    pub keep_revisions: usize,
    /// The clocks of PingSources.
    pub tickers: Arc<paas_eventing::sources::ping_clock::Tickers>,
    /// The clusters KafkaSources read.
    pub source_clusters: Arc<paas_eventing::sources::kafka_clusters::SourceClusters>,
    /// Time is an input: tests pass a fixed clock.
    pub clock: fn() -> DateTime<Utc>,
}

impl Context {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }
}

/// The owner reference a child carries.
pub(crate) fn owned_by<T: Object>(owner: &T) -> OwnerReference {
    OwnerReference {
        api_version: T::API_VERSION.into(),
        kind: T::KIND.into(),
        name: owner.name().to_owned(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
    }
}

/// Ready, or not ready for `problem` (reason, message); what is not ready yet (a
/// destination not made yet, say) is looked at again in a moment: returns when.
pub(crate) fn set_ready(
    conditions: &mut paas_api::condition::Conditions,
    problem: Option<(&str, String)>,
    now: DateTime<Utc>,
) -> Option<Duration> {
    match problem {
        None => {
            conditions.set_true("Ready", now);
            None
        }
        Some((reason, message)) => {
            conditions.set(
                "Ready",
                ConditionStatus::False,
                Some(reason),
                Some(&message),
                now,
            );
            Some(Duration::from_secs(2))
        }
    }
}

/// The revisions of configuration `name`, found by their configuration label: the cost
/// is that of its own revisions, not of every revision in the namespace.
pub(crate) async fn revisions_of(ctx: &Context, ns: &str, name: &str) -> Result<Vec<Revision>> {
    Ok(ctx
        .store
        .list_labelled::<Revision>(Some(ns), &[(keys::CONFIGURATION_LABEL, name)])
        .await?)
}

/// A revision's number: `hello-00002` → 2.
pub(crate) fn revision_number(name: &str) -> Option<u32> {
    let (_, n) = name.rsplit_once('-')?;
    (n.len() == 5).then(|| n.parse().ok()).flatten()
}

/// The configuration a revision name belongs to: `hello-00002` → `hello`.
pub fn configuration_of(revision: &str) -> Option<&str> {
    revision_number(revision)?;
    revision.rsplit_once('-').map(|(c, _)| c)
}

pub(crate) fn ready_status(rev: &Revision) -> ConditionStatus {
    rev.status
        .conditions
        .get("Ready")
        .map_or(ConditionStatus::Unknown, |c| c.status)
}

#[cfg(test)]
mod tests;
