//! `queue-bench backfill`: a Stripe backfill of an unthrottled simulated account holding over
//! 200,000 objects, through the release gateway and sync-worker: objects stored per second and
//! the worker's peak RSS; then the ceiling — the same rows bulk-loaded with `COPY` into a table
//! like `stripe_objects` (same keys and indexes) — and the backfill's share of it.

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

fn rss_mib(pid: u32) -> f64 {
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

fn psql(db_url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").args([db_url, "-Atqc", sql]).output()?;
    anyhow::ensure!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

pub async fn run() -> anyhow::Result<Value> {
    biz_core::install_crypto_provider();
    let server = std::env::var("BENCH_PG_SERVER")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    let db_name = format!("bi_bench_{}", crate::now_us());
    let db_url = format!("{server}/{db_name}");
    let customers: usize = std::env::var("BENCH_CUSTOMERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000);
    let sim = provider_sim::spawn(42)?;
    let http = reqwest::Client::new();
    http.post(format!("{sim}/_sim/config"))
        .json(&json!({ "stripe": { "customers": customers } }))
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
        // Unthrottled: the simulator enforces no limit and the client paces at no limit.
        ("BIZ__PROVIDERS__STRIPE_TEST_REQUESTS_PER_SECOND", "1000000"),
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
    let worker = Proc(
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
        .json(&json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51BenchBackfill0000001" } }))
        .send()
        .await?
        .json()
        .await?;
    let run_url = format!(
        "{url}/api/v1/orgs/{org}/sync-runs/{}",
        connected["sync_run_id"].as_str().unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak_rss: f64 = 0.0;
    let run = loop {
        peak_rss = peak_rss.max(rss_mib(worker.0.id()));
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
        anyhow::ensure!(Instant::now() < deadline, "the backfill did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    anyhow::ensure!(run["status"] == "succeeded", "backfill failed: {run}");
    let started =
        chrono::DateTime::parse_from_rfc3339(run["started_at"].as_str().unwrap_or_default())?;
    let finished =
        chrono::DateTime::parse_from_rfc3339(run["finished_at"].as_str().unwrap_or_default())?;
    let seconds = (finished - started).num_milliseconds() as f64 / 1000.0;
    let objects: u64 = run["progress"]
        .as_object()
        .map(|m| m.values().filter_map(|c| c["stored"].as_u64()).sum())
        .unwrap_or(0);

    // The ceiling: the same rows, bulk-loaded.
    let file = std::env::temp_dir().join(format!("{db_name}.copy"));
    psql(
        &db_url,
        &format!("\\copy stripe_objects TO '{}'", file.display()),
    )?;
    psql(
        &db_url,
        "CREATE TABLE copy_ceiling (LIKE stripe_objects INCLUDING ALL)",
    )?;
    let copy_start = Instant::now();
    psql(
        &db_url,
        &format!("\\copy copy_ceiling FROM '{}'", file.display()),
    )?;
    let copy_seconds = copy_start.elapsed().as_secs_f64();
    let copied: f64 = psql(&db_url, "SELECT count(*) FROM copy_ceiling")?.parse()?;
    let _ = std::fs::remove_file(&file);
    drop(worker);
    let _ = Command::new("psql")
        .args([
            &format!("{server}/postgres"),
            "-qc",
            &format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"),
        ])
        .status();
    let backfill_rate = objects as f64 / seconds;
    let copy_rate = copied / copy_seconds;
    Ok(json!({
        "customers": customers,
        "objects": objects,
        "backfill_seconds": seconds,
        "backfill_objects_per_s": backfill_rate.round(),
        "worker_peak_rss_mib": (peak_rss * 10.0).round() / 10.0,
        "copy_rows": copied,
        "copy_seconds": (copy_seconds * 1000.0).round() / 1000.0,
        "copy_rows_per_s": copy_rate.round(),
        "share_of_copy_pct": (backfill_rate / copy_rate * 1000.0).round() / 10.0,
        "targets": { "share_of_copy_pct": 50 },
    }))
}
