//! Gradual rollout of a route's latest-revision target, as Knative's
//! `serving.knative.dev/rollout-duration` does it: a new latest revision gets 1% of
//! the target's traffic at once, then the rest in equal steps spread over the
//! duration. A revision that becomes ready during a rollout starts its own at 1%;
//! every step moves traffic from the oldest revision still holding some to the
//! newest, so several rollouts in flight end in the newest alone.
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

/// Move up to `amount` percent from the oldest revisions to the newest.
fn shift(revisions: &mut Vec<RolloutShare>, mut amount: u32) {
    let last = revisions.len() - 1;
    let mut moved = 0;
    for r in revisions[..last].iter_mut() {
        let take = r.percent.min(amount);
        r.percent -= take;
        amount -= take;
        moved += take;
        if amount == 0 {
            break;
        }
    }
    revisions[last].percent += moved;
    let newest = revisions[last].revision_name.clone();
    revisions.retain(|r| r.percent > 0 || r.revision_name == newest);
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
    let total: u32 = prev.revisions.iter().map(|r| r.percent).sum();
    if duration.is_zero() || total != share || share < 2 {
        // No rollout wanted, or the split itself changed: take the new one at once.
        return settled(latest, share);
    }
    let mut state = prev.clone();
    let newest = state.revisions.last().map(|r| r.revision_name.as_str());
    if newest != Some(latest) {
        if state.revisions.iter().any(|r| r.revision_name == latest) {
            // An older revision is the latest again (a rollback): go there at once.
            return settled(latest, share);
        }
        // A new revision: 1% now, the rest in equal steps over the duration.
        state.revisions.push(RolloutShare {
            revision_name: latest.to_owned(),
            percent: 0,
        });
        shift(&mut state.revisions, 1);
        let rest = share - 1;
        let steps = (duration.as_secs().max(1) as u32).clamp(1, rest);
        state.step_percent = rest.div_ceil(steps);
        state.step_millis = (duration.as_millis() / u128::from(steps)) as u64;
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
    shift(&mut state.revisions, state.step_percent.max(1));
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
        assert_eq!(t, 99, "99 steps of 1% over 99 s");
        assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
        assert_eq!(p.next_step_in, None);
    }

    #[test]
    fn a_short_duration_takes_bigger_steps() {
        let d = Duration::from_secs(4);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        assert_eq!(p.state.step_percent, 25);
        let mut trail = vec![shares(&p)];
        for t in 1..=4 {
            p = plan(Some(&p.state), "b", 100, d, at(t));
            trail.push(shares(&p));
        }
        assert_eq!(trail[1], [s("a", 74), s("b", 26)]);
        assert_eq!(trail[4], [s("b", 100)]);
    }

    #[test]
    fn a_second_rollout_in_flight_drains_the_oldest_first() {
        let d = Duration::from_secs(10);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(1));
        p = plan(Some(&p.state), "b", 100, d, at(2));
        assert_eq!(shares(&p), [s("a", 79), s("b", 21)]);
        p = plan(Some(&p.state), "c", 100, d, at(2));
        assert_eq!(shares(&p), [s("a", 78), s("b", 21), s("c", 1)]);
        let mut t = 2;
        while p.state.revisions.len() > 1 {
            t += 1;
            p = plan(Some(&p.state), "c", 100, d, at(t));
            let a = p.state.revisions.iter().find(|r| r.revision_name == "a");
            let b = p.state.revisions.iter().find(|r| r.revision_name == "b");
            // b keeps its 21% until a is gone.
            if a.is_some() {
                assert_eq!(b.map(|r| r.percent), Some(21), "{:?}", shares(&p));
            }
        }
        assert_eq!(shares(&p), [s("c", 100)]);
    }

    #[test]
    fn a_rollback_or_a_changed_share_settles_at_once() {
        let d = Duration::from_secs(10);
        let mut p = plan(None, "a", 100, d, at(0));
        p = plan(Some(&p.state), "b", 100, d, at(0));
        let back = plan(Some(&p.state), "a", 100, d, at(1));
        assert_eq!(shares(&back), [s("a", 100)]);
        let resplit = plan(Some(&p.state), "b", 50, d, at(1));
        assert_eq!(shares(&resplit), [s("b", 50)]);
    }
}
