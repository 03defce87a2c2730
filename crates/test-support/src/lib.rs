//! What the services' integration tests share: a fresh, migrated database per test (dropped
//! after it), and service processes started from the built binaries with their own logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use biz_core::db;
use serde_json::Value;
use uuid::Uuid;

/// The encryption and session secrets test processes share with the test that seals data.
pub const ENCRYPTION_KEY: &str = "pipeline-test-encryption-key-0123456789";
pub const SESSION_SECRET: &str = "pipeline-test-session-secret-0123456789";

pub fn pg_server() -> String {
    std::env::var("TEST_PG_SERVER").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The workspace's `config/` directory.
pub fn config_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// A unique Redis key prefix, so each test has its own queues.
pub fn key_prefix(tag: &str) -> String {
    format!("{tag}{}", &Uuid::new_v4().simple().to_string()[..12])
}

/// A database created and migrated for one test, dropped with it.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        biz_core::install_crypto_provider();
        let name = format!("bi_test_{}", Uuid::new_v4().simple());
        let url = format!("{}/{name}", pg_server());
        db::create_database_if_missing(&url)
            .await
            .expect("create test database");
        let settings = biz_core::settings::DatabaseSettings {
            url: url.clone().into(),
            pool_size: 2,
            acquire_timeout_ms: 5000,
        };
        let pool = db::pool(&settings).expect("pool");
        db::run_migrations(&pool)
            .await
            .expect("migrate test database");
        TestDb { name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
                if let Ok(mut c) =
                    AsyncPgConnection::establish(&format!("{}/postgres", pg_server())).await
                {
                    let _ = diesel::sql_query(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    ))
                    .execute(&mut c)
                    .await;
                }
            })
        })
        .join();
    }
}

/// A service process; SIGKILLed when dropped if still running. Its stdout and stderr go to
/// `log`, which stays in `target/tmp` for reading after a failure.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

/// Starts `binary` with a clean environment plus `env`, logging JSON to `{log_dir}/{name}.log`.
pub fn spawn(binary: &str, name: &str, log_dir: &Path, env: &[(String, String)]) -> Process {
    std::fs::create_dir_all(log_dir).unwrap();
    let log = log_dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIZ_ENV", "test")
        .env("BIZ_CONFIG_DIR", config_dir())
        .env("ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("SESSION_SECRET", SESSION_SECRET)
        .env("BIZ__TELEMETRY__LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("HOSTNAME", name);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    Process { child, log }
}

impl Process {
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; panics with its log after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "process did not exit; log: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process's JSON log lines.
    pub fn log_lines(&self) -> Vec<Value> {
        self.log_text()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The log lines whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Value> {
        self.log_lines()
            .into_iter()
            .filter(|l| l["message"] == message)
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.is_running() {
            self.sigkill();
        }
    }
}
