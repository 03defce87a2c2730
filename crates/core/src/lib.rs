//! BizInsights core: what the gateway and the three workers share.
//!
//! - [`settings`]: the one typed settings struct.
//! - [`telemetry`]: logging and tracing set-up.
//! - [`db`]: PostgreSQL pool, migrations, schema and queries.
//! - [`jobs`]: job types and the queue producer.
//! - [`cache`]: Redis connections.
//! - [`crypto`]: the credential envelope, webhook/OAuth verifiers, tokens, passwords.
//! - [`readiness`]: the dependency check behind `/readyz`.

pub mod cache;
pub mod crypto;
pub mod db;
pub mod jobs;
pub mod metrics;
pub mod readiness;
pub mod redact;
pub mod settings;
pub mod telemetry;

/// Installs ring as rustls' crypto provider. Every binary calls this first: reqwest is built
/// without a default provider (its default pulls a slow C build), and the first TLS client
/// would panic without one.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
