//! Gradual rollout of a route's latest-revision target, as Knative's
//! `serving.knative.dev/rollout-duration` does it: a new latest revision gets 1% of
//! the route at once, then the rest in equal steps spread over the duration (the
//! first second counts as the first step, as Knative's minimum step time).
//!
//! Several rollouts in flight follow Knative's rules too: the 1% a newer revision
//! starts with comes from the newest revision that has traffic, each step takes from
//! the revisions just before the newest, newest first, and a changed share of the
//! target is added to the newest or taken from the oldest.
//!
//! [`plan`] is pure (the time is an argument), so that it is tested on a fake clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use paas_api::serving::{RolloutShare, RolloutStatus};

/// Where the target's traffic goes now, and when to look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub state: RolloutStatus,
    /// Time until the next step, while one is due.
    pub next_step_in: Option<Duration>,
}

fn settled(latest: &str, share: u32) -> Plan {
    Plan {
        state: RolloutStatus {
            revisions: vec![RolloutShare {
                revision_name: latest.to_owned(),
                percent: share,
            }],
            ..RolloutStatus::default()
        },
        next_step_in: None,
    }
}

/// One step: `amount` percent to the newest, taken from the revisions before it,
/// newest first; those left without traffic go. The newest never exceeds `share`.
fn step(revisions: &mut Vec<RolloutShare>, amount: u32, share: u32) {
    let newest = revisions.len() - 1;
    let mut remaining = amount;
    let mut i = newest;
    while remaining > 0 && i > 0 {
        i -= 1;
        let take = revisions[i].percent.min(remaining);
        revisions[i].percent -= take;
        remaining -= take;
    }
    revisions[newest].percent = (revisions[newest].percent + amount).min(share);
    let newest_name = revisions[newest].revision_name.clone();
    revisions.retain(|r| r.percent > 0 || r.revision_name == newest_name);
}

/// The target's share changed: the newest gets a rise, a cut comes off the oldest.
fn adjust(revisions: &mut Vec<RolloutShare>, share: u32) {
    let total: u32 = revisions.iter().map(|r| r.percent).sum();
    if share >= total {
        if let Some(last) = revisions.last_mut() {
            last.percent += share - total;
        }
        return;
    }
    let mut cut = total - share;
    for r in revisions.iter_mut() {
        let take = r.percent.min(cut);
        r.percent -= take;
        cut -= take;
    }
    let last = revisions.len().saturating_sub(1);
    let mut i = 0;
    revisions.retain(|r| {
        i += 1;
        r.percent > 0 || i - 1 == last
    });
}

/// The rollout after `prev`, given the target's latest ready revision `latest`, its
/// `share` of the route's traffic, and the configured `duration` (zero: no rollout).
pub fn plan(
    prev: Option<&RolloutStatus>,
    latest: &str,
    share: u32,
    duration: Duration,
    now: DateTime<Utc>,
) -> Plan {
    let Some(prev) = prev.filter(|p| !p.revisions.is_empty()) else {
        // The first revision takes its share at once: there is nothing to move from.
        return settled(latest, share);
    };
    if duration.is_zero() || share < 2 {
        return settled(latest, share);
    }
    let mut state = prev.clone();
    adjust(&mut state.revisions, share);
    let newest = state.revisions.last().map(|r| r.revision_name.as_str());
    if newest != Some(latest) {
        if state.revisions.iter().any(|r| r.revision_name == latest) {
            // An older revision is the latest again (a rollback): go there at once.
            return settled(latest, share);
        }
        // A new revision: 1% from the newest revision with traffic, the rest in equal
        // steps over what is left of the duration after a first second.
        if let Some(r) = state.revisions.iter_mut().rev().find(|r| r.percent > 0) {
            r.percent -= 1;
        }
        state.revisions.retain(|r| r.percent > 0);
        state.revisions.push(RolloutShare {
            revision_name: latest.to_owned(),
            percent: 1,
        });
        let rest = f64::from(share - 1);
        let span = (duration.as_secs_f64() - 1.0).max(1.0);
        let steps = span.max(1.0).min(rest);
        state.step_percent = (rest / steps).round().max(1.0) as u32;
        state.step_millis = (span / steps * 1000.0) as u64;
        let interval = Duration::from_millis(state.step_millis);
        state.next_step_time = Some(now + interval);
        return Plan {
            state,
            next_step_in: Some(interval),
        };
    }
    if state.revisions.len() == 1 {
        return settled(latest, share);
    }
    let interval = Duration::from_millis(state.step_millis.max(1));
    let due = state.next_step_time.unwrap_or(now);
    if now < due {
        let wait = (due - now).to_std().unwrap_or(interval);
        return Plan {
            state,
            next_step_in: Some(wait),
        };
    }
    step(&mut state.revisions, state.step_percent.max(1), share);
    if state.revisions.len() == 1 {
        return settled(latest, share);
    }
    state.next_step_time = Some(now + interval);
    Plan {
        state,
        next_step_in: Some(interval),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn shares(p: &Plan) -> Vec<(String, u32)> {
        p.state
            .revisions
            .iter()
            .map(|r| (r.revision_name.clone(), r.percent))
            .collect()
    }

    fn s(name: &str, percent: u32) -> (String, u32) {
        (name.to_owned(), percent)
    }

    #[test]
    fn the_first_revision_and_no_duration_take_everything_at_once() {
        let d = Duration::from_secs(100);
        let first = plan(None, "a", 100, d, at(0));
        assert_eq!(shares(&first), [s("a", 100)]);
        assert_eq!(first.next_step_in, None);
        let now = plan(Some(&first.state), "b", 100, Duration::ZERO, at(1));
        assert_eq!(shares(&now), [s("b", 100)]);
    }

    #[test]
    fn one_percent_first_then_equal_steps_over_the_duration() {
        let d = Duration::from_secs(99);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        assert_eq!(shares(&p), [s("a", 99), s("b", 1)]);
        assert_eq!(p.next_step_in, Some(Duration::from_secs(1)));
        // Looking early changes nothing.
        let early = plan(Some(&p.state), "b", 100, d, at(0));
        assert_eq!(shares(&early), [s("a", 99), s("b", 1)]);
        let mut t = 0;
        let mut seen = vec![1];
        while p.state.revisions.len() > 1 {
            t += 1;
            p = plan(Some(&p.state), "b", 100, d, at(t));
            seen.push(p.state.revisions.last().unwrap().percent);
        }
        assert_eq!(shares(&p), [s("b", 100)]);
        assert_eq!(t, 99, "1% steps every second: 100% after 99 s");
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
        assert_eq!(p.next_step_in, None);
    }

    #[test]
    fn a_short_duration_takes_bigger_steps() {
        let d = Duration::from_secs(4);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        assert_eq!(p.state.step_percent, 33);
        let mut trail = vec![shares(&p)];
        for t in 1..=3 {
            p = plan(Some(&p.state), "b", 100, d, at(t));
            trail.push(shares(&p));
        }
        assert_eq!(trail[1], [s("a", 66), s("b", 34)]);
        assert_eq!(trail[2], [s("a", 33), s("b", 67)]);
        assert_eq!(trail[3], [s("b", 100)]);
    }

    #[test]
    fn a_second_rollout_in_flight_follows_knative() {
        let d = Duration::from_secs(10);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        assert_eq!(p.state.step_percent, 11);
        p = plan(Some(&p.state), "b", 100, d, at(1));
        p = plan(Some(&p.state), "b", 100, d, at(2));
        assert_eq!(shares(&p), [s("a", 77), s("b", 23)]);
        // c's 1% comes from the newest with traffic, b.
        p = plan(Some(&p.state), "c", 100, d, at(2));
        assert_eq!(shares(&p), [s("a", 77), s("b", 22), s("c", 1)]);
        // Steps drain b (just before the newest) before a.
        p = plan(Some(&p.state), "c", 100, d, at(3));
        assert_eq!(shares(&p), [s("a", 77), s("b", 11), s("c", 12)]);
        p = plan(Some(&p.state), "c", 100, d, at(4));
        assert_eq!(shares(&p), [s("a", 77), s("c", 23)]);
        let mut t = 4;
        while p.state.revisions.len() > 1 {
            t += 1;
            p = plan(Some(&p.state), "c", 100, d, at(t));
        }
        assert_eq!(shares(&p), [s("c", 100)]);
    }

    #[test]
    fn a_changed_share_goes_to_the_newest_or_comes_off_the_oldest() {
        let d = Duration::from_secs(10);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        let cut = plan(Some(&p.state), "b", 50, d, at(0));
        assert_eq!(shares(&cut), [s("a", 49), s("b", 1)]);
        let rise = plan(Some(&cut.state), "b", 80, d, at(0));
        assert_eq!(shares(&rise), [s("a", 49), s("b", 31)]);
    }

    #[test]
    fn a_rollback_settles_at_once() {
        let d = Duration::from_secs(10);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        let back = plan(Some(&p.state), "a", 100, d, at(1));
        assert_eq!(shares(&back), [s("a", 100)]);
    }
}
