//! Revision garbage collection, as Knative's `min-non-active-revisions`: of a
//! configuration's revisions that carry no traffic (no percent, no tag) and are
//! neither its latest created nor its latest ready, keep the newest N and delete the
//! rest, and with them their replicas. A revision annotated
//! `serving.knative.dev/no-gc: "true"` is never collected.

use std::collections::HashSet;

use paas_api::{Object, Revision, TrafficTarget};

use super::{revision_number, revisions_of, Context, Result};
use crate::store::StoreExt;

/// Knative's annotation that exempts a revision from collection.
pub const NO_GC: &str = "serving.knative.dev/no-gc";

/// Which of `revisions` (one configuration's) to delete, keeping `keep` inactive ones.
pub fn collectable<'a>(
    revisions: &'a [Revision],
    active: &HashSet<&str>,
    keep: usize,
) -> Vec<&'a Revision> {
    let mut inactive: Vec<&Revision> = revisions
        .iter()
        .filter(|r| !active.contains(r.name()))
        .filter(|r| r.metadata.annotations.get(NO_GC).map(String::as_str) != Some("true"))
        .collect();
    // Newest first, by the number in NAME-00042.
    inactive.sort_by_key(|r| std::cmp::Reverse(revision_number(r.name()).unwrap_or(0)));
    inactive.into_iter().skip(keep).collect()
}

/// Collect configuration `name`'s old revisions, given its route's resolved traffic.
pub async fn collect(
    ctx: &Context,
    ns: &str,
    name: &str,
    traffic: &[TrafficTarget],
    latest: &[Option<String>],
) -> Result<()> {
    let revisions = revisions_of(ctx, ns, name).await?;
    let active: HashSet<&str> = traffic
        .iter()
        .filter_map(|t| t.revision_name.as_deref())
        .chain(latest.iter().filter_map(|l| l.as_deref()))
        .collect();
    for r in collectable(&revisions, &active, ctx.keep_revisions) {
        tracing::info!(revision = %r.name(), configuration = %name, keep = ctx.keep_revisions, "deleting an old revision without traffic");
        ctx.store.delete::<Revision>(ns, r.name()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(n: u32) -> Revision {
        let mut r = Revision::default();
        r.metadata.name = format!("hello-{n:05}");
        r
    }

    fn names(v: &[&Revision]) -> Vec<String> {
        v.iter().map(|r| r.name().to_owned()).collect()
    }

    #[test]
    fn keeps_the_newest_inactive_and_every_active_one() {
        let revisions: Vec<Revision> = (1..=8).map(rev).collect();
        // 00008 is the latest, 00002 is tagged, 00005 has traffic.
        let active = HashSet::from(["hello-00008", "hello-00002", "hello-00005"]);
        assert_eq!(
            names(&collectable(&revisions, &active, 2)),
            ["hello-00004", "hello-00003", "hello-00001"]
        );
        assert!(collectable(&revisions, &active, 5).is_empty());
    }

    #[test]
    fn no_gc_exempts_a_revision() {
        let mut revisions: Vec<Revision> = (1..=3).map(rev).collect();
        revisions[0]
            .metadata
            .annotations
            .insert(NO_GC.into(), "true".into());
        let active = HashSet::from(["hello-00003"]);
        assert_eq!(names(&collectable(&revisions, &active, 0)), ["hello-00002"]);
    }
}
