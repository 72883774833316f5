//! The planner on plain values and a made-up clock: no runtime, no tasks, no waiting.

use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::fleet::probe::{self, Probed, EAGER_PROBE_INTERVAL, STARTUP_PROBE_INTERVAL};
use crate::fleet::tests::desired;

const RETENTION: Duration = Duration::from_secs(15 * 60);

fn key(name: &str) -> RevisionKey {
    RevisionKey {
        namespace: "default".into(),
        name: name.into(),
    }
}

fn uid(name: &str) -> String {
    format!("uid-{name}")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn replica(id: &str, name: &str, state: ReplicaState, port: u16) -> Replica {
    Replica {
        id: id.into(),
        namespace: "default".into(),
        revision: name.into(),
        revision_uid: uid(name),
        address: Some(addr(port)),
        state,
    }
}

fn running(id: &str, name: &str, port: u16) -> Replica {
    replica(id, name, ReplicaState::Running, port)
}

/// A fleet's state, what its runtime lists, and a clock that only moves when told.
struct World {
    state: FleetState,
    listed: Vec<Replica>,
    now: Now,
    next_port: u16,
}

impl World {
    /// After a restart: unknown replicas may still belong to revisions not read yet.
    fn restarted() -> Self {
        Self {
            state: FleetState::default(),
            listed: Vec::new(),
            now: Now {
                at: Instant::now(),
                utc: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            },
            next_port: 20_000,
        }
    }

    fn new() -> Self {
        let mut w = Self::restarted();
        w.state.adopting = false;
        w
    }

    fn revision(&mut self, name: &str, idle: IdlePolicy) {
        self.state.set_desired(&uid(name), desired(name, idle));
    }

    fn scale(&mut self, name: &str, replicas: u32) {
        self.state.scale(&key(name), replicas);
    }

    fn advance(&mut self, by: Duration) {
        self.now.at += by;
        self.now.utc += chrono::Duration::from_std(by).unwrap_or_default();
    }

    fn plan(&mut self) -> Vec<Action> {
        plan(&mut self.state, &self.listed, self.now)
    }

    /// Carry out the starts as a runtime would (replicas `name-1`, `name-2`...) and
    /// return their ids.
    fn start(&mut self, actions: &[Action]) -> Vec<String> {
        let mut ids = Vec::new();
        for a in actions {
            if let Action::Start { uid, spec, .. } = a {
                self.next_port += 1;
                let id = format!("{}-{}", spec.revision, self.next_port);
                let r = running(&id, &spec.revision, self.next_port);
                started(&mut self.state, uid, Ok(&r), self.now);
                self.listed.push(r);
                ids.push(id);
            }
        }
        ids
    }

    /// Replicas of `name` that answer their probes.
    fn ready(&mut self, name: &str, ids: &[String]) -> Vec<Action> {
        let results = ids
            .iter()
            .map(|id| Probed {
                uid: uid(name),
                id: id.clone(),
                ok: true,
            })
            .collect();
        probe::record(&mut self.state, results, self.now.at)
    }

    /// `n` ready replicas of `name`, settled.
    fn serving(&mut self, name: &str, n: u32) -> Vec<String> {
        self.scale(name, n);
        let actions = self.plan();
        let ids = self.start(&actions);
        self.ready(name, &ids);
        assert_eq!(self.plan(), [], "settled");
        ids
    }

    fn tracked(&self, name: &str) -> &[Tracked] {
        self.state
            .revisions
            .get(&uid(name))
            .map_or(&[], |r| &r.replicas)
    }

    fn observed(&self, name: &str) -> Observed {
        self.state.revisions[&uid(name)].observed.clone()
    }

    fn set_listed_state(&mut self, id: &str, state: ReplicaState) {
        for r in self.listed.iter_mut().filter(|r| r.id == id) {
            r.state = state;
        }
    }

    /// A revision `name` whose one replica served, then was frozen at zero.
    fn frozen(&mut self, name: &str) -> String {
        self.revision(
            name,
            IdlePolicy::Freeze {
                retention: RETENTION,
            },
        );
        let ids = self.serving(name, 1);
        self.scale(name, 0);
        self.plan();
        self.set_listed_state(&ids[0], ReplicaState::Frozen);
        ids[0].clone()
    }
}

fn starts(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Start { .. }))
        .count()
}

fn stopped(actions: &[Action]) -> Vec<(&str, StopReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Stop { id, why, .. } => Some((id.as_str(), *why)),
            _ => None,
        })
        .collect()
}

fn drained(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Drain { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

fn published(actions: &[Action]) -> Vec<&[SocketAddr]> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Publish { ready, .. } => Some(ready.as_slice()),
            _ => None,
        })
        .collect()
}

#[test]
fn scale_up_starts_the_missing_replicas() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let first = w.serving("a", 1);
    w.scale("a", 4);
    let actions = w.plan();
    assert_eq!(starts(&actions), 3, "{actions:?}");
    assert!(actions.iter().all(|a| match a {
        Action::Start {
            uid: u,
            key: k,
            spec,
        } => u == &uid("a") && k == &key("a") && spec.revision == "a",
        _ => true,
    }));
    let new = w.start(&actions);
    assert_eq!(w.tracked("a").len(), 4);
    // Not ready yet: the one that was serving is the only endpoint.
    assert_eq!(w.plan(), [Action::Report { key: key("a") }]);
    let actions = w.ready("a", &new);
    assert_eq!(published(&actions)[0].len(), 4);
    assert!(actions.contains(&Action::Report { key: key("a") }));
    assert_eq!(w.observed("a").ready, 4);
    assert_eq!(first.len(), 1);
}

#[test]
fn the_fast_path_of_a_scale_up_starts_without_a_list() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 2);
    let actions = grow(&mut w.state, w.now);
    assert_eq!(starts(&actions), 2, "{actions:?}");
    w.start(&actions);
    assert_eq!(grow(&mut w.state, w.now), []);
}

#[test]
fn scale_down_drains_the_extra_replicas_and_stops_them_only_after_the_drain() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let ids = w.serving("a", 2);
    // A third that is not ready yet: it goes first, it serves nobody.
    w.scale("a", 3);
    let actions = w.plan();
    let slow = w.start(&actions);
    w.scale("a", 1);
    let actions = w.plan();
    let mut gone = drained(&actions);
    gone.sort_unstable();
    assert_eq!(gone.len(), 2, "{actions:?}");
    assert!(gone.contains(&slow[0].as_str()), "{actions:?}");
    assert_eq!(stopped(&actions), [], "drained before they stop");
    let kept: Vec<&str> = w.tracked("a").iter().map(|t| t.id.as_str()).collect();
    assert_eq!(kept.len(), 1);
    assert!(ids.iter().any(|id| id == kept[0]));
    // Out of the ready set at once.
    assert_eq!(
        published(&actions),
        [&[w.tracked("a")[0].addr.unwrap_or(addr(0))][..]]
    );
    // While they drain the runtime still lists them: neither adopted nor stopped.
    w.advance(Duration::from_secs(5));
    assert_eq!(w.plan(), []);
    // The drain stopped them.
    for id in &gone {
        w.state.drained(id);
    }
    let gone: Vec<String> = gone.iter().map(|s| s.to_string()).collect();
    w.listed.retain(|r| !gone.contains(&r.id));
    assert_eq!(w.plan(), []);
    assert_eq!(w.observed("a").actual, 1);
}

#[test]
fn a_crashed_replica_is_replaced_after_its_crash_back_off() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let ids = w.serving("a", 1);
    w.set_listed_state(&ids[0], ReplicaState::Exited { code: Some(3) });
    let actions = w.plan();
    assert!(
        actions.contains(&Action::Exited {
            uid: uid("a"),
            key: key("a"),
            id: ids[0].clone(),
            code: Some(3),
        }),
        "{actions:?}"
    );
    assert!(actions.contains(&Action::Report { key: key("a") }));
    assert_eq!(starts(&actions), 0, "held back 10 s");
    let observed = w.observed("a");
    assert_eq!(observed.restarts, 1);
    assert_eq!(
        observed.next_start,
        Some(w.now.utc + chrono::Duration::seconds(10))
    );
    assert_eq!((observed.actual, observed.ready), (0, 0));
    // The exited replica was removed.
    w.listed.clear();
    w.advance(Duration::from_secs(9));
    assert_eq!(starts(&w.plan()), 0);
    w.advance(Duration::from_secs(1));
    let actions = w.plan();
    assert_eq!(starts(&actions), 1, "{actions:?}");
    assert_eq!(w.observed("a").next_start, None);
}

#[test]
fn a_replica_that_never_gets_ready_is_replaced_after_the_startup_deadline() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 1);
    let actions = w.plan();
    let ids = w.start(&actions);
    w.advance(STARTUP_DEADLINE);
    assert_eq!(stopped(&w.plan()), []);
    w.advance(Duration::from_secs(1));
    let actions = w.plan();
    assert_eq!(
        stopped(&actions),
        [(ids[0].as_str(), StopReason::NeverReady)]
    );
    assert_eq!(starts(&actions), 0, "a crash: held back");
    let observed = w.observed("a");
    assert_eq!(observed.restarts, 1);
    assert!(observed
        .failure
        .is_some_and(|f| f.contains("did not become ready within 120 s")));
}

#[test]
fn starts_that_fail_together_are_one_crash() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 3);
    let actions = w.plan();
    assert_eq!(starts(&actions), 3);
    for _ in 0..3 {
        let follow = started(&mut w.state, &uid("a"), Err("no such file".into()), w.now);
        assert_eq!(follow, [Action::Report { key: key("a") }]);
    }
    let observed = w.observed("a");
    assert_eq!(observed.restarts, 1);
    assert_eq!(observed.start_error.as_deref(), Some("no such file"));
    assert_eq!(starts(&w.plan()), 0);
    w.advance(Duration::from_secs(10));
    assert_eq!(starts(&w.plan()), 3);
}

#[test]
fn a_restart_adopts_the_replicas_of_known_revisions_and_removes_orphans_only_after_adoption() {
    let mut w = World::restarted();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 2);
    w.listed = vec![
        running("a-1", "a", 1),
        running("a-2", "a", 2),
        running("x-1", "x", 3),
    ];
    let actions = w.plan();
    let adopted: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Adopt { replica } => Some(replica.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(adopted, ["a-1", "a-2"], "{actions:?}");
    assert_eq!(starts(&actions), 0, "adopted, not restarted");
    assert_eq!(stopped(&actions), [], "x may be a revision not read yet");
    assert_eq!(w.tracked("a").len(), 2);
    assert_eq!(stopped(&w.plan()), []);
    // The controller has read every stored revision.
    w.state.adopting = false;
    let actions = w.plan();
    assert_eq!(stopped(&actions), [("x-1", StopReason::Orphan)]);
    assert_eq!(starts(&actions), 0);
}

#[test]
fn a_restart_adopts_a_frozen_replica_of_a_revision_at_zero_but_not_a_running_one() {
    let mut w = World::restarted();
    w.revision(
        "a",
        IdlePolicy::Freeze {
            retention: RETENTION,
        },
    );
    w.revision("b", IdlePolicy::Stop);
    w.listed = vec![
        replica("a-1", "a", ReplicaState::Frozen, 1),
        running("b-1", "b", 2),
    ];
    let actions = w.plan();
    assert!(matches!(&actions[..], [Action::Adopt { replica }, ..] if replica.id == "a-1"));
    assert!(w.tracked("a")[0].frozen_at.is_some());
    assert!(w.tracked("b").is_empty());
    w.state.adopting = false;
    assert_eq!(stopped(&w.plan()), [("b-1", StopReason::Orphan)]);
    // Kept frozen, and thawed on the first request.
    w.scale("a", 1);
    let actions = w.plan();
    assert!(
        actions.contains(&Action::Thaw { id: "a-1".into() }),
        "{actions:?}"
    );
    assert_eq!(starts(&actions), 0);
}

#[test]
fn the_last_replica_freezes_at_zero_when_idle_is_freeze() {
    let mut w = World::new();
    w.revision(
        "a",
        IdlePolicy::Freeze {
            retention: RETENTION,
        },
    );
    let ids = w.serving("a", 1);
    w.scale("a", 0);
    let actions = w.plan();
    assert!(
        actions.contains(&Action::Freeze {
            id: ids[0].clone(),
            key: key("a"),
            addr: w.listed[0].address,
            timeout: Duration::from_secs(300),
        }),
        "{actions:?}"
    );
    assert_eq!(drained(&actions), Vec::<&str>::new());
    assert_eq!(stopped(&actions), []);
    assert_eq!(published(&actions), [&[][..]]);
    assert!(w.state.still_frozen(&ids[0]));
    assert_eq!((w.observed("a").actual, w.observed("a").ready), (0, 0));
    // Frozen replicas are not probed.
    assert_eq!(probe::next_due(&w.state), None);
}

#[test]
fn the_last_replica_drains_and_stops_at_zero_when_idle_is_stop() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let ids = w.serving("a", 1);
    w.scale("a", 0);
    let actions = w.plan();
    assert_eq!(drained(&actions), [ids[0].as_str()]);
    assert!(w.tracked("a").is_empty());
}

#[test]
fn a_frozen_replica_is_thawed_on_scale_up_before_any_start() {
    let mut w = World::new();
    let id = w.frozen("a");
    w.advance(Duration::from_secs(60));
    // The autoscaler's wake-up takes the fast path.
    w.scale("a", 2);
    let actions = grow(&mut w.state, w.now);
    assert_eq!(actions[0], Action::Thaw { id });
    assert_eq!(starts(&actions), 1);
    let t = &w.tracked("a")[0];
    assert!(t.frozen_at.is_none() && !t.ready);
    // Probed at once, as a new replica.
    assert_eq!(probe::next_due(&w.state), Some(w.now.at));
}

#[test]
fn a_frozen_replica_is_stopped_when_its_retention_expires() {
    let mut w = World::new();
    let id = w.frozen("a");
    w.advance(RETENTION - Duration::from_secs(1));
    assert_eq!(w.plan(), []);
    w.advance(Duration::from_secs(1));
    let actions = w.plan();
    assert_eq!(stopped(&actions), [(id.as_str(), StopReason::Expired)]);
    assert!(w.tracked("a").is_empty());
}

#[test]
fn a_deleted_revision_drains_and_is_forgotten() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let ids = w.serving("a", 1);
    w.state.retain(&[]);
    let actions = w.plan();
    assert_eq!(drained(&actions), [ids[0].as_str()]);
    // Out of its routing entry if the controller has not forgotten that yet, but no
    // publish that would create it again.
    assert!(
        actions.contains(&Action::Withdraw {
            key: key("a"),
            ready: vec![]
        }),
        "{actions:?}"
    );
    assert_eq!(published(&actions), Vec::<&[SocketAddr]>::new());
    assert_eq!(settle(&mut w.state), []);
    assert!(w.state.revisions.is_empty());
}

#[test]
fn retain_keeps_the_listed_revisions_and_scales_the_others_to_zero() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.revision("b", IdlePolicy::Stop);
    w.serving("a", 1);
    w.serving("b", 1);
    w.state.retain(&[uid("b"), uid("not-tracked")]);
    assert!(w.state.revisions[&uid("a")].removed);
    assert!(!w.state.revisions[&uid("b")].removed);
    let actions = w.plan();
    assert_eq!(drained(&actions).len(), 1, "{actions:?}");
    assert!(w.tracked("a").is_empty());
    assert_eq!(w.tracked("b").len(), 1);
}

#[test]
fn the_autoscalers_count_reaches_a_revision_through_its_key_until_it_is_deleted() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.revision("b", IdlePolicy::Stop);
    w.serving("a", 1);
    w.state.retain(&[uid("b")]);
    assert!(!w.state.live.contains_key(&key("a")));
    // A late count for the deleted revision starts nothing; the other's still counts.
    w.scale("a", 2);
    w.scale("b", 1);
    let actions = w.plan();
    assert_eq!(drained(&actions).len(), 1, "{actions:?}");
    assert_eq!(starts(&actions), 1, "{actions:?}");
    w.start(&actions);
    settle(&mut w.state);
    assert!(!w.state.revisions.contains_key(&uid("a")));
    assert_eq!(w.state.live.get(&key("b")), Some(&uid("b")));

    // Created again under the same name: a new uid, which the key now leads to.
    let again = "uid-a-again".to_owned();
    w.state.set_desired(&again, desired("a", IdlePolicy::Stop));
    assert_eq!(w.state.live.get(&key("a")), Some(&again));
    assert_eq!(starts(&w.plan()), 2, "the count the autoscaler gave last");
    w.scale("a", 0);
    assert_eq!(
        w.state.revisions[&again]
            .desired
            .as_ref()
            .map(|d| d.replicas),
        Some(0)
    );
}

#[test]
fn a_revision_deleted_while_it_was_being_reconciled_stays_at_zero() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 1);
    w.state.retain(&[]);
    w.revision("a", IdlePolicy::Stop);
    assert!(w.state.live.is_empty());
    assert_eq!(starts(&w.plan()), 0);
    w.scale("a", 3);
    assert_eq!(starts(&w.plan()), 0);
}

#[test]
fn a_replica_failing_its_probes_is_replaced() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    let ids = w.serving("a", 1);
    let failed = |w: &mut World| {
        let results = vec![Probed {
            uid: uid("a"),
            id: ids[0].clone(),
            ok: false,
        }];
        probe::record(&mut w.state, results, w.now.at)
    };
    assert_eq!(failed(&mut w), []);
    assert_eq!(failed(&mut w), []);
    let actions = failed(&mut w);
    assert_eq!(
        stopped(&actions),
        [(ids[0].as_str(), StopReason::FailsReadiness)]
    );
    assert_eq!(published(&actions), [&[][..]]);
    assert!(w.tracked("a").is_empty());
    assert!(w
        .observed("a")
        .failure
        .is_some_and(|f| f.contains("failed 3 readiness probes in a row")));
}

#[test]
fn a_new_replica_is_probed_every_millisecond_then_every_50_ms() {
    let mut w = World::new();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 1);
    let actions = w.plan();
    let ids = w.start(&actions);
    let due = probe::due(&w.state, w.now.at);
    assert_eq!(due.len(), 1);
    let not_yet = |w: &mut World| {
        let results = vec![Probed {
            uid: uid("a"),
            id: ids[0].clone(),
            ok: false,
        }];
        probe::record(&mut w.state, results, w.now.at);
        probe::next_due(&w.state).map(|at| at - w.now.at)
    };
    assert_eq!(not_yet(&mut w), Some(EAGER_PROBE_INTERVAL));
    w.advance(Duration::from_millis(300));
    assert_eq!(not_yet(&mut w), Some(STARTUP_PROBE_INTERVAL));
}

#[test]
fn a_replica_without_an_address_sets_no_probe_timer() {
    let mut w = World::restarted();
    w.revision("a", IdlePolicy::Stop);
    w.scale("a", 1);
    let mut r = running("a-1", "a", 1);
    r.address = None;
    w.listed = vec![r];
    w.plan();
    assert_eq!(w.tracked("a").len(), 1);
    // Never probed, so no timer: the fleet would otherwise wake at once, again and again.
    assert_eq!(probe::due(&w.state, w.now.at), []);
    assert_eq!(probe::next_due(&w.state), None);
}

#[test]
fn a_thousand_idle_revisions_plan_nothing() {
    let mut w = World::new();
    for i in 0..1_000 {
        w.revision(&format!("r{i}"), IdlePolicy::Stop);
    }
    // The first sync gives every revision its (empty) ready set once.
    assert_eq!(published(&w.plan()).len(), 1_000);
    for _ in 0..3 {
        w.advance(Duration::from_secs(1));
        assert_eq!(w.plan(), []);
        assert_eq!(settle(&mut w.state), []);
        assert_eq!(grow(&mut w.state, w.now), []);
        assert_eq!(probe::due(&w.state, w.now.at), []);
        assert_eq!(probe::next_due(&w.state), None);
    }
}

#[test]
fn a_frozen_replica_adopted_after_a_restart_is_kept_for_its_retention() {
    let mut w = World::new();
    w.revision(
        "a",
        IdlePolicy::Freeze {
            retention: RETENTION,
        },
    );
    w.listed = vec![replica("a-1", "a", ReplicaState::Frozen, 1)];
    w.plan();
    assert_eq!(w.tracked("a").len(), 1);
    // Frozen, it cannot become ready: that is no failed start.
    w.advance(STARTUP_DEADLINE + Duration::from_secs(1));
    assert_eq!(w.plan(), []);
    assert_eq!(w.observed("a").restarts, 0);
    w.advance(RETENTION - STARTUP_DEADLINE);
    assert_eq!(stopped(&w.plan()), [("a-1", StopReason::Expired)]);
}
