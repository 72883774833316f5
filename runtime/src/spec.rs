//! What a replica is started from: the revision's container, resolved.

use paas_api::{Object, Revision};

/// Everything a backend needs to start one replica of a revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub namespace: String,
    pub service: String,
    pub configuration: String,
    pub revision: String,
    /// Ties replicas to this incarnation of the revision name (a deleted and re-created
    /// service reuses names).
    pub revision_uid: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// The user's variables; the runtime contract's are added by [`Self::environment`].
    pub env: Vec<(String, String)>,
    /// The port the container listens on (`$PORT`).
    pub port: u16,
}

impl ReplicaSpec {
    pub fn from_revision(rev: &Revision) -> Option<Self> {
        let c = rev.spec.container()?;
        Some(Self {
            namespace: rev.namespace().to_owned(),
            service: rev.service_name().unwrap_or(rev.name()).to_owned(),
            configuration: rev.configuration_name().unwrap_or(rev.name()).to_owned(),
            revision: rev.name().to_owned(),
            revision_uid: rev.metadata.uid.clone().unwrap_or_default(),
            image: c.image.clone().filter(|i| !i.trim().is_empty()),
            command: c.command.clone(),
            args: c.args.clone(),
            env: c
                .env
                .iter()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect(),
            port: c.port(),
        })
    }

    /// Knative's runtime contract: the user's variables plus PORT, K_SERVICE,
    /// K_CONFIGURATION and K_REVISION, with `port` the port to listen on.
    pub fn environment(&self, port: u16) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        env.push(("PORT".into(), port.to_string()));
        env.push(("K_SERVICE".into(), self.service.clone()));
        env.push(("K_CONFIGURATION".into(), self.configuration.clone()));
        env.push(("K_REVISION".into(), self.revision.clone()));
        env
    }
}
