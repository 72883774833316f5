//! `paas up`: every component in one process, wired with in-process channels.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use paas_autoscaler::{Autoscaler, AutoscalerConfig};
use paas_controller::changed::Changed;
use paas_controller::fleet::Fleet;
use paas_controller::poke::AutoscalerPoke;
use paas_controller::reconcile::Context;
use paas_controller::rest::{self, ApiState};
use paas_controller::store::SqliteStore;
use paas_eventing::dispatcher::Dispatchers;
use paas_eventing::ingress::BrokerIngress;
use paas_eventing::log::{EmbeddedLog, KafkaConfig, KafkaLog, Retention};
use paas_eventing::sources::kafka_clusters::SourceClusters;
use paas_eventing::transport::HttpTransport;
use paas_eventing::EventLog;
use paas_gateway::{Gateway, GatewayLimits, RoutingTable};
use paas_runtime::docker::DockerRuntime;
use paas_runtime::process::ProcessRuntime;
use paas_runtime::Runtime;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::{RuntimeKind, UpArgs};
use crate::config::{parse_listen, ADDRESSES_FILE, SERVER_FILE};
use crate::data_dir::{raise_open_files_limit, DataDir};
use crate::ingress::{IngressHandler, CHANNEL_HOST, INGRESS_HOST};
use crate::shutdown::{self, CoreTasks};

/// The backend, kept concrete for the clean-up at shutdown.
enum Backend {
    Docker(Arc<DockerRuntime>),
    Process(Arc<ProcessRuntime>),
}

pub(crate) async fn up(args: UpArgs, data_dir: &Path, given_token: Option<String>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log).context("--log is not a valid filter")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let autoscaler_config = AutoscalerConfig {
        stable_window: args.stable_window,
        scale_to_zero_grace_period: args.scale_to_zero_grace_period,
        enable_scale_to_zero: args.enable_scale_to_zero,
        container_concurrency_target_default: args.container_concurrency_target_default,
        initial_scale: args.initial_scale,
        allow_zero_initial_scale: args.allow_zero_initial_scale,
        container_concurrency_target_percentage: args.target_utilization_percentage,
        requests_per_second_target_default: args.rps_target_default,
        panic_window_percentage: args.panic_window_percentage,
        panic_threshold_percentage: args.panic_threshold_percentage,
        max_scale_up_rate: args.max_scale_up_rate,
        max_scale_down_rate: args.max_scale_down_rate,
        scale_to_zero_pod_retention_period: args.scale_to_zero_pod_retention_period,
        min_scale: args.min_scale,
        max_scale: args.max_scale,
        scale_down_delay: args.scale_down_delay,
        target_burst_capacity: args.target_burst_capacity,
        activation_scale: args.activation_scale,
        ..AutoscalerConfig::default()
    };
    let problems = autoscaler_config.problems();
    if !problems.is_empty() {
        anyhow::bail!("invalid autoscaler settings:\n  {}", problems.join("\n  "));
    }
    let http_addr = parse_listen(&args.http)
        .map_err(anyhow::Error::msg)
        .context("--http")?;
    let api_addr = parse_listen(&args.api)
        .map_err(anyhow::Error::msg)
        .context("--api")?;

    let data = DataDir::open(data_dir)?;
    let data_dir = data.path();
    raise_open_files_limit();
    let token = match given_token {
        Some(token) => rest::token::save(data_dir, &token)?,
        None => rest::token::load_or_create(data_dir)?,
    };
    let instance = instance_id(data_dir)?;
    let store = SqliteStore::open(&data.store_file()?)
        .with_context(|| format!("cannot open the store in {}", data_dir.display()))?;

    let backend = match args.runtime {
        RuntimeKind::Docker => Backend::Docker(
            DockerRuntime::connect(args.docker_socket.clone(), instance.clone()).await?,
        ),
        RuntimeKind::Process => Backend::Process(ProcessRuntime::new(data_dir)?),
    };
    let runtime: Arc<dyn Runtime> = match &backend {
        Backend::Docker(d) => d.clone(),
        Backend::Process(p) => p.clone(),
    };

    let api = TcpListener::bind(api_addr).await.with_context(|| {
        format!("cannot listen on {api_addr} for the API: is another `paas up` running? choose another with --api")
    })?;
    // Port 0 lets the system choose; from here on, the address is the one bound.
    let api_addr = api.local_addr().context("reading the API's address")?;

    let table = RoutingTable::new();
    let fleet_changes = Arc::new(Changed::default());
    let fleet = Fleet::new(runtime.clone(), table.clone(), fleet_changes.clone());
    let autoscaler = Autoscaler::new(autoscaler_config, fleet.clone());
    let event_log: Arc<dyn EventLog> = match &args.kafka {
        Some(bootstrap) => {
            let config = KafkaConfig {
                bootstrap: bootstrap.clone(),
                partitions: args.kafka_partitions,
                replication: args.kafka_replication_factor,
                instance: Some(format!("paas-{instance}")),
            };
            KafkaLog::connect(config).await?
        }
        None => EmbeddedLog::open(&data_dir.join("eventlog"), Retention::default())?,
    };
    let ingress = Arc::new(BrokerIngress::new(event_log.clone()));
    let channels = Arc::new(BrokerIngress::channels(event_log.clone()));
    let limits = GatewayLimits {
        header_read_timeout: args.header_read_timeout,
        max_connections: args.max_connections as usize,
        max_header_bytes: args.max_header_bytes as usize,
        ingress_bytes_in_flight: args.ingress_bytes_in_flight as usize,
        ..GatewayLimits::default()
    };
    let gateway = Gateway::new(table.clone(), Arc::new(AutoscalerPoke(autoscaler.clone())))
        .with_limits(limits)
        .with_handler(INGRESS_HOST, Arc::new(IngressHandler(ingress.clone())))
        .with_handler(CHANNEL_HOST, Arc::new(IngressHandler(channels.clone())));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let bound = gateway.clone().bind(http_addr, workers).with_context(|| {
        format!("cannot listen on {http_addr} for the gateway: is another `paas up` running? choose another with --http")
    })?;
    let http_addr = bound
        .local_addr()
        .context("reading the gateway's address")?;
    record_addresses(data_dir, http_addr, api_addr)?;
    let dispatchers = Dispatchers::new(event_log.clone(), Arc::new(HttpTransport::new()));
    let ctx = Arc::new(Context {
        dispatchers,
        event_log: event_log.clone(),
        store: Arc::new(store),
        fleet: fleet.clone(),
        autoscaler: autoscaler.clone(),
        table: table.clone(),
        http_port: http_addr.port(),
        keep_revisions: args.keep_revisions,
        tickers: Arc::default(),
        source_clusters: Arc::new(SourceClusters::new(Some(format!("paas-{instance}")))),
        clock: chrono::Utc::now,
    });

    // The routes the store holds are served from the first request on: a restarted paas
    // must not answer 404 for services that exist while the controller catches up
    // (their requests wait, as for a cold start, until replicas are ready).
    if let Err(e) = paas_controller::reconcile::route::publish(&ctx).await {
        tracing::warn!(error = %e, "loading the stored routes failed; the controller retries");
    }
    let mut tasks = CoreTasks::default();
    tasks.spawn("fleet", fleet.run());
    tasks.spawn("autoscaler", autoscaler.clone().run());
    tasks.spawn(
        "collector",
        paas_controller::collector::run(autoscaler, table.clone()),
    );
    tasks.spawn(
        "controller",
        paas_controller::controller::run(ctx.clone(), fleet_changes),
    );
    tasks.spawn(
        "API server",
        rest::serve(
            api,
            ApiState {
                ctx,
                token: token.into(),
                gateway,
                ingress,
                channels,
            },
        ),
    );
    bound.start().context("starting the gateway's workers")?;
    tracing::info!(
        gateway = %format!("http://{http_addr}"),
        api = %format!("http://{api_addr}"),
        data_dir = %data_dir.display(),
        runtime = runtime.name(),
        event_log = args.kafka.as_deref().unwrap_or("embedded"),
        "paas is up"
    );
    eprintln!(
        "paas is up: services at http://NAME.NAMESPACE.localhost:{} , API at http://{api_addr} , runtime {} , events in {} , data in {}",
        http_addr.port(),
        runtime.name(),
        args.kafka.as_ref().map_or("the embedded log".to_owned(), |k| format!("Kafka at {k}")),
        data_dir.display()
    );

    // Every core task runs for as long as paas does: one that ends (a panic, a bug)
    // leaves a half-working platform, so paas ends too and a supervisor restarts it.
    let failed = tokio::select! {
        () = shutdown::signal() => None,
        ended = tasks.first_to_end() => Some(ended),
    };
    if let Some(what) = &failed {
        tracing::error!(task = %what, "a core task ended: shutting down");
    }
    // A second signal ends paas at once, whatever is left to do.
    tokio::spawn(async {
        shutdown::signal().await;
        eprintln!("paas: second signal, exiting now");
        std::process::exit(130);
    });
    let drained = shutdown::drain_requests(&table).await;
    tracing::info!(drained, "shutting down: stopping replicas");
    tasks.abort_all();
    event_log.flush();
    let stopped = tokio::time::timeout(shutdown::STOP_REPLICAS_WITHIN, async {
        match backend {
            Backend::Docker(d) => d.remove_all().await,
            Backend::Process(p) => p.kill_all(),
        }
    })
    .await;
    if stopped.is_err() {
        tracing::warn!(
            within = ?shutdown::STOP_REPLICAS_WITHIN,
            "replicas were still being stopped; a restart adopts or removes what is left"
        );
    }
    drop(data);
    match failed {
        Some(what) => anyhow::bail!(
            "{what}: see the log above; paas stopped so that it can be restarted whole"
        ),
        None => Ok(()),
    }
}

/// Where this `paas up` listens, for the CLI (`server`) and for scripts and tests that
/// let it choose its ports (`addresses.json`), written before the API answers.
fn record_addresses(data_dir: &Path, http: SocketAddr, api: SocketAddr) -> Result<()> {
    std::fs::write(data_dir.join(SERVER_FILE), format!("http://{api}\n"))
        .context("cannot record the API address in the data directory")?;
    let addresses = serde_json::json!({ "http": http.to_string(), "api": api.to_string() });
    let path = data_dir.join(ADDRESSES_FILE);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, addresses.to_string())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| {
            format!(
                "cannot record the listening addresses in {}",
                path.display()
            )
        })
}

/// One id per data directory: it labels this installation's containers.
fn instance_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("instance");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_owned());
        }
    }
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}
