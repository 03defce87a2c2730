//! Bad input gets a 4xx with the contract's error body, never a 500.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{error_code, spawn_app, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn bad_signup_input_is_4xx_with_a_clear_code() {
    let app = spawn_app().await;
    let signup = app.url("/api/v1/auth/signup");
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (app.client.post(&signup).header("content-type", "application/json").body("{\"email\": "), StatusCode::BAD_REQUEST, "malformed_json"),
        (app.client.post(&signup).header("content-type", "application/json").body("not json"), StatusCode::BAD_REQUEST, "malformed_json"),
        (app.client.post(&signup).header("content-type", "text/plain").body("{}"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com" })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com", "password": 12, "name": "A", "organization_name": "A" })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com", "password": PASSWORD, "name": "A", "organization_name": "A", "is_admin": true })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (app.client.post(&signup).json(&json!({ "email": "not-an-email", "password": PASSWORD, "name": "A", "organization_name": "A" })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_email"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com", "password": "elevenchars", "name": "A", "organization_name": "A" })), StatusCode::UNPROCESSABLE_ENTITY, "password_too_short"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com", "password": PASSWORD, "name": "  ", "organization_name": "A" })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        (app.client.post(&signup).json(&json!({ "email": "a@example.com", "password": PASSWORD, "name": "A", "organization_name": "x".repeat(201) })), StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
        (app.client.post(&signup).header("content-type", "application/json").body(format!("{{\"email\":\"{}\"}}", "a".repeat(300_000))), StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let res = req.send().await.unwrap();
        assert_eq!(error_code(res, status).await, code, "case {i}");
    }
    // Nothing was created by any of them.
    let res = app.login("a@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_routes_bad_ids_and_bad_queries_are_clean_4xx() {
    let app = spawn_app().await;
    let a = app.signup("a@example.com", "A").await;
    let res = app.get("/api/v1/nope", &a.token).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    let res = app.get("/api/v1/orgs/not-a-uuid", &a.token).await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/audit-log?limit=abc", a.org_id),
            &a.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_query"
    );
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/audit-log?limit=0", a.org_id),
            &a.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_limit"
    );
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/audit-log?cursor=zz", a.org_id),
            &a.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_cursor"
    );
    let res = app
        .patch(
            &format!("/api/v1/orgs/{}/members/{}", a.org_id, a.user_id),
            &a.token,
            json!({ "role": "root" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_body"
    );
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_well_formed_incoming_request_id_is_kept() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("x-request-id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc_123");
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    // A hostile one is replaced.
    let res = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "a b\"<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(res.headers()["x-request-id"], "a b\"<script>");
}
