//! Response headers, body limits and JSON depth.

use crate::helpers::{error_code, spawn_app, spawn_app_with};
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/healthz", "/api/v1/me", "/no/such/route"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            h["referrer-policy"], "strict-origin-when-cross-origin",
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        // Served over plain http here: no HSTS.
        assert!(h.get("strict-transport-security").is_none(), "{path}");
    }
    let tls = spawn_app_with(&[("BIZ__GATEWAY__PUBLIC_URL", "https://insights.example.com")]).await;
    let res = tls.client.get(tls.url("/healthz")).send().await.unwrap();
    assert_eq!(
        res.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ten_megabyte_webhook_is_refused_before_its_signature_is_checked() {
    let app = spawn_app().await;
    let huge = "x".repeat(10 * 1024 * 1024);
    for path in [
        "/webhooks/stripe".to_owned(),
        format!("/webhooks/stripe/{}", uuid::Uuid::new_v4()),
    ] {
        // No signature at all: were it computed first, this would be a 400 (or a 404 for the
        // unknown integration) instead.
        let res = app
            .client
            .post(app.url(&path))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(res, StatusCode::PAYLOAD_TOO_LARGE).await,
            "payload_too_large",
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_json_is_a_400_not_a_crash() {
    let app = spawn_app().await;
    let owner = app.signup("deep@example.com", "Deep Co").await;
    // `mrr_convention` is read as free-form JSON first: the parser's depth limit (128) is what
    // stops 5,000 levels.
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let res = app
        .client
        .patch(app.url(&format!("/api/v1/orgs/{}", owner.org_id)))
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body(format!("{{\"mrr_convention\":{deep}}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "malformed_json"
    );
    // And the server is still there.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_is_served_at_the_root_within_its_policy() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    // Same-origin files only: nothing inline for the policy to refuse.
    assert!(html.contains(r#"<script src="/assets/app.js" defer></script>"#));
    assert!(!html.contains("<script>") && !html.contains("style="));
    assert!(csp.contains("script-src 'self'"));
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::OK, "{path}");
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
    }
}
