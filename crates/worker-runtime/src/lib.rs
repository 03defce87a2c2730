//! What the three worker binaries share: start-up (settings, telemetry, pools, the queue
//! connection), a unique worker id per process start, the ops HTTP port (`/healthz`, `/readyz`,
//! `/metrics`), and the stop signal that every loop and job watches.

mod consumer;
mod ops;
mod wakeups;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use biz_core::crypto::KeyRing;
use biz_core::jobs::{self, JobMetrics, Producer};
use biz_core::settings::Settings;
use biz_core::{cache, db, telemetry};
use tokio_util::sync::CancellationToken;

pub use consumer::Consumer;
pub use ops::OpsState;

/// A started worker's shared handles.
pub struct Runtime {
    pub service: &'static str,
    pub settings: Arc<Settings>,
    pub pool: db::Pool,
    pub redis: redis::Client,
    pub queue: jobs::RedisConn,
    pub producer: Producer,
    pub metrics: JobMetrics,
    pub keys: Arc<KeyRing>,
    /// Unique per process start: names the apalis workers and the leases this process holds.
    /// apalis refuses a worker name that is still registered, and a dead worker's jobs are
    /// found by its name (apalis #504), so a restarted pod must never reuse one.
    pub worker_id: String,
    /// Cancelled on SIGTERM/Ctrl-C: loops stop, jobs hand back their work.
    pub shutdown: CancellationToken,
    pub ops_port: u16,
    _telemetry: telemetry::TelemetryGuard,
}

impl Runtime {
    /// Loads settings, starts telemetry, builds the pools and serves the ops port.
    pub async fn start(service: &'static str) -> anyhow::Result<Self> {
        biz_core::install_crypto_provider();
        let (settings, notes) = Settings::load()?;
        let guard = telemetry::init(service, &settings, &notes)?;
        let pool = db::pool(&settings.database)?;
        let redis = cache::client(&settings.redis)?;
        let queue = jobs::redis_connection(&settings.redis)?;
        let producer = Producer::new(queue.clone(), &settings.redis, &settings.jobs);
        let metrics = JobMetrics::default();
        let keys = KeyRing::from_settings(&settings.security);
        let worker_id = worker_id(service);
        let listener = TcpListener::bind(&settings.worker.addr)?;
        let ops_port = listener.local_addr()?.port();
        let server = ops::serve(
            listener,
            OpsState {
                service,
                pool: pool.clone(),
                redis: redis.clone(),
                producer: producer.clone(),
                metrics: metrics.clone(),
            },
        )?;
        tokio::spawn(server);
        tracing::info!(
            service,
            worker.id = %worker_id,
            ops.port = ops_port,
            "worker started; ops endpoints on /healthz, /readyz, /metrics"
        );
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            token.cancel();
        });
        Ok(Runtime {
            service,
            settings: Arc::new(settings),
            pool,
            redis,
            queue,
            producer,
            metrics,
            keys: Arc::new(keys),
            worker_id,
            shutdown,
            ops_port,
            _telemetry: guard,
        })
    }

    /// The grace period jobs get after the stop signal.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.settings.jobs.shutdown_grace_seconds)
    }

    /// A future for apalis' `run_with_signal`: resolves when the stop signal arrives.
    pub fn stop_signal(
        &self,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        let token = self.shutdown.clone();
        async move {
            token.cancelled().await;
            Ok(())
        }
    }
}

/// `{service}-{host}-{pid}-{random}`: unique per process start, readable in Redis and in logs.
fn worker_id(service: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into());
    format!(
        "{service}-{host}-{}-{:06x}",
        std::process::id(),
        fastrand::u32(..0xff_ffff)
    )
}

/// Resolves on SIGTERM (Kubernetes) or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("stop signal received: taking no new jobs");
}

/// Runs `tick` every `every` until `shutdown`, logging (not propagating) its errors: a loop that
/// died on one database hiccup would silently stop scheduling.
pub async fn every<F, Fut>(
    name: &'static str,
    every: Duration,
    shutdown: CancellationToken,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {
                if let Err(e) = tick().await {
                    tracing::warn!(loop_name = name, error = %e, "periodic task failed; trying again next tick");
                }
            }
        }
    }
}
