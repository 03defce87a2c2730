//! One `init` for all four binaries: logs through `tracing-subscriber` (pretty in development,
//! JSON in production) and, when an OTLP endpoint is configured, traces exported over OTLP/HTTP.
//! Field names follow docs/LOGGING.md.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::{LoadNotes, Settings};

/// Flushes exported spans when dropped; keep it alive for the life of `main`.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("telemetry: span exporter shutdown failed: {e}");
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter `{0}`")]
    Filter(String),
    #[error("OTLP exporter could not be built: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// The OTLP/HTTP traces URL for a configured endpoint: the standard variable names the base,
/// and the signal path is appended the way the OpenTelemetry SDKs do.
pub fn otlp_traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// Installs the global subscriber for `service`, then logs what loading the settings noted.
pub fn init(
    service: &'static str,
    settings: &Settings,
    notes: &LoadNotes,
) -> Result<TelemetryGuard, TelemetryError> {
    init_with_writer(service, settings, notes, std::io::stdout)
}

/// [`init`], writing log lines to `writer` (tests capture them). Every line passes through
/// [`crate::redact`] first, whatever the writer.
pub fn init_with_writer<W>(
    service: &'static str,
    settings: &Settings,
    notes: &LoadNotes,
    writer: W,
) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let writer = crate::redact::Redacting(writer);
    let filter = EnvFilter::try_new(&settings.telemetry.log_filter)
        .map_err(|_| TelemetryError::Filter(settings.telemetry.log_filter.clone()))?;
    let fmt_layer = if settings.json_logs() {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(writer)
            .boxed()
    };

    let endpoint = settings.telemetry.otlp_endpoint.trim();
    let (otel_layer, provider) = if endpoint.is_empty() {
        (None, None)
    } else {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(otlp_traces_url(endpoint))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name(service).build())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(service));
        (Some(layer), Some(provider))
    };

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;

    tracing::info!(
        service,
        environment = ?settings.environment,
        otlp = !endpoint.is_empty(),
        "telemetry started"
    );
    for variable in &notes.generated_secrets {
        tracing::warn!(
            variable,
            "no secret configured; using the public development default (refused in production)"
        );
    }
    Ok(TelemetryGuard { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_url_gets_the_traces_path_once() {
        assert_eq!(otlp_traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(otlp_traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            otlp_traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }
}
