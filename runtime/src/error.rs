use std::path::PathBuf;

/// What can go wrong running replicas, worded for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {image} not found locally: build it (`bash samples/build.sh` builds the samples) or `docker pull` it; paas never pulls")]
    ImageNotFound { image: String },
    #[error("the {runtime} runtime needs {what}")]
    Unsupported { runtime: &'static str, what: String },
    #[error("cannot reach the Docker Engine at {socket}: {source}; start it (`dockerd &`) or run `paas up --runtime process`")]
    DockerUnreachable {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("Docker Engine answered {status} to {what}: {message}")]
    Docker {
        what: String,
        status: u16,
        message: String,
    },
    #[error("Docker Engine connection failed during {what}: {source}")]
    DockerHttp {
        what: String,
        #[source]
        source: hyper::Error,
    },
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
    #[error("unexpected answer from the Docker Engine to {what}: {source}")]
    DockerDecode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
