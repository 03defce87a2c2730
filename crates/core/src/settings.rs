//! One typed settings struct for every binary.
//!
//! Layers, later wins: `config/default.toml`, `config/$BIZ_ENV.toml`, the plain variables operators
//! already know (`DATABASE_URL`, `ENCRYPTION_KEY`, ...), then `BIZ__SECTION__KEY` variables. The
//! namespaced form wins over the plain one because it is the more deliberate of the two.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A key-derivation secret shorter than this is refused.
pub const MIN_SECRET_LEN: usize = 32;

/// Stable, public, development-only secrets. Never accepted in production: a process started with
/// `environment = "production"` and no real secret stops at start-up.
const DEV_ENCRYPTION_KEY: &str = "development-only-encryption-key-do-not-use-in-production";
const DEV_SESSION_SECRET: &str = "development-only-session-secret-do-not-use-in-production";

/// The plain variables and the settings key each one sets.
const PLAIN_VARIABLES: &[(&str, &str)] = &[
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("ENCRYPTION_KEY", "security.encryption_key"),
    ("SESSION_SECRET", "security.session_secret"),
    ("SHOPIFY_CLIENT_ID", "providers.shopify_client_id"),
    ("SHOPIFY_CLIENT_SECRET", "providers.shopify_client_secret"),
    ("STRIPE_SECRET_KEY", "providers.stripe_secret_key"),
    ("STRIPE_CLIENT_ID", "providers.stripe_client_id"),
    ("STRIPE_WEBHOOK_SECRET", "providers.stripe_webhook_secret"),
    ("RESEND_API_KEY", "providers.resend_api_key"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint"),
    ("RUST_LOG", "telemetry.log_filter"),
];

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("settings could not be read: {0}")]
    Load(#[from] config::ConfigError),
    #[error("{variable} is required in production and is not set")]
    MissingSecret { variable: &'static str },
    #[error("{variable} must be at least {MIN_SECRET_LEN} characters long")]
    WeakSecret { variable: &'static str },
    #[error("setting `{key}` is invalid: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    Test,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub environment: Environment,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub gateway: GatewaySettings,
    pub worker: WorkerSettings,
    pub security: SecuritySettings,
    pub telemetry: TelemetrySettings,
    pub providers: ProviderSettings,
    pub jobs: JobSettings,
    pub rate_limit: RateLimitSettings,
}

/// Request budgets per tier (contract section 7). AUTH is per client address; WRITE and READ
/// per user or API key.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    /// `memory` (this instance only) or `redis` (one budget shared by every gateway).
    pub backend: RateLimitBackend,
    pub auth_per_minute: u32,
    pub write_per_minute: u32,
    pub read_per_minute: u32,
    /// Peers whose `X-Forwarded-For` is believed (IP addresses). A request from anyone else is
    /// keyed by its own address, whatever the header says.
    pub trusted_proxies: Vec<String>,
    /// When the Redis backend cannot answer: refuse AUTH requests (true) or let them through.
    /// READ and WRITE always fail open.
    pub auth_fail_closed: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    Memory,
    Redis,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub pool_size: usize,
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    pub addr: String,
    pub public_url: String,
    pub json_limit_bytes: usize,
    /// Largest webhook body accepted, in bytes; a larger one is refused before its signature is
    /// computed.
    pub webhook_limit_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSettings {
    pub addr: String,
}

/// The job pipeline: queue behaviour, retries, crash recovery and schedules. Durations are in
/// seconds unless the name says otherwise. See docs/JOBS.md.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSettings {
    /// Jobs one sync-worker process runs at once.
    pub sync_concurrency: usize,
    pub webhook_concurrency: usize,
    pub report_concurrency: usize,
    pub alert_concurrency: usize,
    pub email_concurrency: usize,
    /// A job still running after this is cancelled (its run is retried from its checkpoint).
    pub job_timeout_seconds: u64,
    /// Attempts per sync run before it ends `failed`.
    pub max_attempts: i32,
    /// Exponential backoff: base × 2^(attempt−1), capped, with full jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Longest provider `Retry-After` waited inside a job; longer ones reschedule the run.
    pub max_inline_retry_after_seconds: u64,
    /// A running run's lease; its worker renews it every third of this. A lapsed lease means the
    /// worker died, and the sweeper hands the run to another worker.
    pub lease_seconds: u64,
    /// How often each worker's sweeper looks for stalled runs.
    pub sweep_interval_seconds: u64,
    /// A queued run not taken within this is pushed to the queue again (it was lost in Redis).
    pub requeue_after_seconds: u64,
    /// apalis worker heartbeat, and how many may be missed before a worker's in-flight jobs
    /// are re-queued by another worker.
    pub heartbeat_seconds: u64,
    pub missed_heartbeats: usize,
    /// On SIGTERM, how long in-flight jobs get to finish or hand back their run.
    pub shutdown_grace_seconds: u64,
    /// How often the scheduler looks for due integrations and alert ticks.
    pub scheduler_tick_seconds: u64,
    /// Default interval between scheduled incremental syncs of one integration.
    pub default_sync_interval_seconds: i32,
    /// Alert rules are evaluated once per this period, by one replica.
    pub alert_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecuritySettings {
    pub encryption_key: SecretString,
    pub encryption_key_id: String,
    /// Keys that still decrypt during a rotation, each `key_id=passphrase` (comma-separated in
    /// `BIZ__SECURITY__PREVIOUS_ENCRYPTION_KEYS`). Drop them once `gateway
    /// rotate-encryption-key` reports nothing left under them.
    #[serde(default)]
    pub previous_encryption_keys: Vec<SecretString>,
    pub pbkdf2_iterations: u32,
    pub session_secret: SecretString,
    pub session_idle_timeout_minutes: i64,
    pub session_absolute_timeout_hours: i64,
    pub invitation_ttl_hours: i64,
    /// A password reset link works this long, once.
    pub password_reset_ttl_minutes: i64,
    pub cookie_secure: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub log_filter: String,
    pub log_format: String,
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProviderSettings {
    pub stripe_api_base: String,
    pub stripe_connect_base: String,
    pub shopify_api_base: String,
    pub ga4_api_base: String,
    pub google_token_url: String,
    pub facebook_graph_base: String,
    pub resend_api_base: String,
    /// Requests per second one Stripe account is paced to: Stripe allows 25 in test mode and
    /// 100 in live mode.
    pub stripe_test_requests_per_second: f64,
    pub stripe_live_requests_per_second: f64,
    pub stripe_secret_key: SecretString,
    pub stripe_client_id: String,
    pub stripe_webhook_secret: SecretString,
    pub shopify_client_id: String,
    pub shopify_client_secret: SecretString,
    /// Access scopes asked for at install, comma-separated.
    pub shopify_scopes: String,
    /// The Admin API version every call is pinned to (Shopify's `YYYY-MM`).
    pub shopify_api_version: String,
    /// The REST leaky bucket: calls it holds, and calls it leaks per second.
    pub shopify_bucket_size: u32,
    pub shopify_leak_per_second: f64,
    /// How far before the last sync's start an incremental sync re-reads (`updated_at_min`).
    pub shopify_overlap_seconds: u64,
    pub resend_api_key: SecretString,
    /// The sender of account e-mails (password resets).
    pub email_from: String,
}

/// What loading had to say that belongs in the log once telemetry is up.
#[derive(Debug, Default)]
pub struct LoadNotes {
    pub generated_secrets: Vec<&'static str>,
}

impl Settings {
    /// Loads from `./config` (or `BIZ_CONFIG_DIR`) and the process environment.
    pub fn load() -> Result<(Self, LoadNotes), SettingsError> {
        let vars: HashMap<String, String> = std::env::vars().collect();
        let dir = vars
            .get("BIZ_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(default_config_dir);
        Self::load_from(&dir, &vars)
    }

    /// Loads from an explicit directory and variable map, so tests need not touch the process
    /// environment.
    pub fn load_from(
        dir: &Path,
        vars: &HashMap<String, String>,
    ) -> Result<(Self, LoadNotes), SettingsError> {
        let env_name = vars
            .get("BIZ_ENV")
            .map(String::as_str)
            .unwrap_or("development");
        let mut builder = config::Config::builder()
            .add_source(config::File::from(dir.join("default.toml")))
            .add_source(config::File::from(dir.join(format!("{env_name}.toml"))).required(false));
        // Plain variables are translated to their namespaced form first, so a BIZ__ variable
        // for the same key replaces them.
        let mut env_layer: HashMap<String, String> = HashMap::new();
        for (variable, key) in PLAIN_VARIABLES {
            if let Some(value) = vars.get(*variable).filter(|v| !v.is_empty()) {
                let namespaced = format!("BIZ__{}", key.replace('.', "__").to_uppercase());
                env_layer.insert(namespaced, value.clone());
            }
        }
        env_layer.extend(
            vars.iter()
                .filter(|(k, _)| k.starts_with("BIZ__"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        builder = builder.add_source(
            config::Environment::with_prefix("BIZ")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("rate_limit.trusted_proxies")
                .with_list_parse_key("security.previous_encryption_keys")
                .source(Some(env_layer)),
        );
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        if settings.environment == Environment::Development && env_name == "test" {
            settings.environment = Environment::Test;
        }
        let notes = settings.validate()?;
        Ok((settings, notes))
    }

    fn validate(&mut self) -> Result<LoadNotes, SettingsError> {
        let mut notes = LoadNotes::default();
        let production = self.environment == Environment::Production;
        for (variable, secret, dev_default) in [
            (
                "ENCRYPTION_KEY",
                &mut self.security.encryption_key,
                DEV_ENCRYPTION_KEY,
            ),
            (
                "SESSION_SECRET",
                &mut self.security.session_secret,
                DEV_SESSION_SECRET,
            ),
        ] {
            let len = secret.expose_secret().chars().count();
            if len == 0 {
                if production {
                    return Err(SettingsError::MissingSecret { variable });
                }
                *secret = SecretString::from(dev_default);
                notes.generated_secrets.push(variable);
            } else if len < MIN_SECRET_LEN {
                return Err(SettingsError::WeakSecret { variable });
            }
        }
        if self.database.pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "database.pool_size",
                reason: "must be at least 1".into(),
            });
        }
        for (key, rate) in [
            (
                "providers.stripe_test_requests_per_second",
                self.providers.stripe_test_requests_per_second,
            ),
            (
                "providers.stripe_live_requests_per_second",
                self.providers.stripe_live_requests_per_second,
            ),
            (
                "providers.shopify_leak_per_second",
                self.providers.shopify_leak_per_second,
            ),
            (
                "providers.shopify_bucket_size",
                f64::from(self.providers.shopify_bucket_size),
            ),
        ] {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(SettingsError::Invalid {
                    key,
                    reason: "must be a positive number".into(),
                });
            }
        }
        let j = &self.jobs;
        for (key, value) in [
            ("jobs.sync_concurrency", j.sync_concurrency as u64),
            ("jobs.webhook_concurrency", j.webhook_concurrency as u64),
            ("jobs.report_concurrency", j.report_concurrency as u64),
            ("jobs.alert_concurrency", j.alert_concurrency as u64),
            ("jobs.email_concurrency", j.email_concurrency as u64),
            ("jobs.max_attempts", j.max_attempts.max(0) as u64),
            ("jobs.lease_seconds", j.lease_seconds),
            ("jobs.heartbeat_seconds", j.heartbeat_seconds),
            ("jobs.missed_heartbeats", j.missed_heartbeats as u64),
            ("jobs.sweep_interval_seconds", j.sweep_interval_seconds),
            ("jobs.scheduler_tick_seconds", j.scheduler_tick_seconds),
            ("jobs.alert_interval_seconds", j.alert_interval_seconds),
            ("jobs.job_timeout_seconds", j.job_timeout_seconds),
            (
                "jobs.default_sync_interval_seconds",
                j.default_sync_interval_seconds.max(0) as u64,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        let r = &self.rate_limit;
        for (key, value) in [
            ("rate_limit.auth_per_minute", r.auth_per_minute),
            ("rate_limit.write_per_minute", r.write_per_minute),
            ("rate_limit.read_per_minute", r.read_per_minute),
        ] {
            if value == 0 {
                return Err(SettingsError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if let Some(bad) = r
            .trusted_proxies
            .iter()
            .find(|p| p.parse::<std::net::IpAddr>().is_err())
        {
            return Err(SettingsError::Invalid {
                key: "rate_limit.trusted_proxies",
                reason: format!("`{bad}` is not an IP address"),
            });
        }
        if self.security.pbkdf2_iterations < 1000 {
            return Err(SettingsError::Invalid {
                key: "security.pbkdf2_iterations",
                reason: "must be at least 1000".into(),
            });
        }
        for previous in &self.security.previous_encryption_keys {
            let ok = previous
                .expose_secret()
                .split_once('=')
                .is_some_and(|(id, pass)| !id.is_empty() && !id.contains(':') && !pass.is_empty());
            if !ok {
                // The value itself is a secret: never echoed.
                return Err(SettingsError::Invalid {
                    key: "security.previous_encryption_keys",
                    reason: "each entry is key_id=passphrase".into(),
                });
            }
        }
        if self.security.encryption_key_id.is_empty()
            || self.security.encryption_key_id.contains(':')
        {
            return Err(SettingsError::Invalid {
                key: "security.encryption_key_id",
                reason: "must be non-empty and contain no ':'".into(),
            });
        }
        for (key, value) in [
            ("gateway.public_url", &self.gateway.public_url),
            ("providers.stripe_api_base", &self.providers.stripe_api_base),
            (
                "providers.stripe_connect_base",
                &self.providers.stripe_connect_base,
            ),
            (
                "providers.shopify_api_base",
                &self.providers.shopify_api_base,
            ),
            ("providers.ga4_api_base", &self.providers.ga4_api_base),
            (
                "providers.google_token_url",
                &self.providers.google_token_url,
            ),
            (
                "providers.facebook_graph_base",
                &self.providers.facebook_graph_base,
            ),
            ("providers.resend_api_base", &self.providers.resend_api_base),
        ] {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                return Err(SettingsError::Invalid {
                    key,
                    reason: format!("`{value}` is not an http(s) URL"),
                });
            }
        }
        Ok(notes)
    }

    /// Pretty logs unless configured otherwise or running in production.
    pub fn json_logs(&self) -> bool {
        match self.telemetry.log_format.as_str() {
            "json" => true,
            "pretty" => false,
            _ => self.environment == Environment::Production,
        }
    }
}

/// `config/` beside the workspace root when run from the source tree, else `./config`.
fn default_config_dir() -> PathBuf {
    let here = PathBuf::from("config");
    if here.join("default.toml").exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
    }

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_in_development_with_generated_secrets() {
        let (s, notes) = Settings::load_from(&dir(), &vars(&[])).unwrap();
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.gateway.addr, "127.0.0.1:8080");
        assert_eq!(
            notes.generated_secrets,
            vec!["ENCRYPTION_KEY", "SESSION_SECRET"]
        );
        assert!(!s.json_logs());
    }

    #[test]
    fn plain_variables_are_honoured_and_namespaced_ones_win() {
        let (s, _) = Settings::load_from(
            &dir(),
            &vars(&[
                ("DATABASE_URL", "postgres://a@h/db1"),
                ("REDIS_URL", "redis://plain"),
                ("BIZ__REDIS__URL", "redis://namespaced"),
                ("BIZ__GATEWAY__ADDR", "0.0.0.0:9000"),
                ("BIZ__PROVIDERS__STRIPE_API_BASE", "http://127.0.0.1:4010"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database.url.expose_secret(), "postgres://a@h/db1");
        assert_eq!(s.redis.url.expose_secret(), "redis://namespaced");
        assert_eq!(s.gateway.addr, "0.0.0.0:9000");
        assert_eq!(s.providers.stripe_api_base, "http://127.0.0.1:4010");
    }

    #[test]
    fn production_refuses_missing_and_weak_secrets_naming_the_variable() {
        let err = Settings::load_from(&dir(), &vars(&[("BIZ_ENV", "production")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ENCRYPTION_KEY is required in production and is not set"
        );
        let err = Settings::load_from(
            &dir(),
            &vars(&[("BIZ_ENV", "production"), ("ENCRYPTION_KEY", "short")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("ENCRYPTION_KEY must be"),
            "{err}"
        );
        let long = "x".repeat(40);
        let (s, notes) = Settings::load_from(
            &dir(),
            &vars(&[
                ("BIZ_ENV", "production"),
                ("ENCRYPTION_KEY", &long),
                ("SESSION_SECRET", &long),
            ]),
        )
        .unwrap();
        assert!(notes.generated_secrets.is_empty());
        assert!(s.json_logs());
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err = Settings::load_from(&dir(), &vars(&[("BIZ__DATABASE__POOL_SIZE", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("pool_size"), "{err}");
        let err = Settings::load_from(
            &dir(),
            &vars(&[("BIZ__PROVIDERS__STRIPE_API_BASE", "ftp://x")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("providers.stripe_api_base"),
            "{err}"
        );
    }

    #[test]
    fn secrets_never_print() {
        let long = "super-secret-value-that-must-not-print-0123";
        let (s, _) = Settings::load_from(
            &dir(),
            &vars(&[
                ("ENCRYPTION_KEY", long),
                ("STRIPE_SECRET_KEY", "sk_test_hidden"),
            ]),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains(long));
        assert!(!debug.contains("sk_test_hidden"));
    }
}
