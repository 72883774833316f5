//! `serving.knative.dev/rollout-duration` on a Service (copied to its Route): how long
//! traffic takes to move to a new latest revision.

use std::time::Duration;

use super::{AnnotationError, Annotations};
use crate::keys::ROLLOUT_DURATION;

/// The rollout duration (`None` without the annotation), or why it cannot be used.
pub fn parse(annotations: &Annotations) -> Result<Option<Duration>, AnnotationError> {
    annotations
        .get(ROLLOUT_DURATION)
        .map(|v| crate::duration::parse(v))
        .transpose()
        .map_err(|e| AnnotationError::new(ROLLOUT_DURATION, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_or_its_problem() {
        let mut a = Annotations::new();
        assert_eq!(parse(&a), Ok(None));
        a.insert(ROLLOUT_DURATION.into(), "2m".into());
        assert_eq!(parse(&a), Ok(Some(Duration::from_secs(120))));
        a.insert(ROLLOUT_DURATION.into(), "soon".into());
        let e = parse(&a).unwrap_err();
        assert_eq!(e.key, ROLLOUT_DURATION);
        assert_eq!(
            e.problem,
            "\"soon\" is not a duration like 60s, 1m30s or 500ms"
        );
    }
}
