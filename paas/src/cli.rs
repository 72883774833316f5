//! The command line, in one place: every command, flag, environment variable and default.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "paas",
    version,
    about = "A serverless platform: container images in, autoscaled HTTP endpoints out",
    long_about = "A serverless platform in the style of Knative.\n\nStart it with `paas up`, then `paas deploy hello --image paas-samples/hello:latest` and `curl http://hello.default.localhost:8080/`."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Data directory: the store, the API token and replica logs live here.
    #[arg(long, global = true, env = "PAAS_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// API server the CLI talks to [default: the one `paas up` recorded in the data directory, else http://127.0.0.1:7070].
    #[arg(long, global = true, env = "PAAS_SERVER")]
    pub(crate) server: Option<String>,
    /// API token [default: the data directory's `token` file].
    #[arg(long, global = true, env = "PAAS_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the platform: controller, gateway and runtime in one process.
    Up(UpArgs),
    /// Create or update a service from an image (or a command) and wait until it is ready.
    Deploy(DeployArgs),
    /// Create or update the resources in YAML manifests (Service, Broker, Trigger).
    Apply(ApplyArgs),
    /// List resources, or show one.
    Get(GetArgs),
    /// Show a resource in detail: status, conditions, traffic, revisions.
    Describe(DescribeArgs),
    /// Delete a service (with its configuration, revisions, route and replicas), a broker or a trigger.
    Delete(DeleteArgs),
    /// Print the logs of a service's replicas.
    Logs(LogsArgs),
    /// Send all of a service's traffic back to an earlier revision (the one before the
    /// revision serving most now, or --to REVISION).
    Rollback(RollbackArgs),
    /// Send CloudEvents to a broker.
    #[command(subcommand)]
    Event(EventCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventCommand {
    /// Send one event to a broker, in binary mode, and report what it answered.
    Send(EventSendArgs),
}

#[derive(Debug, Args)]
pub(crate) struct EventSendArgs {
    /// The broker to send to.
    #[arg(long, default_value = "default")]
    pub(crate) broker: String,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// The event's type, e.g. dev.example.greeting.
    #[arg(long = "type")]
    pub(crate) ty: String,
    /// The event's source, a URI-reference such as /cli.
    #[arg(long, default_value = "/paas/cli")]
    pub(crate) source: String,
    /// The event's id [default: a new UUID].
    #[arg(long)]
    pub(crate) id: Option<String>,
    #[arg(long)]
    pub(crate) subject: Option<String>,
    /// JSON data (sent with content type application/json).
    #[arg(long)]
    pub(crate) data: Option<String>,
    /// Extension attribute NAME=VALUE, e.g. partitionkey=user-7. Repeatable.
    #[arg(long = "ext", value_name = "NAME=VALUE")]
    pub(crate) extensions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuntimeKind {
    /// Containers on the local Docker Engine.
    Docker,
    /// Local child processes running the container's command.
    Process,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Gateway listen address (PORT or HOST:PORT).
    #[arg(long, env = "PAAS_HTTP", default_value = "127.0.0.1:8080")]
    pub(crate) http: String,
    /// API listen address (PORT or HOST:PORT).
    #[arg(long, env = "PAAS_API", default_value = "127.0.0.1:7070")]
    pub(crate) api: String,
    /// Where replicas run.
    #[arg(long, env = "PAAS_RUNTIME", value_enum, default_value = "docker")]
    pub(crate) runtime: RuntimeKind,
    /// Docker Engine socket.
    #[arg(long, env = "DOCKER_SOCKET", default_value = paas_runtime::docker::DEFAULT_SOCKET)]
    pub(crate) docker_socket: PathBuf,
    /// Revisions without traffic kept per service (Knative's min-non-active-revisions);
    /// older ones are deleted with their replicas.
    #[arg(long, env = "PAAS_KEEP_REVISIONS", default_value_t = 20)]
    pub(crate) keep_revisions: usize,
    /// Keep broker events in this Kafka cluster (HOST:PORT[,HOST:PORT...]) instead of
    /// the embedded log in the data directory.
    #[arg(long, env = "PAAS_KAFKA", value_name = "HOST:PORT")]
    pub(crate) kafka: Option<String>,
    /// Kafka: partitions of each new broker topic (Knative's default).
    #[arg(long, env = "PAAS_KAFKA_PARTITIONS", default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub(crate) kafka_partitions: i32,
    /// Kafka: replication factor of each new broker topic.
    #[arg(long, env = "PAAS_KAFKA_REPLICATION_FACTOR", default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=32))]
    pub(crate) kafka_replication_factor: i32,
    /// Autoscaler: the stable window over which load is averaged (Knative's default).
    #[arg(long, env = "PAAS_STABLE_WINDOW", default_value = "60s", value_parser = duration)]
    pub(crate) stable_window: std::time::Duration,
    /// Autoscaler: how long the last replica stays after the window says zero.
    #[arg(long, env = "PAAS_SCALE_TO_ZERO_GRACE_PERIOD", default_value = "30s", value_parser = duration)]
    pub(crate) scale_to_zero_grace_period: std::time::Duration,
    /// Autoscaler: whether revisions without traffic go to zero replicas.
    #[arg(long, env = "PAAS_ENABLE_SCALE_TO_ZERO", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) enable_scale_to_zero: bool,
    /// Autoscaler: requests in flight per replica to aim at when a revision sets no target.
    #[arg(
        long,
        env = "PAAS_CONTAINER_CONCURRENCY_TARGET",
        default_value_t = 100.0
    )]
    pub(crate) container_concurrency_target_default: f64,
    /// Autoscaler: replicas a new revision starts with.
    #[arg(long, env = "PAAS_INITIAL_SCALE", default_value_t = 1)]
    pub(crate) initial_scale: u32,
    /// Autoscaler: whether revisions may declare initial-scale 0.
    #[arg(long, env = "PAAS_ALLOW_ZERO_INITIAL_SCALE", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) allow_zero_initial_scale: bool,
    /// Autoscaler: the share of the target each replica is aimed at, in percent.
    #[arg(
        long,
        env = "PAAS_TARGET_UTILIZATION_PERCENTAGE",
        default_value_t = 70.0
    )]
    pub(crate) target_utilization_percentage: f64,
    /// Autoscaler: requests per second per replica to aim at with metric rps.
    #[arg(long, env = "PAAS_RPS_TARGET", default_value_t = 200.0)]
    pub(crate) rps_target_default: f64,
    /// Autoscaler: the panic window as a percentage of the stable window.
    #[arg(long, env = "PAAS_PANIC_WINDOW_PERCENTAGE", default_value_t = 10.0)]
    pub(crate) panic_window_percentage: f64,
    /// Autoscaler: panic when the panic window wants this percentage of what is ready.
    #[arg(long, env = "PAAS_PANIC_THRESHOLD_PERCENTAGE", default_value_t = 200.0)]
    pub(crate) panic_threshold_percentage: f64,
    /// Autoscaler: the most a revision may grow in one decision, as a multiple of ready replicas.
    #[arg(long, env = "PAAS_MAX_SCALE_UP_RATE", default_value_t = 1000.0)]
    pub(crate) max_scale_up_rate: f64,
    /// Autoscaler: the most a revision may shrink in one decision, as a divisor of ready replicas.
    #[arg(long, env = "PAAS_MAX_SCALE_DOWN_RATE", default_value_t = 2.0)]
    pub(crate) max_scale_down_rate: f64,
    /// Autoscaler: how long the last replica is kept after its last request.
    #[arg(long, env = "PAAS_SCALE_TO_ZERO_POD_RETENTION_PERIOD", default_value = "0s", value_parser = duration)]
    pub(crate) scale_to_zero_pod_retention_period: std::time::Duration,
    /// Autoscaler: the default min-scale of every revision.
    #[arg(long, env = "PAAS_MIN_SCALE", default_value_t = 0)]
    pub(crate) min_scale: u32,
    /// Autoscaler: the default max-scale of every revision (0 is unlimited).
    #[arg(long, env = "PAAS_MAX_SCALE", default_value_t = 0)]
    pub(crate) max_scale: u32,
    /// Autoscaler: how long a scale-down waits for the load to stay low.
    #[arg(long, env = "PAAS_SCALE_DOWN_DELAY", default_value = "0s", value_parser = duration)]
    pub(crate) scale_down_delay: std::time::Duration,
    /// Autoscaler: requests a revision should absorb without waiting (-1: always buffer).
    #[arg(
        long,
        env = "PAAS_TARGET_BURST_CAPACITY",
        default_value_t = 211.0,
        allow_hyphen_values = true
    )]
    pub(crate) target_burst_capacity: f64,
    /// Autoscaler: the fewest replicas a revision wakes to from zero.
    #[arg(long, env = "PAAS_ACTIVATION_SCALE", default_value_t = 1)]
    pub(crate) activation_scale: u32,
    /// Gateway: a request head must arrive within this long, and a keep-alive
    /// connection idle this long is closed.
    #[arg(long, env = "PAAS_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub(crate) header_read_timeout: std::time::Duration,
    /// Gateway: client connections open at once; beyond, 503 with Retry-After.
    #[arg(long, env = "PAAS_MAX_CONNECTIONS", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_connections: u32,
    /// Gateway: bytes of one request head (request line and headers); beyond, 431.
    #[arg(long, env = "PAAS_MAX_HEADER_BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1024..))]
    pub(crate) max_header_bytes: u32,
    /// Broker and channel ingress: event bytes held in memory at once, all requests
    /// together; beyond, 503 with Retry-After.
    #[arg(long, env = "PAAS_INGRESS_BYTES_IN_FLIGHT", default_value_t = 64 << 20, value_parser = clap::value_parser!(u32).range(1 << 20..))]
    pub(crate) ingress_bytes_in_flight: u32,
    /// Log filter, e.g. `info` or `paas_controller=debug`.
    #[arg(long, env = "PAAS_LOG", default_value = "info")]
    pub(crate) log: String,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    paas_api::duration::parse_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 1m30s or 500ms"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum OutputFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Service name (a DNS-1035 label).
    pub(crate) name: String,
    /// Container image; must exist locally. Required when creating, unless --cmd is given.
    #[arg(long)]
    pub(crate) image: Option<String>,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// Environment variable NAME=VALUE; NAME- removes it. Repeatable.
    #[arg(long = "env", short = 'e', value_name = "NAME=VALUE")]
    pub(crate) env: Vec<String>,
    /// Port the container listens on ($PORT) [default: 8080].
    #[arg(long)]
    pub(crate) port: Option<u16>,
    /// Entrypoint, one element per flag: --cmd sh --cmd /app/start.sh. Replaces the previous one.
    #[arg(long = "cmd", value_name = "COMMAND")]
    pub(crate) cmd: Vec<String>,
    /// Argument, one per flag. Replaces the previous ones.
    #[arg(long = "arg", value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
    /// Hard limit of concurrent requests per replica (0 = unlimited).
    #[arg(long)]
    pub(crate) concurrency_limit: Option<u32>,
    /// Annotation KEY=VALUE (e.g. autoscaling.knative.dev/min-scale=2); KEY- removes it.
    /// serving.knative.dev/rollout-duration and canary.paas.dev/* go on the service, the
    /// rest on revisions.
    #[arg(long = "annotation", short = 'a', value_name = "KEY=VALUE")]
    pub(crate) annotations: Vec<String>,
    /// Request timeout in seconds (timeoutSeconds).
    #[arg(long)]
    pub(crate) timeout: Option<u64>,
    /// Traffic split, TARGET=PERCENT, repeatable; TARGET is a revision, @latest or a tag.
    /// The percents given must add up to 100; targets not named get 0.
    #[arg(long = "traffic", value_name = "TARGET=PERCENT")]
    pub(crate) traffic: Vec<String>,
    /// Tag a revision (or @latest) with its own URL {tag}-{name}.{namespace}.localhost:
    /// REVISION=TAG, repeatable.
    #[arg(long = "tag", value_name = "REVISION=TAG")]
    pub(crate) tags: Vec<String>,
    /// Remove a tag, repeatable.
    #[arg(long = "untag", value_name = "TAG")]
    pub(crate) untags: Vec<String>,
    /// Return at once instead of waiting for the service to be ready.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// How long to wait for ready, in seconds.
    #[arg(long, default_value_t = 300)]
    pub(crate) wait_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// A manifest file, a directory of them, or - for standard input.
    #[arg(short = 'f', long = "filename", required = true)]
    pub(crate) files: Vec<String>,
    /// Namespace for resources that name none.
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// services (ksvc), revisions (rev), routes (rt), configurations (config), brokers, triggers, sequences, parallels, pingsources or kafkasources.
    pub(crate) kind: String,
    /// One resource by name; all when omitted.
    pub(crate) name: Option<String>,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// List across all namespaces.
    #[arg(short = 'A', long)]
    pub(crate) all_namespaces: bool,
    #[arg(short, long, value_enum, default_value = "table")]
    pub(crate) output: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// services (ksvc), revisions (rev), routes (rt), configurations (config), brokers, triggers, sequences, parallels, pingsources or kafkasources.
    pub(crate) kind: String,
    pub(crate) name: String,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// service (ksvc), broker, trigger, sequence, parallel, pingsource or kafkasource.
    pub(crate) kind: String,
    /// Names of what to delete.
    #[arg(required = true)]
    pub(crate) names: Vec<String>,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    pub(crate) service: String,
    /// The revision to send all traffic to [default: the newest ready revision older
    /// than the one serving most traffic now].
    #[arg(long, value_name = "REVISION")]
    pub(crate) to: Option<String>,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// How long to wait for the route to switch, in seconds.
    #[arg(long, default_value_t = 60)]
    pub(crate) wait_timeout: u64,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    pub(crate) service: String,
    #[arg(short, long, default_value = paas_api::DEFAULT_NAMESPACE)]
    pub(crate) namespace: String,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Lines per replica to start with.
    #[arg(long, default_value_t = 100)]
    pub(crate) tail: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
