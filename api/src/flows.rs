//! `flows.knative.dev/v1`: Sequence and Parallel, in Knative's shapes. A Sequence's
//! step N's reply goes to step N+1, the last one's to `reply`. A Parallel copies each
//! event to every branch; a branch's optional filter decides (by replying with the
//! event) whether its subscriber gets it, and the subscriber's reply goes to the
//! branch's reply, else the Parallel's.

use serde::{Deserialize, Serialize};

use crate::condition::Conditions;
use crate::eventing::{DeliverySpec, Destination, KReference};
use crate::serving::{Addressable, Unsupported};

pub const FLOWS_API_VERSION: &str = "flows.knative.dev/v1";

resource!(Sequence, SequenceSpec, SequenceStatus);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceSpec {
    #[serde(default)]
    pub steps: Vec<SequenceStep>,
    /// Knative picks a channel implementation here; paas' channels are its event log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

/// A destination (inline, as Knative writes it) and how to deliver to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SequenceStep {
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<KReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, rename = "CACerts", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

impl SequenceStep {
    pub fn destination(&self) -> Destination {
        Destination {
            reference: self.reference.clone(),
            uri: self.uri.clone(),
            ca_certs: self.ca_certs.clone(),
            audience: self.audience.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Where each step's events go, in order (paas: resolved subscriber URLs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
}

resource!(Parallel, ParallelSpec, ParallelStatus);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelSpec {
    #[serde(default)]
    pub branches: Vec<ParallelBranch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_template: Unsupported,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParallelBranch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Destination>,
    #[serde(default)]
    pub subscriber: Destination,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliverySpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParallelStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Each branch's resolved filter (if any), subscriber and reply (paas' own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<ParallelBranchStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParallelBranchStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_uri: Option<String>,
    pub subscriber_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_uri: Option<String>,
}
