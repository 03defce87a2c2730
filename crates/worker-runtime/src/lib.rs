//! What the three worker binaries share: start-up (settings, telemetry, pools), the ops HTTP port
//! (`/healthz`, `/readyz`, `/metrics`) and waiting for a stop signal.

mod ops;

use std::net::TcpListener;

use biz_core::settings::Settings;
use biz_core::{cache, db, telemetry};

pub use ops::OpsState;

/// A started worker's shared handles.
pub struct Runtime {
    pub settings: Settings,
    pub pool: db::Pool,
    pub redis: redis::Client,
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
        let listener = TcpListener::bind(&settings.worker.addr)?;
        let ops_port = listener.local_addr()?.port();
        let server = ops::serve(
            listener,
            OpsState {
                service,
                pool: pool.clone(),
                redis: redis.clone(),
            },
        )?;
        tokio::spawn(server);
        tracing::info!(
            service,
            ops.port = ops_port,
            "worker started; ops endpoints on /healthz, /readyz, /metrics"
        );
        Ok(Runtime {
            settings,
            pool,
            redis,
            ops_port,
            _telemetry: guard,
        })
    }
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
    tracing::info!("stop signal received");
}
