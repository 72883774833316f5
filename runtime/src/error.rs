use std::path::PathBuf;

/// What can go wrong running replicas, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {image} not found locally: build it (`bash samples/build.sh` builds the samples) or `docker pull` it; paas never pulls")]
    ImageNotFound { image: String },
    #[error("the {runtime} runtime needs {what}")]
    Unsupported { runtime: &'static str, what: String },
    #[error("could not start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no replica {id}")]
    NoSuchReplica { id: String },
    /// A backend's own failure (the Docker Engine's answer, ...), worded by the
    /// backend: [`crate::docker::DockerError`] for Docker.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync + 'static>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
