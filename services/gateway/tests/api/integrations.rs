//! Connecting Stripe, starting syncs, reading runs and the job summary, through the HTTP API with
//! the provider simulator behind it. No worker runs here: runs stay queued, which is what the
//! one-run-per-integration rule and the queue depth are checked against.

use biz_core::db;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Account, TestApp};

const KEY: &str = "sk_test_51BizInsightsTestKey0001";

async fn connect(app: &TestApp, who: &Account, key: &str) -> reqwest::Response {
    app.post(
        &format!("/api/v1/orgs/{}/integrations", who.org_id),
        &who.token,
        json!({ "provider": "stripe", "credentials": { "api_key": key } }),
    )
    .await
}

async fn stored_credentials(app: &TestApp) -> Vec<Option<String>> {
    use biz_core::db::schema::integrations::dsl::*;
    let mut conn = db::conn(&app.pool).await.unwrap();
    integrations
        .select(credentials)
        .load(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_stripe_checks_the_key_stores_it_sealed_and_queues_a_backfill() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let res = connect(&app, &alice, KEY).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["provider"], "stripe");
    assert_eq!(body["status"], "active");
    assert!(
        body.get("credentials").is_none(),
        "credentials are never returned"
    );
    assert!(!body.to_string().contains(KEY));
    let run_id = body["sync_run_id"].as_str().unwrap().to_owned();

    // One live call checked the key; a second registered the webhook endpoint.
    let log: Value = reqwest::get(format!("{}/_sim/requests", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["total"], 2);
    assert_eq!(log["data"][0]["path"], "/v1/customers");
    assert_eq!(log["data"][0]["query"], "limit=1");
    assert_eq!(log["data"][0]["status"], 200);
    assert_eq!(log["data"][1]["method"], "POST");
    assert_eq!(log["data"][1]["path"], "/v1/webhook_endpoints");
    assert_eq!(log["data"][1]["status"], 200);

    // Sealed at rest, bound to the row.
    let sealed = stored_credentials(&app).await;
    assert_eq!(sealed.len(), 1);
    let sealed = sealed[0].clone().unwrap();
    assert!(sealed.starts_with("v1:"), "envelope format");
    assert!(!sealed.contains(KEY));

    // The backfill run is queued and visible.
    let run: Value = app
        .get(
            &format!("/api/v1/orgs/{}/sync-runs/{run_id}", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "queued");
    assert_eq!(run["mode"], "full");
    assert_eq!(run["trigger"], "connect");
    assert_eq!(run["attempts"], 0);
    assert_eq!(run["progress"], json!({}));
    assert_eq!(run["error"], Value::Null);

    // The connect is audited.
    let audit: Value = app
        .get(
            &format!("/api/v1/orgs/{}/audit-log", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "integration.connect"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_or_malformed_key_stores_nothing() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    // The simulated account accepts only one key.
    let res = reqwest::Client::new()
        .post(format!("{}/_sim/config", app.sim))
        .json(&json!({ "stripe": { "api_keys": [KEY] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let res = connect(&app, &alice, "sk_test_51SomebodyElsesKey0000").await;
    let code = error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(code, "invalid_credentials");
    let res = connect(&app, &alice, "pk_test_publishable").await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_credentials"
    );
    let res = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
            json!({ "provider": "stripe", "credentials": "nope" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_credentials"
    );
    let res = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
            json!({ "provider": "myspace", "credentials": {} }),
        )
        .await;
    assert!(res.status().is_client_error());
    assert!(stored_credentials(&app).await.is_empty());
    let list: Value = app
        .get(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_cannot_be_reached_is_503_not_500() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let app = spawn_app_with(&[("BIZ__PROVIDERS__STRIPE_API_BASE", &base)]).await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let res = connect(&app, &alice, KEY).await;
    assert_eq!(
        error_code(res, StatusCode::SERVICE_UNAVAILABLE).await,
        "provider_unavailable"
    );
    assert!(stored_credentials(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sync_per_integration_and_roles_apply() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let vera = app.signup("vera@example.com", "Vera's").await;
    let mike = app.signup("mike@example.com", "Mike's").await;
    app.add_member(&alice, alice.org_id, &vera, "viewer").await;
    app.add_member(&alice, alice.org_id, &mike, "member").await;

    // Only admins connect.
    let res = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &mike.token,
            json!({ "provider": "stripe", "credentials": { "api_key": KEY } }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );

    let body: Value = connect(&app, &alice, KEY).await.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    let backfill = body["sync_run_id"].as_str().unwrap();
    let sync_url = format!("/api/v1/orgs/{}/integrations/{id}/sync", alice.org_id);

    // Viewers read but do not sync.
    let res = app.post(&sync_url, &vera.token, json!({})).await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    // A member's request while the backfill is queued gets the backfill back.
    let res = app
        .post(&sync_url, &mike.token, json!({ "mode": "full" }))
        .await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["sync_run_id"], backfill);
    assert_eq!(started["created"], false);
    let res = app
        .post(&sync_url, &mike.token, json!({ "mode": "sideways" }))
        .await;
    assert!(res.status().is_client_error());

    let runs: Value = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/{id}/sync-runs", alice.org_id),
            &vera.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(runs["data"].as_array().unwrap().len(), 1, "still one run");

    // The job is in the queue, and the gateway's /metrics says so.
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"biz_queue_depth{service="gateway",job="sync_integration.v1",state="ready"} 1"#
        ),
        "{metrics}"
    );

    // The admin summary shows it; a viewer may not read it.
    let res = app
        .get(&format!("/api/v1/orgs/{}/jobs", alice.org_id), &vera.token)
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
    let summary: Value = app
        .get(&format!("/api/v1/orgs/{}/jobs", alice.org_id), &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(summary["sync_runs"]["queued"], 1);
    assert_eq!(summary["active"][0]["id"], backfill);
    assert_eq!(summary["stuck"], json!([]));

    // Disconnecting deletes the credentials; syncing is then a conflict.
    let res = app
        .delete(
            &format!("/api/v1/orgs/{}/integrations/{id}", alice.org_id),
            &alice.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(stored_credentials(&app).await, vec![None]);
    let res = app.post(&sync_url, &alice.token, json!({})).await;
    assert_eq!(
        error_code(res, StatusCode::CONFLICT).await,
        "integration_not_connected"
    );
    let shown: Value = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/{id}", alice.org_id),
            &vera.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "disconnected");
    assert_eq!(shown["next_sync_at"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_runs_page_newest_first() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let body: Value = connect(&app, &alice, KEY).await.json().await.unwrap();
    let id: uuid::Uuid = body["id"].as_str().unwrap().parse().unwrap();
    // Finish the backfill and add four more finished runs, as workers would.
    let mut conn = db::conn(&app.pool).await.unwrap();
    diesel::sql_query("UPDATE sync_runs SET status = 'succeeded'")
        .execute(&mut conn)
        .await
        .unwrap();
    for _ in 0..4 {
        let (run, created) = db::sync_runs::create_or_existing(
            &mut conn,
            alice.org_id,
            id,
            "incremental",
            "schedule",
            5,
        )
        .await
        .unwrap();
        assert!(created);
        diesel::sql_query("UPDATE sync_runs SET status = 'failed', error = 'boom' WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(run.id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let base = format!("/api/v1/orgs/{}/integrations/{id}/sync-runs", alice.org_id);
    let first: Value = app
        .get(&format!("{base}?limit=3"), &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    assert_eq!(first["data"][0]["error"], "boom");
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .get(&format!("{base}?limit=3&cursor={cursor}"), &alice.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(
        second["data"][1]["trigger"], "connect",
        "the oldest run comes last"
    );
    let res = app
        .get(&format!("{base}?cursor=garbage"), &alice.token)
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_cursor"
    );
    let res = app.get(&format!("{base}?limit=0"), &alice.token).await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_limit"
    );
}
