//! Knative-style status conditions.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The conditions of one status, with Knative's semantics: setting a condition to the
/// status it already has keeps its transition time, so status writes stay idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Conditions(pub Vec<Condition>);

impl Conditions {
    pub fn get(&self, type_: &str) -> Option<&Condition> {
        self.0.iter().find(|c| c.type_ == type_)
    }

    /// Drop the condition of this type, if any.
    pub fn remove(&mut self, type_: &str) {
        self.0.retain(|c| c.type_ != type_);
    }

    pub fn is_true(&self, type_: &str) -> bool {
        self.get(type_)
            .is_some_and(|c| c.status == ConditionStatus::True)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn set(
        &mut self,
        type_: &str,
        status: ConditionStatus,
        reason: Option<&str>,
        message: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let reason = reason.map(str::to_owned);
        let message = message.map(str::to_owned);
        if let Some(existing) = self.0.iter_mut().find(|c| c.type_ == type_) {
            if existing.status != status {
                existing.last_transition_time =
                    Some(now.to_rfc3339_opts(SecondsFormat::Secs, true));
            }
            existing.status = status;
            existing.reason = reason;
            existing.message = message;
        } else {
            self.0.push(Condition {
                type_: type_.to_owned(),
                status,
                reason,
                message,
                last_transition_time: Some(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
            });
            self.0.sort_by(|a, b| a.type_.cmp(&b.type_));
        }
    }

    pub fn set_true(&mut self, type_: &str, now: DateTime<Utc>) {
        self.set(type_, ConditionStatus::True, None, None, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_status_keeps_transition_time() {
        let t0 = DateTime::from_timestamp(0, 0).unwrap();
        let t1 = DateTime::from_timestamp(100, 0).unwrap();
        let mut c = Conditions::default();
        c.set(
            "Ready",
            ConditionStatus::Unknown,
            Some("Deploying"),
            None,
            t0,
        );
        let first = c.get("Ready").unwrap().last_transition_time.clone();
        c.set(
            "Ready",
            ConditionStatus::Unknown,
            Some("Deploying"),
            None,
            t1,
        );
        assert_eq!(c.get("Ready").unwrap().last_transition_time, first);
        c.set_true("Ready", t1);
        assert_ne!(c.get("Ready").unwrap().last_transition_time, first);
        assert!(c.is_true("Ready"));
    }
}
