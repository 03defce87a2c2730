//! What the end-to-end benchmarks share: a fresh database, the release gateway (and, when asked,
//! a sync-worker) over it, an in-process provider simulator, and an organisation with Stripe
//! connected through the API. Dropping the stack stops the processes and drops the database.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Resident memory of a process, in MiB, from /proc.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// The `p` quantile of microsecond samples, in milliseconds.
pub fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

pub struct Stack {
    pub url: String,
    pub sim: String,
    pub http: reqwest::Client,
    pub token: String,
    pub org: String,
    /// The `POST …/integrations` answer (`id`, `sync_run_id`, …).
    pub connected: Value,
    pub db_url: String,
    server: String,
    db_name: String,
    gateway: Child,
    worker: Option<Child>,
}

impl Stack {
    /// Configures the simulator with `sim_config`, starts the gateway (and a sync-worker if
    /// `with_worker`) with `extra_env`, signs up and connects Stripe with `api_key`.
    pub async fn start(
        sim_config: Value,
        extra_env: &[(&str, &str)],
        with_worker: bool,
        api_key: &str,
    ) -> anyhow::Result<Self> {
        biz_core::install_crypto_provider();
        let server = std::env::var("BENCH_PG_SERVER")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let db_name = format!("bi_bench_{}", crate::now_us());
        let db_url = format!("{server}/{db_name}");
        let sim = provider_sim::spawn(42)?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        http.post(format!("{sim}/_sim/config"))
            .json(&sim_config)
            .send()
            .await?;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let addr = format!("127.0.0.1:{port}");
        let prefix = format!("bench{}", crate::now_us());
        let shopify_base = format!("{sim}/shopify/{{shop}}");
        let mut env: Vec<(&str, &str)> = vec![
            ("BIZ__PROVIDERS__SHOPIFY_API_BASE", &shopify_base),
            ("SHOPIFY_CLIENT_ID", "sim-shopify-client-id"),
            ("SHOPIFY_CLIENT_SECRET", "sim-shopify-client-secret"),
            ("DATABASE_URL", &db_url),
            ("BIZ__GATEWAY__ADDR", &addr),
            ("BIZ__GATEWAY__PUBLIC_URL", &url),
            ("BIZ__PROVIDERS__STRIPE_API_BASE", &sim),
            ("BIZ__REDIS__KEY_PREFIX", &prefix),
            ("RUST_LOG", "error"),
            // The harness polls its runs; a person's read budget would throttle the polling.
            ("BIZ__RATE_LIMIT__READ_PER_MINUTE", "100000"),
        ];
        env.extend_from_slice(extra_env);
        let exe = std::env::current_exe()?;
        let spawn = |name: &str| {
            Command::new(exe.with_file_name(name))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let migrated = Command::new(exe.with_file_name("gateway"))
            .arg("migrate")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(migrated.success(), "gateway migrate failed");
        let gateway = spawn("gateway")?;
        let worker = if with_worker {
            Some(spawn("sync-worker")?)
        } else {
            None
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
        {
            anyhow::ensure!(Instant::now() < deadline, "gateway did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let signup: Value = http
            .post(format!("{url}/api/v1/auth/signup"))
            .json(&json!({ "email": "bench@example.com", "password": "correct horse battery staple", "name": "Bench", "organization_name": "Bench" }))
            .send()
            .await?
            .json()
            .await?;
        let token = signup["token"].as_str().unwrap_or_default().to_owned();
        let org = signup["organization"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let connected: Value = http
            .post(format!("{url}/api/v1/orgs/{org}/integrations"))
            .bearer_auth(&token)
            .json(&json!({ "provider": "stripe", "credentials": { "api_key": api_key } }))
            .send()
            .await?
            .json()
            .await?;
        Ok(Stack {
            url,
            sim,
            http,
            token,
            org,
            connected,
            db_url,
            server,
            db_name,
            gateway,
            worker,
        })
    }

    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(Child::id)
    }

    /// Polls the connect's backfill until it ends; `each` runs on every poll (sampling).
    pub async fn wait_backfill(
        &self,
        timeout: Duration,
        mut each: impl FnMut(),
    ) -> anyhow::Result<Value> {
        let run_url = format!(
            "{}/api/v1/orgs/{}/sync-runs/{}",
            self.url,
            self.org,
            self.connected["sync_run_id"].as_str().unwrap_or_default()
        );
        let deadline = Instant::now() + timeout;
        loop {
            each();
            let run: Value = self
                .http
                .get(&run_url)
                .bearer_auth(&self.token)
                .send()
                .await?
                .json()
                .await?;
            if run["status"] == "succeeded" || run["status"] == "failed" {
                return Ok(run);
            }
            anyhow::ensure!(Instant::now() < deadline, "the sync did not finish");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// One value from the database, through psql.
    pub fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("psql")
            .args([self.db_url.as_str(), "-Atqc", sql])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.gateway).chain(self.worker.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("psql")
            .args([
                &format!("{}/postgres", self.server),
                "-qc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name),
            ])
            .status();
    }
}
