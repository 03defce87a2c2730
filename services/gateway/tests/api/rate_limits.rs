//! Rate limits: the seed's tiers on one shared Redis budget across gateway instances, the
//! headers that say where a caller stands, and what happens when Redis is away.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, PASSWORD};

const REAL_BUDGETS: [(&str, &str); 5] = [
    ("BIZ__RATE_LIMIT__BACKEND", "redis"),
    ("BIZ__RATE_LIMIT__AUTH_PER_MINUTE", "5"),
    ("BIZ__RATE_LIMIT__WRITE_PER_MINUTE", "30"),
    ("BIZ__RATE_LIMIT__READ_PER_MINUTE", "100"),
    // The test client is the "proxy": it says who the client is in X-Forwarded-For.
    ("BIZ__RATE_LIMIT__TRUSTED_PROXIES", "127.0.0.1"),
];

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_gateways_spend_one_budget_per_tier() {
    let app = spawn_app_with(&REAL_BUDGETS).await;
    let twin = app.twin();
    let gateways = [app.address.clone(), twin];
    let http = reqwest::Client::new();

    // Signed up from one address...
    let signup: Value = http
        .post(app.url("/api/v1/auth/signup"))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({ "email": "rl@example.com", "password": PASSWORD, "name": "R L", "organization_name": "Limits Ltd" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["token"].as_str().unwrap().to_owned();
    let org = signup["organization"]["id"].as_str().unwrap().to_owned();

    // ...six logins within the minute from another, alternating between the instances: five
    // pass with the budget counting down, the sixth is refused with Retry-After.
    let mut statuses = Vec::new();
    let mut remaining = Vec::new();
    for n in 0..6 {
        let res = http
            .post(format!("{}/api/v1/auth/login", gateways[n % 2]))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({ "email": "rl@example.com", "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("5"));
        remaining.push(header(&res, "x-ratelimit-remaining").unwrap());
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = header(&res, "retry-after").unwrap().parse().unwrap();
            assert!((1..=12).contains(&retry), "Retry-After {retry}");
            let reset: u64 = header(&res, "x-ratelimit-reset").unwrap().parse().unwrap();
            assert!(reset >= retry && reset <= 60, "X-RateLimit-Reset {reset}");
            assert_eq!(
                error_code(res, StatusCode::TOO_MANY_REQUESTS).await,
                "rate_limited"
            );
        }
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses[5], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(remaining, ["4", "3", "2", "1", "0", "0"]);
    // The signing-up address still has its own budget.
    let res = http
        .post(format!("{}/api/v1/auth/login", gateways[1]))
        .header("x-forwarded-for", "198.51.100.1")
        .json(&json!({ "email": "rl@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-ratelimit-remaining").as_deref(), Some("3"));

    // 31 writes by one user across both instances: exactly one 429, the last.
    let mut refused = 0;
    for n in 0..31 {
        let res = http
            .patch(format!("{}/api/v1/orgs/{org}", gateways[n % 2]))
            .bearer_auth(&token)
            .json(&json!({ "name": format!("Limits {n}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("30"));
        if n < 30 {
            assert_eq!(res.status(), StatusCode::OK, "write {n}");
            assert_eq!(
                header(&res, "x-ratelimit-remaining"),
                Some((29 - n).to_string()),
                "write {n}"
            );
        } else {
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(header(&res, "retry-after").is_some());
            refused += 1;
        }
    }
    assert_eq!(refused, 1);
    // Reads have their own budget, untouched by the writes.
    let res = http
        .get(format!("{}/api/v1/orgs/{org}", gateways[0]))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-ratelimit-limit").as_deref(), Some("100"));
    assert_eq!(header(&res, "x-ratelimit-remaining").as_deref(), Some("99"));

    // Webhooks and health checks are not limited.
    let res = http.get(app.url("/healthz")).send().await.unwrap();
    assert!(header(&res, "x-ratelimit-limit").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_redis_auth_fails_closed_and_reads_fail_open() {
    let mut overrides = REAL_BUDGETS.to_vec();
    // Nothing listens on port 1.
    overrides.push(("REDIS_URL", "redis://127.0.0.1:1"));
    let app = spawn_app_with(&overrides).await;
    let http = reqwest::Client::new();

    let res = http
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": "nobody@example.com", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(header(&res, "retry-after").is_some());
    // A read goes through to authentication, which refuses it for its own reason.
    let res = http.get(app.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let metrics = http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"biz_rate_limit_fallbacks_total{service="gateway",tier="auth",outcome="refused"} 1"#,
        r#"biz_rate_limit_fallbacks_total{service="gateway",tier="read",outcome="allowed"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
}
