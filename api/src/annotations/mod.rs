//! Every annotation paas acts on, parsed in one place. Each family's parser turns an
//! object's annotations into typed values (`None` where an annotation is absent) or a
//! problem per bad annotation, naming its key. Validation reports each problem at
//! `<annotations path>.<key>`, so that `paas apply` points at its line and the REST
//! API's 422 names the same field; the components that act on the values (autoscaler,
//! fleet, routes, dispatchers) merge them with their defaults and parse nothing.
//!
//! The families, and where paas reads them:
//! - autoscaling (`autoscaling.knative.dev/*`, [`autoscaling`]) and idle
//!   (`paas.dev/idle`, `paas.dev/freeze-retention`, [`idle`]): a Service's revision
//!   template, copied into each Revision;
//! - canary (`canary.paas.dev/*`, [`crate::canary`]) and rollout
//!   (`serving.knative.dev/rollout-duration`, [`rollout`]): a Service, copied to its
//!   Route;
//! - delivery order (`kafka.eventing.knative.dev/delivery.order`, [`delivery_order`]):
//!   Triggers, Sequences, Parallels and KafkaSources.
//!
//! Rules that need the platform's configuration (a min-scale above the platform's
//! max-scale, an initial scale of 0 where the platform forbids it) are checked where
//! the values are merged with it, by the autoscaler.

use std::collections::BTreeMap;

pub mod autoscaling;
pub mod delivery_order;
pub mod idle;
pub mod rollout;

/// An object's annotations, as `ObjectMeta` holds them.
pub type Annotations = BTreeMap<String, String>;

/// An annotation that could not be used, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}: {problem}")]
pub struct AnnotationError {
    pub key: String,
    pub problem: String,
}

impl AnnotationError {
    pub(crate) fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Every problem of the annotations read from a revision template (autoscaling and
/// idle), in that order.
pub fn template_problems(annotations: &Annotations) -> Vec<AnnotationError> {
    let (_, mut problems) = autoscaling::parse(annotations);
    problems.extend(idle::parse(annotations).err().unwrap_or_default());
    problems
}

/// Every problem of the annotations read from a Service's own metadata (canary and
/// rollout), in that order.
pub fn service_problems(annotations: &Annotations) -> Vec<AnnotationError> {
    let mut problems = crate::canary::canary_spec(annotations)
        .err()
        .unwrap_or_default();
    problems.extend(rollout::parse(annotations).err());
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> Annotations {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_bad_annotation_of_every_family_is_named() {
        let template = annotations(&[
            ("autoscaling.knative.dev/min-scale", "abc"),
            ("autoscaling.knative.dev/window", "soon"),
            ("paas.dev/idle", "sleep"),
            ("paas.dev/freeze-retention", "forever"),
            ("unrelated.example.com/key", "anything"),
        ]);
        let keys: Vec<_> = template_problems(&template)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "autoscaling.knative.dev/min-scale",
                "autoscaling.knative.dev/window",
                "paas.dev/idle",
                "paas.dev/freeze-retention",
            ]
        );

        let service = annotations(&[
            ("canary.paas.dev/steps", "50,10"),
            ("canary.paas.dev/success-rate", "101"),
            ("serving.knative.dev/rollout-duration", "later"),
        ]);
        let keys: Vec<_> = service_problems(&service)
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(
            keys,
            [
                "canary.paas.dev/steps",
                "canary.paas.dev/success-rate",
                "serving.knative.dev/rollout-duration",
            ]
        );
    }

    #[test]
    fn good_annotations_have_no_problem() {
        let template = annotations(&[
            ("autoscaling.knative.dev/min-scale", "1"),
            ("paas.dev/idle", "freeze"),
        ]);
        assert_eq!(template_problems(&template), []);
        let service = annotations(&[
            ("canary.paas.dev/steps", "10,100"),
            ("serving.knative.dev/rollout-duration", "2m"),
        ]);
        assert_eq!(service_problems(&service), []);
        assert_eq!(template_problems(&Annotations::new()), []);
        assert_eq!(service_problems(&Annotations::new()), []);
    }
}
