//! Stripe webhooks in: verified on the raw body before parsing, stored once per event id, and
//! refused with 400 and nothing stored when the signature is wrong in any way.

use biz_core::crypto::signatures::sign_stripe;
use biz_core::db;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp};

async fn stored_events(app: &TestApp) -> i64 {
    use biz_core::db::schema::webhook_events::dsl::*;
    let mut conn = db::conn(&app.pool).await.unwrap();
    webhook_events.count().get_result(&mut conn).await.unwrap()
}

/// Connects Stripe through the API; returns the integration id and the endpoint secret the
/// simulated account handed out when the gateway registered its webhook.
async fn connected(app: &TestApp) -> (String, String) {
    let alice = app.signup("alice@example.com", "A Corp").await;
    let body: Value = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
            json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51WebhookAccount000001" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    let endpoints: Value = reqwest::get(format!("{}/_sim/stripe/endpoints", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = &endpoints["data"][0];
    assert_eq!(
        endpoint["url"],
        format!("http://127.0.0.1:8080/webhooks/stripe/{id}"),
        "registered at the public URL"
    );
    assert_eq!(endpoint["enabled_events"], json!(["*"]));
    (id, endpoint["secret"].as_str().unwrap().to_owned())
}

fn event(id: &str) -> String {
    json!({
        "id": id, "object": "event", "api_version": "2024-06-20", "created": 1_767_300_000,
        "type": "customer.updated", "livemode": false, "pending_webhooks": 1,
        "data": { "object": { "id": "cus_TestCustomer0001", "object": "customer", "created": 1_700_000_000, "email": "x@example.com" } }
    })
    .to_string()
}

async fn post(
    app: &TestApp,
    path: &str,
    body: &str,
    signature: Option<String>,
) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(s) = signature {
        r = r.header("Stripe-Signature", s);
    }
    r.send().await.unwrap()
}

/// Events arriving together are written in shared batches: 150 distinct events, each sent
/// twice at once, give 150 rows, and every event is answered once as new and once as a
/// redelivery — including the copies that landed in the same batch as their twin.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_events_and_their_twins_are_stored_exactly_once() {
    let app = spawn_app().await;
    let (id, secret) = connected(&app).await;
    let path = format!("/webhooks/stripe/{id}");
    let now = chrono::Utc::now().timestamp();
    let sends = (0..300).map(|n| {
        let body = event(&format!("evt_Concurrent{:06}", n % 150));
        let signature = sign_stripe(body.as_bytes(), secret.as_bytes(), now);
        let (app, path) = (&app, &path);
        async move {
            let res = post(app, path, &body, Some(signature)).await;
            assert_eq!(res.status(), StatusCode::OK);
            let answer: Value = res.json().await.unwrap();
            (n % 150, answer["duplicate"].as_bool().unwrap())
        }
    });
    let answers = futures_util::future::join_all(sends).await;
    let mut seen = std::collections::BTreeMap::<i32, Vec<bool>>::new();
    for (n, duplicate) in answers {
        seen.entry(n).or_default().push(duplicate);
    }
    assert_eq!(seen.len(), 150);
    for (n, mut flags) in seen {
        flags.sort();
        assert_eq!(
            flags,
            [false, true],
            "event {n}: once new, once a redelivery"
        );
    }
    assert_eq!(stored_events(&app).await, 150);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_event_is_stored_once_and_every_bad_signature_is_refused() {
    let app = spawn_app().await;
    let (id, secret) = connected(&app).await;
    let path = format!("/webhooks/stripe/{id}");
    let now = chrono::Utc::now().timestamp();
    let body = event("evt_Signed000000001");

    // Valid: stored, acknowledged.
    let res = post(
        &app,
        &path,
        &body,
        Some(sign_stripe(body.as_bytes(), secret.as_bytes(), now)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let ack: Value = res.json().await.unwrap();
    assert_eq!(ack, json!({ "received": true, "duplicate": false }));
    assert_eq!(stored_events(&app).await, 1);

    // A redelivery (a new signature, the same event) is acknowledged and changes nothing.
    let res = post(
        &app,
        &path,
        &body,
        Some(sign_stripe(body.as_bytes(), secret.as_bytes(), now + 5)),
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["duplicate"], true);
    assert_eq!(stored_events(&app).await, 1);

    // Several v1 values: valid if any matches (Stripe sends one per secret while rolling).
    let other = event("evt_Signed000000002");
    let good = sign_stripe(other.as_bytes(), secret.as_bytes(), now);
    let v1 = good.split("v1=").nth(1).unwrap();
    let res = post(
        &app,
        &path,
        &other,
        Some(format!("t={now},v1={},v1={v1}", "ab".repeat(32))),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stored_events(&app).await, 2);

    let fresh = event("evt_Refused00000001");
    let cases: Vec<(&str, Option<String>, &str, &str)> = vec![
        (
            "tampered body",
            Some(sign_stripe(fresh.as_bytes(), secret.as_bytes(), now)),
            "tampered",
            "signature_mismatch",
        ),
        (
            "wrong secret",
            Some(sign_stripe(fresh.as_bytes(), b"whsec_not_the_secret", now)),
            "",
            "signature_mismatch",
        ),
        (
            "expired t",
            Some(sign_stripe(fresh.as_bytes(), secret.as_bytes(), now - 600)),
            "",
            "signature_expired",
        ),
        (
            "future t",
            Some(sign_stripe(fresh.as_bytes(), secret.as_bytes(), now + 600)),
            "",
            "signature_expired",
        ),
        ("missing header", None, "", "signature_missing"),
        (
            "malformed header",
            Some("v1=deadbeef".into()),
            "",
            "signature_malformed",
        ),
        (
            "garbage header",
            Some("t=abc,v1=00".into()),
            "",
            "signature_malformed",
        ),
    ];
    for (what, signature, tamper, code) in cases {
        let sent = if tamper.is_empty() {
            fresh.clone()
        } else {
            fresh.replace("x@example.com", "y@example.com")
        };
        let res = post(&app, &path, &sent, signature).await;
        assert_eq!(
            error_code(res, StatusCode::BAD_REQUEST).await,
            code,
            "{what}"
        );
        assert_eq!(stored_events(&app).await, 2, "{what}: nothing stored");
    }

    // Signed, but not an event: 422, nothing stored.
    let junk = json!({ "hello": "world" }).to_string();
    let res = post(
        &app,
        &path,
        &junk,
        Some(sign_stripe(junk.as_bytes(), secret.as_bytes(), now)),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_event"
    );
    // An unknown integration: 404.
    let res = post(
        &app,
        &format!("/webhooks/stripe/{}", uuid::Uuid::new_v4()),
        &fresh,
        Some(sign_stripe(fresh.as_bytes(), secret.as_bytes(), now)),
    )
    .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");
    assert_eq!(stored_events(&app).await, 2);

    // The stored payload is the body exactly as received.
    let mut conn = db::conn(&app.pool).await.unwrap();
    let payloads: Vec<String> = {
        use biz_core::db::schema::webhook_events::dsl::*;
        webhook_events
            .select(payload)
            .order(external_id)
            .load(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(payloads[0], body);
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_events_need_the_platform_secret_and_a_connected_account() {
    let app = spawn_app().await;
    let body = event("evt_Platform0000001");
    let res = post(
        &app,
        "/webhooks/stripe",
        &body,
        Some(sign_stripe(body.as_bytes(), b"whsec_x", 1)),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "webhook_not_configured"
    );

    let app = spawn_app_with(&[("STRIPE_WEBHOOK_SECRET", "whsec_platform_secret_for_tests")]).await;
    let now = chrono::Utc::now().timestamp();
    let res = post(
        &app,
        "/webhooks/stripe",
        &body,
        Some(sign_stripe(body.as_bytes(), b"whsec_wrong", now)),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "signature_mismatch"
    );
    // Verified, for an account not connected here: acknowledged, not stored.
    let res = post(
        &app,
        "/webhooks/stripe",
        &body,
        Some(sign_stripe(
            body.as_bytes(),
            b"whsec_platform_secret_for_tests",
            now,
        )),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(stored_events(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnecting_removes_the_webhook_endpoint_at_stripe() {
    let app = spawn_app().await;
    let alice = app.signup("bob@example.com", "B Corp").await;
    let body: Value = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
            json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51WebhookAccount000002" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let endpoints = |sim: String| async move {
        let v: Value = reqwest::get(format!("{sim}/_sim/stripe/endpoints"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"].as_array().unwrap().len()
    };
    assert_eq!(endpoints(app.sim.clone()).await, 1);
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{}/integrations/{}",
                alice.org_id,
                body["id"].as_str().unwrap()
            ),
            &alice.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(endpoints(app.sim.clone()).await, 0);
}
