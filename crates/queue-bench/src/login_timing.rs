//! `queue-bench login-timing`: whether a failed login takes as long for an unknown email as for
//! a known one with a wrong password (the gateway verifies a dummy argon2 hash for unknown
//! emails, so the answer's timing does not tell which accounts exist). Alternates the two kinds,
//! 60 of each, through the real gateway binary, and prints both medians and p90s.

use std::time::Instant;

use serde_json::{json, Value};

use crate::stack::{percentile_ms, Stack};

pub async fn run() -> anyhow::Result<Value> {
    let stack = Stack::start(
        json!({}),
        &[("BIZ__RATE_LIMIT__AUTH_PER_MINUTE", "100000")],
        false,
        "sk_test_51BenchLoginTiming0001",
    )
    .await?;
    let login = |email: &'static str| {
        let http = stack.http.clone();
        let url = format!("{}/api/v1/auth/login", stack.url);
        async move {
            let start = Instant::now();
            let res = http
                .post(url)
                .json(&json!({ "email": email, "password": "not the password at all" }))
                .send()
                .await?;
            anyhow::ensure!(res.status() == 401, "login answered {}", res.status());
            Ok::<u64, anyhow::Error>(start.elapsed().as_micros() as u64)
        }
    };
    // Warm up both paths.
    login("bench@example.com").await?;
    login("nobody@example.com").await?;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..60 {
        known.push(login("bench@example.com").await?);
        unknown.push(login("nobody@example.com").await?);
    }
    known.sort_unstable();
    unknown.sort_unstable();
    let (k50, u50) = (percentile_ms(&known, 0.5), percentile_ms(&unknown, 0.5));
    Ok(json!({
        "attempts_each": 60,
        "known_email_wrong_password": { "p50_ms": k50, "p90_ms": percentile_ms(&known, 0.9) },
        "unknown_email": { "p50_ms": u50, "p90_ms": percentile_ms(&unknown, 0.9) },
        "median_difference_pct": ((u50 - k50) / k50 * 1000.0).round() / 10.0,
    }))
}
