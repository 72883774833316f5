//! Automated canary of a route's latest-revision target (see `paas_api::canary` for
//! how a Service declares one). A new latest revision, the candidate, gets each step's
//! share in turn while the previous one, the stable revision, keeps the rest. At the
//! end of a step the candidate's answers during that step, as the gateway counted
//! them, are checked: enough of them, a success rate and optionally a p99. A failed
//! check sends all traffic back to the stable revision; passing the last step
//! promotes the candidate.
//!
//! [`plan`] is pure (time and counters are arguments), so it is tested on a fake clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use paas_activator::OutcomeSnapshot;
use paas_api::canary::CanarySpec;
use paas_api::serving::{CanaryCounts, CanaryPhase, CanaryStatus};

/// What became of the canary, for the Service's conditions and the event it emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Failed(String),
    Promoted(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub state: CanaryStatus,
    /// Percent of the target for each revision, the candidate first.
    pub split: Vec<(String, u32)>,
    pub check_in: Option<Duration>,
    pub verdict: Option<Verdict>,
}

fn counts(s: &OutcomeSnapshot) -> CanaryCounts {
    CanaryCounts {
        responses: s.responses,
        errors: s.errors,
        latency_buckets: s.buckets.clone(),
    }
}

fn snapshot(c: &CanaryCounts) -> OutcomeSnapshot {
    OutcomeSnapshot {
        responses: c.responses,
        errors: c.errors,
        buckets: c.latency_buckets.clone(),
    }
}

fn all_to(revision: &str, state: CanaryStatus) -> Plan {
    Plan {
        state,
        split: vec![(revision.to_owned(), 100)],
        check_in: None,
        verdict: None,
    }
}

fn settled(latest: &str) -> Plan {
    all_to(
        latest,
        CanaryStatus {
            stable: latest.to_owned(),
            candidate: latest.to_owned(),
            phase: CanaryPhase::Succeeded,
            ..CanaryStatus::default()
        },
    )
}

/// Hold the current step: the split it gives, checked again in `check_in`.
fn hold(spec: &CanarySpec, state: CanaryStatus, check_in: Duration) -> Plan {
    let share = spec.steps[state.step];
    let mut split = vec![(state.candidate.clone(), share)];
    if share < 100 {
        split.push((state.stable.clone(), 100 - share));
    }
    Plan {
        state,
        split,
        check_in: Some(check_in),
        verdict: None,
    }
}

fn begin_step(
    spec: &CanarySpec,
    mut state: CanaryStatus,
    step: usize,
    measured: &OutcomeSnapshot,
    now: DateTime<Utc>,
) -> Plan {
    state.phase = CanaryPhase::Progressing;
    state.step = step;
    state.step_start_time = Some(now);
    state.baseline = counts(measured);
    state.message = Some(format!(
        "step {} of {}: {}% to {}",
        step + 1,
        spec.steps.len(),
        spec.steps[step],
        state.candidate
    ));
    hold(spec, state, spec.step_duration)
}

/// The canary after `prev`, given the target's latest ready revision and what the
/// gateway has counted for it so far (`measured`).
pub fn plan(
    spec: &CanarySpec,
    prev: Option<&CanaryStatus>,
    latest: &str,
    measured: &OutcomeSnapshot,
    now: DateTime<Utc>,
) -> Plan {
    let Some(prev) = prev else {
        // The first revision is stable by definition.
        return settled(latest);
    };
    if latest == prev.stable {
        if prev.phase == CanaryPhase::Succeeded && prev.candidate == latest {
            // Promoted earlier: keep saying so.
            return all_to(latest, prev.clone());
        }
        return settled(latest);
    }
    if latest != prev.candidate {
        // A new candidate (replacing one still in progress, if any).
        let state = CanaryStatus {
            stable: prev.stable.clone(),
            candidate: latest.to_owned(),
            ..CanaryStatus::default()
        };
        return begin_step(spec, state, 0, measured, now);
    }
    match prev.phase {
        CanaryPhase::Failed => return all_to(&prev.stable, prev.clone()),
        CanaryPhase::Succeeded => return settled(latest),
        CanaryPhase::Progressing => {}
    }
    let state = prev.clone();
    let started = state.step_start_time.unwrap_or(now);
    let due = started + spec.step_duration;
    if now < due {
        let wait = (due - now).to_std().unwrap_or(spec.step_duration);
        return hold(spec, state, wait);
    }
    let Some(window) = measured.since(&snapshot(&state.baseline)) else {
        // The counters restarted (paas did): measure this step again.
        let step = state.step;
        return begin_step(spec, state, step, measured, now);
    };
    let (step, share) = (state.step, spec.steps[state.step]);
    if window.responses < spec.min_requests {
        let mut state = state;
        state.message = Some(format!(
            "step {} of {}: {share}% to {}, waiting for {} answers to judge it (has {})",
            step + 1,
            spec.steps.len(),
            state.candidate,
            spec.min_requests,
            window.responses
        ));
        let recheck = (spec.step_duration / 4).max(Duration::from_secs(1));
        return hold(spec, state, recheck);
    }
    let success = window.success_percent();
    let p99 = window.p99_ms();
    let mut problems = Vec::new();
    if success < spec.min_success_percent {
        problems.push(format!(
            "success rate {success:.1}% < {}%",
            spec.min_success_percent
        ));
    }
    if let Some(max) = spec.max_p99 {
        let max_ms = max.as_millis() as u64;
        if p99.is_none_or(|p| p > max_ms) {
            let shown = p99.map_or("over 60000".to_owned(), |p| p.to_string());
            problems.push(format!("p99 {shown} ms > {max_ms} ms"));
        }
    }
    let figures = format!(
        "{} answers, {:.1}% successful, p99 {} ms",
        window.responses,
        success,
        p99.map_or("over 60000".to_owned(), |p| format!("≤ {p}"))
    );
    if !problems.is_empty() {
        let mut state = state;
        let message = format!(
            "{} failed at step {} ({share}%): {} ({figures}); all traffic is back on {}",
            state.candidate,
            step + 1,
            problems.join(", "),
            state.stable
        );
        state.phase = CanaryPhase::Failed;
        state.message = Some(message.clone());
        let mut plan = all_to(&prev.stable, state);
        plan.verdict = Some(Verdict::Failed(message));
        return plan;
    }
    if step + 1 < spec.steps.len() {
        return begin_step(spec, state, step + 1, measured, now);
    }
    let mut state = state;
    let message = format!(
        "{} promoted after {} steps (last: {figures})",
        state.candidate,
        spec.steps.len()
    );
    state.phase = CanaryPhase::Succeeded;
    state.stable = state.candidate.clone();
    state.message = Some(message.clone());
    let mut plan = all_to(latest, state);
    plan.verdict = Some(Verdict::Promoted(message));
    plan
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use paas_activator::Outcomes;

    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn spec() -> CanarySpec {
        CanarySpec {
            steps: vec![10, 50, 100],
            step_duration: Duration::from_secs(10),
            min_success_percent: 99.0,
            max_p99: Some(Duration::from_millis(100)),
            min_requests: 20,
        }
    }

    fn serve(o: &Outcomes, n: usize, status: impl Fn(usize) -> u16, ms: u64) {
        for i in 0..n {
            o.record(status(i), Duration::from_millis(ms));
        }
    }

    /// Start a canary of b over a, with b's counters in `o`.
    fn started(o: &Outcomes) -> Plan {
        let first = plan(&spec(), None, "a", &o.snapshot(), at(0));
        assert_eq!(first.split, [("a".to_owned(), 100)]);
        plan(&spec(), Some(&first.state), "b", &o.snapshot(), at(0))
    }

    #[test]
    fn a_healthy_candidate_goes_through_every_step_and_is_promoted() {
        let o = Outcomes::default();
        let mut p = started(&o);
        assert_eq!(p.split, [("b".to_owned(), 10), ("a".to_owned(), 90)]);
        assert_eq!(p.check_in, Some(Duration::from_secs(10)));
        let mut t = 0;
        for expected in [50, 100] {
            serve(&o, 30, |_| 200, 3);
            // Early: held.
            let early = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(t + 5));
            assert_eq!(early.state.step, p.state.step);
            t += 10;
            p = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(t));
            assert_eq!(p.split[0], ("b".to_owned(), expected), "{p:?}");
        }
        serve(&o, 30, |_| 200, 3);
        p = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(t + 10));
        assert_eq!(p.split, [("b".to_owned(), 100)]);
        assert_eq!(p.state.phase, CanaryPhase::Succeeded);
        assert_eq!(p.state.stable, "b");
        assert!(matches!(p.verdict, Some(Verdict::Promoted(_))));
        // The promoted revision stays; nothing more happens.
        let after = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(t + 100));
        assert_eq!(after.split, [("b".to_owned(), 100)]);
        assert_eq!(after.verdict, None);
        assert!(after.state.message.unwrap().contains("promoted"));
    }

    #[test]
    fn half_failing_answers_roll_back_with_the_figures() {
        let o = Outcomes::default();
        let p = started(&o);
        serve(&o, 40, |i| if i % 2 == 0 { 500 } else { 200 }, 3);
        let p = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(10));
        assert_eq!(p.split, [("a".to_owned(), 100)]);
        assert_eq!(p.state.phase, CanaryPhase::Failed);
        let Some(Verdict::Failed(message)) = &p.verdict else {
            panic!("{p:?}")
        };
        assert!(message.contains("success rate 50.0% < 99%"), "{message}");
        assert!(message.contains("40 answers"), "{message}");
        // It stays rolled back until a new revision comes.
        let later = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(100));
        assert_eq!(later.split, [("a".to_owned(), 100)]);
        assert_eq!(later.verdict, None);
        let next = plan(&spec(), Some(&p.state), "c", &o.snapshot(), at(101));
        assert_eq!(next.split, [("c".to_owned(), 10), ("a".to_owned(), 90)]);
    }

    #[test]
    fn slow_answers_fail_the_latency_check() {
        let o = Outcomes::default();
        let p = started(&o);
        serve(&o, 40, |_| 200, 700);
        let p = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(10));
        assert_eq!(p.state.phase, CanaryPhase::Failed);
        assert!(p.state.message.unwrap().contains("p99 1000 ms > 100 ms"));
    }

    #[test]
    fn too_few_answers_hold_the_step() {
        let o = Outcomes::default();
        let p = started(&o);
        serve(&o, 5, |_| 500, 3);
        let p = plan(&spec(), Some(&p.state), "b", &o.snapshot(), at(10));
        assert_eq!(p.state.phase, CanaryPhase::Progressing);
        assert_eq!(p.split[0], ("b".to_owned(), 10));
        assert!(p.state.message.as_deref().unwrap().contains("has 5"));
        assert_eq!(p.verdict, None);
    }

    #[test]
    fn restarted_counters_measure_the_step_again() {
        let o = Outcomes::default();
        serve(&o, 100, |_| 200, 3);
        let p = started(&o);
        let fresh = Outcomes::default();
        let p = plan(&spec(), Some(&p.state), "b", &fresh.snapshot(), at(10));
        assert_eq!(p.state.step, 0);
        assert_eq!(p.state.step_start_time, Some(at(10)));
    }
}
