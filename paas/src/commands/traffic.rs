//! `paas deploy --traffic/--tag/--untag`, as `kn service update` has them: edit a
//! service's `spec.traffic` in place. A target is a revision name or `@latest`; in
//! `--traffic` it may also be a tag already on a target.

use anyhow::{bail, Result};
use paas_api::serving::TrafficTarget;

const LATEST: &str = "@latest";

/// The traffic flags of one `paas deploy`.
#[derive(Debug, Default)]
pub(crate) struct TrafficFlags<'a> {
    pub(crate) traffic: &'a [String],
    pub(crate) tags: &'a [String],
    pub(crate) untags: &'a [String],
}

impl TrafficFlags<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.traffic.is_empty() && self.tags.is_empty() && self.untags.is_empty()
    }
}

fn split<'s>(s: &'s str, flag: &str, what: &str) -> Result<(&'s str, &'s str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k, v)),
        _ => bail!("{flag} {s:?}: use {what}"),
    }
}

fn is_latest(t: &TrafficTarget) -> bool {
    t.latest_revision.unwrap_or(t.revision_name.is_none())
}

/// Whether `t` is what `target` (a revision name or `@latest`) names.
fn names(t: &TrafficTarget, target: &str) -> bool {
    if target == LATEST {
        is_latest(t)
    } else {
        !is_latest(t) && t.revision_name.as_deref() == Some(target)
    }
}

fn new_target(target: &str) -> TrafficTarget {
    if target == LATEST {
        TrafficTarget {
            latest_revision: Some(true),
            ..TrafficTarget::default()
        }
    } else {
        TrafficTarget {
            revision_name: Some(target.to_owned()),
            latest_revision: Some(false),
            ..TrafficTarget::default()
        }
    }
}

/// Apply the flags to `traffic` (a service's `spec.traffic`; empty means all to the
/// latest revision). Untags first, then tags, then percents, as kn does.
pub(crate) fn apply(traffic: &mut Vec<TrafficTarget>, flags: &TrafficFlags<'_>) -> Result<()> {
    if flags.is_empty() {
        return Ok(());
    }
    if traffic.is_empty() {
        traffic.push(TrafficTarget {
            latest_revision: Some(true),
            percent: Some(100),
            ..TrafficTarget::default()
        });
    }
    for tag in flags.untags {
        let Some(t) = traffic.iter_mut().find(|t| t.tag.as_deref() == Some(tag)) else {
            bail!("--untag {tag}: no traffic target has the tag {tag:?}");
        };
        t.tag = None;
    }
    for spec in flags.tags {
        let (target, tag) = split(spec, "--tag", "REVISION=TAG or @latest=TAG")?;
        if traffic.iter().any(|t| t.tag.as_deref() == Some(tag)) {
            bail!("--tag {spec}: the tag {tag:?} is already in use; move it with --untag {tag} --tag {spec}");
        }
        // A target that already has a tag gets a second entry: one tag per target.
        match traffic
            .iter_mut()
            .find(|t| names(t, target) && t.tag.is_none())
        {
            Some(t) => t.tag = Some(tag.to_owned()),
            None => traffic.push(TrafficTarget {
                tag: Some(tag.to_owned()),
                percent: Some(0),
                ..new_target(target)
            }),
        }
    }
    if !flags.traffic.is_empty() {
        // The percents given replace all others: every target not named gets 0.
        for t in traffic.iter_mut() {
            t.percent = Some(0);
        }
        let mut total = 0u32;
        for spec in flags.traffic {
            let (target, percent) = split(
                spec,
                "--traffic",
                "REVISION=PERCENT, @latest=PERCENT or TAG=PERCENT",
            )?;
            let percent: u32 = match percent.trim_end_matches('%').parse() {
                Ok(p) if p <= 100 => p,
                _ => bail!("--traffic {spec}: the percent must be a whole number from 0 to 100"),
            };
            total += percent;
            let by_tag = traffic
                .iter()
                .position(|t| t.tag.as_deref() == Some(target));
            let by_name = traffic
                .iter()
                .position(|t| names(t, target) && t.tag.is_none());
            match by_tag.or(by_name) {
                Some(i) => traffic[i].percent = Some(percent),
                None if target == LATEST || target.contains('-') => traffic.push(TrafficTarget {
                    percent: Some(percent),
                    ..new_target(target)
                }),
                None => bail!("--traffic {spec}: {target:?} is neither a revision, @latest nor a tag of this service"),
            }
        }
        if total != 100 {
            bail!("--traffic: the percents add up to {total}; they must add up to 100");
        }
    }
    // Targets with neither traffic nor a tag are dropped.
    traffic.retain(|t| t.percent.unwrap_or(0) > 0 || t.tag.is_some());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags<'a>(
        traffic: &'a [String],
        tags: &'a [String],
        untags: &'a [String],
    ) -> TrafficFlags<'a> {
        TrafficFlags {
            traffic,
            tags,
            untags,
        }
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn show(traffic: &[TrafficTarget]) -> Vec<String> {
        traffic
            .iter()
            .map(|t| {
                format!(
                    "{}={}{}",
                    if is_latest(t) {
                        "@latest".to_owned()
                    } else {
                        t.revision_name.clone().unwrap_or_default()
                    },
                    t.percent.unwrap_or(0),
                    t.tag.as_ref().map(|g| format!(" #{g}")).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn a_split_between_an_old_revision_and_the_latest() {
        let mut t = Vec::new();
        apply(
            &mut t,
            &flags(&v(&["hello-00001=90", "@latest=10"]), &[], &[]),
        )
        .unwrap();
        assert_eq!(show(&t), ["@latest=10", "hello-00001=90"]);
    }

    #[test]
    fn tags_add_zero_percent_targets_and_untag_drops_them() {
        let mut t = Vec::new();
        apply(
            &mut t,
            &flags(&[], &v(&["hello-00001=stable", "@latest=candidate"]), &[]),
        )
        .unwrap();
        assert_eq!(
            show(&t),
            ["@latest=100 #candidate", "hello-00001=0 #stable"]
        );
        apply(&mut t, &flags(&v(&["stable=100"]), &[], &[])).unwrap();
        assert_eq!(
            show(&t),
            ["@latest=0 #candidate", "hello-00001=100 #stable"]
        );
        apply(&mut t, &flags(&[], &[], &v(&["candidate"]))).unwrap();
        assert_eq!(show(&t), ["hello-00001=100 #stable"]);
    }

    #[test]
    fn mistakes_are_refused_with_what_to_do() {
        let mut t = Vec::new();
        let e = apply(&mut t, &flags(&v(&["@latest=50"]), &[], &[])).unwrap_err();
        assert!(e.to_string().contains("add up to 50"), "{e}");
        let e = apply(&mut t, &flags(&v(&["@latest=fifty"]), &[], &[])).unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = apply(&mut t, &flags(&[], &[], &v(&["nope"]))).unwrap_err();
        assert!(
            e.to_string().contains("no traffic target has the tag"),
            "{e}"
        );
        apply(&mut t, &flags(&[], &v(&["@latest=a"]), &[])).unwrap();
        let e = apply(&mut t, &flags(&[], &v(&["hello-00001=a"]), &[])).unwrap_err();
        assert!(e.to_string().contains("--untag a"), "{e}");
        let e = apply(&mut t, &flags(&v(&["stable=100"]), &[], &[])).unwrap_err();
        assert!(e.to_string().contains("neither a revision"), "{e}");
    }
}
