//! `queue-bench throttled`: a Stripe backfill against a simulator that enforces Stripe's
//! test-mode limit (25 requests/s per account, 429 above it), through the release gateway and
//! sync-worker. Reports the achieved request rate as a share of the limit and the 429s seen.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

pub async fn run() -> anyhow::Result<Value> {
    biz_core::install_crypto_provider();
    let server = std::env::var("BENCH_PG_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db_name = format!("bi_bench_{}", crate::now_us());
    let db_url = format!("{server}/{db_name}");
    let sim = provider_sim::spawn(42)?;
    let http = reqwest::Client::new();
    let limit = 25.0;
    http.post(format!("{sim}/_sim/config"))
        .json(&json!({ "stripe": { "customers": 2000 }, "rate_limits": { "stripe": { "per_second": limit, "burst": limit } } }))
        .send()
        .await?;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let prefix = format!("bench{}", crate::now_us());
    let env = [
        ("DATABASE_URL", db_url.as_str()),
        ("BIZ__GATEWAY__ADDR", &format!("127.0.0.1:{port}")),
        ("BIZ__GATEWAY__PUBLIC_URL", &url),
        ("BIZ__PROVIDERS__STRIPE_API_BASE", &sim),
        ("BIZ__REDIS__KEY_PREFIX", &prefix),
        ("RUST_LOG", "error"),
    ];
    let exe = std::env::current_exe()?;
    let gateway_exe = exe.with_file_name("gateway");
    anyhow::ensure!(Command::new(&gateway_exe)
        .arg("migrate")
        .envs(env)
        .stdout(Stdio::null())
        .status()?
        .success());
    let _gateway = Proc(
        Command::new(&gateway_exe)
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let _worker = Proc(
        Command::new(exe.with_file_name("sync-worker"))
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
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
    let (token, org) = (
        signup["token"].as_str().unwrap_or_default(),
        signup["organization"]["id"].as_str().unwrap_or_default(),
    );
    let connected: Value = http
        .post(format!("{url}/api/v1/orgs/{org}/integrations"))
        .bearer_auth(token)
        .json(&json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51BenchThrottled000001" } }))
        .send()
        .await?
        .json()
        .await?;
    let run_url = format!(
        "{url}/api/v1/orgs/{org}/sync-runs/{}",
        connected["sync_run_id"].as_str().unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    let run = loop {
        let run: Value = http
            .get(&run_url)
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        anyhow::ensure!(Instant::now() < deadline, "the sync did not finish");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log: Value = http
        .get(format!("{sim}/_sim/requests?path_prefix=/v1/"))
        .send()
        .await?
        .json()
        .await?;
    let requests: Vec<&Value> = log["data"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    // The backfill's requests: after the two the connect made (the key check and the webhook
    // endpoint), all of them list calls paced by the worker.
    let sync: Vec<&&Value> = requests
        .iter()
        .filter(|r| r["method"] == "GET" && r["query"] != "limit=1")
        .collect();
    let first = sync.first().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
    let last = sync.last().and_then(|r| r["at_ms"].as_u64()).unwrap_or(0);
    let seconds = (last.saturating_sub(first)) as f64 / 1000.0;
    let rate = if seconds > 0.0 {
        (sync.len() as f64 - 1.0) / seconds
    } else {
        0.0
    };
    let throttled = sync.iter().filter(|r| r["status"] == 429).count();
    let _ = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-qc",
            &format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"),
        ])
        .status();
    Ok(json!({
        "limit_per_s": limit,
        "requests": sync.len(),
        "seconds": seconds,
        "achieved_per_s": (rate * 100.0).round() / 100.0,
        "share_of_limit_pct": (rate / limit * 1000.0).round() / 10.0,
        "responses_429": throttled,
        "run_status": run["status"],
        "runs_failed_by_429": if run["status"] == "failed" && run["error_code"] == "provider_rate_limited" { 1 } else { 0 },
        "targets": { "share_of_limit_pct": 95, "runs_failed_by_429": 0 },
    }))
}
