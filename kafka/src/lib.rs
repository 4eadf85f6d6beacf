//! vigil-kafka: runs Vigil's stages as Kafka services. The stage libraries stay free of Kafka;
//! this crate owns the consumer, the producer, the offsets, dead letters, state topics, metrics,
//! health and shutdown, and ships the `vigil-ingest`, `vigil-enrich`, `vigil-detect` and
//! `vigil-publish` binaries. `vigil run` runs all four in one process.

pub mod args;
pub mod auth;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod stage;
pub mod stages;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use args::{CommonArgs, LogFormat, Topics};
pub use http::Health;
pub use kafka::run_stage;
pub use metrics::Metrics;
pub use stage::{Incoming, Outgoing, Processor, RuntimeError, StateKeeping, TopicSpec};
pub use vigil_settings::{Settings, SettingsArgs};

/// Why a service did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] vigil_settings::SettingsError),
    #[error(transparent)]
    Rules(#[from] vigil_detect::BuildError),
    #[error("metrics: {0}")]
    Metrics(#[from] metrics::MetricsError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
}

/// A stage's loop, not yet started.
type StageFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + Send>>;

/// One process's stages, its HTTP endpoints and its shutdown.
pub struct Service {
    common: CommonArgs,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown_tx: watch::Sender<bool>,
    /// The stages, started by [`Service::run`] once the endpoints listen: a stage's Kafka
    /// connections take ephemeral ports, which the metrics port, if chosen beforehand, may be.
    stages: Vec<(&'static str, StageFuture)>,
    /// Several stages in one process each get a group of their own: `<group>-<stage>`.
    shared_process: bool,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("stages", &self.stages.len())
            .finish()
    }
}

impl Service {
    pub fn new(common: CommonArgs, metrics: Metrics, shared_process: bool) -> Self {
        let (shutdown_tx, _) = watch::channel(false);
        Self {
            common,
            metrics,
            health: Health::new(),
            shutdown_tx,
            stages: Vec::new(),
            shared_process,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Adds a stage; [`Service::run`] starts it.
    pub fn add_stage<P: Processor>(&mut self, processor: P) {
        let stage = processor.stage();
        let mut common = self.common.clone();
        if self.shared_process {
            let prefix = common
                .group_id
                .clone()
                .unwrap_or_else(|| "vigil".to_owned());
            common.group_id = Some(format!("{prefix}-{stage}"));
        }
        let stage_future = run_stage(
            processor,
            common,
            self.metrics.clone(),
            Arc::clone(&self.health),
            self.shutdown_tx.subscribe(),
        );
        self.stages.push((stage, Box::pin(stage_future)));
    }

    /// Serves the endpoints, runs until SIGTERM/SIGINT (or a stage fails), then shuts every stage
    /// down in order and returns the first failure.
    pub async fn run(self) -> Result<(), RuntimeError> {
        let server = http::serve(
            self.common.metrics_addr,
            self.metrics.clone(),
            Arc::clone(&self.health),
        )
        .await
        .map_err(|error| {
            RuntimeError::Task(format!(
                "cannot serve on {}: {error}",
                self.common.metrics_addr
            ))
        })?;
        let mut tasks: Vec<(&'static str, JoinHandle<Result<(), RuntimeError>>)> = self
            .stages
            .into_iter()
            .map(|(stage, stage_future)| (stage, tokio::spawn(stage_future)))
            .collect();
        let signal = async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
                _ = async { match terminate.as_mut() { Some(stream) => { stream.recv().await; } None => std::future::pending::<()>().await } } => tracing::info!("SIGTERM: shutting down"),
            }
        };
        let first_exit = futures::future::select_all(tasks.iter_mut().map(|(_, task)| task));
        let mut failure = None;
        tokio::select! {
            () = signal => {}
            (result, index, _) = first_exit => {
                let stage = tasks.get(index).map_or("?", |(stage, _)| *stage);
                match result {
                    Ok(Ok(())) => tracing::warn!(stage, "stage stopped by itself"),
                    Ok(Err(error)) => { tracing::error!(stage, %error, "stage failed"); failure = Some(error); }
                    Err(error) => failure = Some(RuntimeError::Task(error.to_string())),
                }
            }
        }
        self.health.shutting_down();
        let _ = self.shutdown_tx.send(true);
        for (stage, task) in tasks {
            if task.is_finished() && failure.is_some() {
                continue;
            }
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(stage, %error, "stage failed while stopping");
                    failure.get_or_insert(error);
                }
                Err(error) => {
                    failure.get_or_insert(RuntimeError::Task(error.to_string()));
                }
            }
        }
        server.abort();
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The body of every stage binary: logging, a multi-threaded runtime, the service, an exit code.
pub fn service_main(
    common: &CommonArgs,
    shared_process: bool,
    build: impl FnOnce(&mut Service) -> Result<(), StartError>,
) -> std::process::ExitCode {
    process_main(common.log_format, async {
        let metrics = Metrics::new()?;
        let mut common = common.clone();
        common.start_authentication().await?;
        let mut service = Service::new(common, metrics, shared_process);
        build(&mut service)?;
        service.run().await.map_err(StartError::from)
    })
}

/// The body of every Vigil process (the stages, the gateway, the benches): logging, a
/// multi-threaded runtime running `main`, its error logged, an exit code.
pub fn process_main<E: std::fmt::Display>(
    log_format: LogFormat,
    main: impl Future<Output = Result<(), E>>,
) -> std::process::ExitCode {
    args::init_logging(log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "exiting");
            std::process::ExitCode::FAILURE
        }
    }
}
