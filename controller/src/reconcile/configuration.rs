//! Configuration → an immutable Revision per generation of its template, and which
//! revision is the latest created and the latest ready.

use paas_api::condition::ConditionStatus;
use paas_api::keys;
use paas_api::{Configuration, Object, Revision};

use super::{owned_by, ready_status, revision_number, revisions_of, Action, Context, Result};
use crate::store::StoreExt;

pub async fn reconcile(cfg: &Configuration, ctx: &Context) -> Result<Action> {
    let ns = cfg.namespace();
    let name = cfg.name();
    let now = ctx.now();
    let generation = cfg.metadata.generation.unwrap_or(1);

    let revisions = revisions_of(ctx, ns, name).await?;
    let of_generation = revisions.iter().find(|r| {
        r.metadata
            .labels
            .get(keys::CONFIGURATION_GENERATION_LABEL)
            .and_then(|g| g.parse::<i64>().ok())
            == Some(generation)
    });
    let current = match of_generation {
        Some(r) => r.clone(),
        None => {
            let next = revisions
                .iter()
                .filter_map(|r| revision_number(r.name()))
                .max()
                .unwrap_or(0)
                + 1;
            let rev = new_revision(cfg, next, generation);
            tracing::info!(configuration = %name, revision = %rev.name(), generation, "creating revision");
            ctx.store.create(&rev).await?
        }
    };

    let mut status = cfg.status.clone();
    status.observed_generation = cfg.metadata.generation;
    status.latest_created_revision_name = Some(current.name().to_owned());
    // The latest ready revision only moves forward to a revision that got ready.
    let previous_ready = status
        .latest_ready_revision_name
        .as_deref()
        .and_then(revision_number)
        .unwrap_or(0);
    let newest_ready = revisions
        .iter()
        .chain(std::iter::once(&current))
        .filter(|r| ready_status(r) == ConditionStatus::True)
        .filter_map(|r| Some((revision_number(r.name())?, r.name().to_owned())))
        .filter(|(n, _)| *n >= previous_ready)
        .max();
    if let Some((_, ready)) = newest_ready {
        status.latest_ready_revision_name = Some(ready);
    }
    if let Some(latest) = &status.latest_ready_revision_name {
        if !revisions.iter().any(|r| r.name() == latest) && current.name() != latest {
            status.latest_ready_revision_name = None;
        }
    }

    let current_ready = current.status.conditions.get("Ready").cloned();
    match current_ready {
        Some(c) if c.status == ConditionStatus::True => status.conditions.set_true("Ready", now),
        Some(c) if c.status == ConditionStatus::False => {
            let message = format!(
                "Revision {:?} failed with message: {}",
                current.name(),
                c.message.as_deref().unwrap_or("no message")
            );
            status.conditions.set(
                "Ready",
                ConditionStatus::False,
                Some("RevisionFailed"),
                Some(&message),
                now,
            );
        }
        _ => {
            let message = format!("waiting for revision {} to be ready", current.name());
            status.conditions.set(
                "Ready",
                ConditionStatus::Unknown,
                Some("Deploying"),
                Some(&message),
                now,
            );
        }
    }

    if status != cfg.status {
        let mut next = cfg.clone();
        next.status = status;
        ctx.store.update_status(&next).await?;
    }
    Ok(Action::Done)
}

fn new_revision(cfg: &Configuration, number: u32, generation: i64) -> Revision {
    let name = format!("{}-{number:05}", cfg.name());
    let template = &cfg.spec.template;
    let mut meta = paas_api::ObjectMeta::named(cfg.namespace(), &name);
    meta.labels = template.metadata.labels.clone();
    let service = cfg
        .metadata
        .labels
        .get(keys::SERVICE_LABEL)
        .cloned()
        .unwrap_or_else(|| cfg.name().to_owned());
    meta.labels.insert(keys::SERVICE_LABEL.into(), service);
    meta.labels
        .insert(keys::CONFIGURATION_LABEL.into(), cfg.name().into());
    meta.labels.insert(
        keys::CONFIGURATION_GENERATION_LABEL.into(),
        generation.to_string(),
    );
    meta.annotations = template.metadata.annotations.clone();
    meta.owner_references.push(owned_by(cfg));
    Revision {
        api_version: Revision::API_VERSION.into(),
        kind: Revision::KIND.into(),
        metadata: meta,
        spec: template.spec.clone(),
        status: Default::default(),
    }
}
