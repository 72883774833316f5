//! `paas apply -f`: every manifest is read and checked before anything is sent, so a
//! bad file changes nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use http::Method;
use paas_api::{parse_manifests, KindInfo, Resource};

use crate::cli::ApplyArgs;
use crate::client::ApiClient;

pub(crate) async fn apply(client: &ApiClient, a: ApplyArgs) -> Result<ExitCode> {
    let mut sources: Vec<(String, String)> = Vec::new();
    for f in &a.files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            sources.push(("<stdin>".into(), text));
            continue;
        }
        for path in manifest_files(Path::new(f))? {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
    }
    let mut manifests = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in &sources {
        match parse_manifests(name, text) {
            Ok(mut m) => manifests.append(&mut m),
            Err(e) => problems.extend(e.problems),
        }
    }
    // CloudEvents SQL filters are parsed here too, so that a bad expression is reported
    // at its line before anything is sent.
    for m in &manifests {
        if let Resource::Trigger(t) = &m.resource {
            if let Err(e) = paas_eventing::filter::Filter::of_trigger(&t.spec) {
                problems.push(format!("{}: {e}", m.place(&e.path)));
            }
        }
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        bail!(
            "{} problem(s) in the manifests; nothing was applied",
            problems.len()
        );
    }
    if manifests.is_empty() {
        bail!("no resources found in {}", a.files.join(", "));
    }
    for m in &manifests {
        for w in &m.warnings {
            eprintln!("Warning: {w}");
        }
    }
    // Every document is first sent with ?dryRun=All: the server makes every check of a
    // real write (validation, what the runtime can run, conflicts) and stores nothing.
    // Only when it would take them all is any written, so that a refused document
    // leaves the others unapplied.
    let mut writes = Vec::with_capacity(manifests.len());
    for m in manifests {
        let write = Write::of(m, &a.namespace)?;
        write.send(client, DryRun::Yes).await.map_err(|e| {
            e.context(format!(
                "{}: refused by the server; nothing was applied",
                write.origin
            ))
        })?;
        writes.push(write);
    }
    let total = writes.len();
    let mut applied: Vec<String> = Vec::new();
    for write in &writes {
        let outcome = write.send(client, DryRun::No).await.map_err(|e| {
            // Only a change made by someone else since the dry run gets here: say
            // exactly what changed.
            let before = match applied.len() {
                0 => "nothing was applied".to_owned(),
                n => format!(
                    "{n} of {total} resource(s) were applied before it: {}",
                    applied.join(", ")
                ),
            };
            e.context(format!(
                "{}: refused by the server; {before}; the rest were not sent",
                write.origin
            ))
        })?;
        let done = write.applied();
        println!("{done} {outcome}");
        applied.push(done);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a write is only checked (`?dryRun=All`) or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DryRun {
    Yes,
    No,
}

/// One document to create or replace.
#[derive(Debug)]
struct Write {
    kind: &'static KindInfo,
    namespace: String,
    name: String,
    body: serde_json::Value,
    origin: String,
}

impl Write {
    fn of(m: paas_api::Manifest, namespace: &str) -> Result<Self> {
        let kind = m.resource.info();
        if !kind.writable() {
            bail!(
                "{}: {} cannot be applied: it is derived from a {}",
                m.origin,
                kind.kind,
                kind.owner.map_or("Service", |o| o.kind)
            );
        }
        let mut resource = m.resource;
        if resource.meta().namespace.is_none() {
            resource.meta_mut().namespace = Some(namespace.to_owned());
        }
        Ok(Self {
            kind,
            namespace: resource.meta().namespace().to_owned(),
            name: resource.meta().name.clone(),
            body: resource.to_json(),
            origin: m.origin,
        })
    }

    /// `service.serving.knative.dev/hello`, as the line printed for it starts.
    fn applied(&self) -> String {
        format!("{}.{}/{}", self.kind.singular, self.kind.group, self.name)
    }

    /// Create or replace the object (or, dry, only check that the server would); how
    /// it went: created, configured or unchanged.
    async fn send(&self, client: &ApiClient, dry: DryRun) -> Result<&'static str> {
        let (kind, name) = (self.kind.kind, &self.name);
        let query = match dry {
            DryRun::Yes => "?dryRun=All",
            DryRun::No => "",
        };
        let path = ApiClient::path(Some(&self.namespace), self.kind, Some(name));
        match client.get(&path).await? {
            Some(before) => {
                let after = client
                    .ok(Method::PUT, &format!("{path}{query}"), Some(&self.body))
                    .await
                    .with_context(|| format!("applying {kind} {name}"))?;
                if dry == DryRun::Yes {
                    return Ok("configured");
                }
                for w in &after.warnings {
                    eprintln!("Warning: {w}");
                }
                // Status writes by the controller also move resourceVersion; what the
                // user owns is spec (generation), labels and annotations.
                let same = |f: &str| after.body["metadata"][f] == before["metadata"][f];
                Ok(
                    if same("generation") && same("labels") && same("annotations") {
                        "unchanged"
                    } else {
                        "configured"
                    },
                )
            }
            None => {
                let collection = ApiClient::path(Some(&self.namespace), self.kind, None);
                client
                    .ok(
                        Method::POST,
                        &format!("{collection}{query}"),
                        Some(&self.body),
                    )
                    .await
                    .with_context(|| format!("creating {kind} {name}"))?;
                Ok("created")
            }
        }
    }
}

/// A file as given, or a directory's *.yaml, *.yml and *.json files in name order.
fn manifest_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            )
        })
        .collect();
    files.sort();
    Ok(files)
}
