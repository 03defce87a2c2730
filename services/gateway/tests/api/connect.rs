//! Stripe Connect OAuth: the redirect with a one-time state, the callback that exchanges the
//! code and stores the connected account, and every refusal (400, nothing stored).

use biz_core::db;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app, spawn_app_with, Account, TestApp};

const CONNECT: &[(&str, &str)] = &[
    ("STRIPE_CLIENT_ID", "ca_TestPlatformClient0001"),
    ("STRIPE_SECRET_KEY", "sk_test_51PlatformSecretKey000001"),
];

async fn integrations_count(app: &TestApp) -> i64 {
    use biz_core::db::schema::integrations::dsl::*;
    let mut conn = db::conn(&app.pool).await.unwrap();
    integrations.count().get_result(&mut conn).await.unwrap()
}

/// Starts the flow; returns Stripe's authorize URL.
async fn start(app: &TestApp, who: &Account) -> reqwest::Url {
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/stripe/connect", who.org_id),
            &who.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    res.headers()["location"].to_str().unwrap().parse().unwrap()
}

/// The callback opened in the browser of `who`, signed in.
async fn signed_in_get(app: &TestApp, url: &str, who: &Account) -> reqwest::Response {
    app.client
        .get(url)
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap()
}

fn param(url: &reqwest::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Plays the user's browser at Stripe: follows the authorize URL, returns where Stripe sends
/// the user back (our callback, with its query).
async fn at_stripe(app: &TestApp, authorize: &reqwest::Url, deny: bool) -> String {
    let mut url = authorize.clone();
    if deny {
        url.query_pairs_mut().append_pair("deny", "1");
    }
    let res = app.client.get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    // The callback is ours, at the public URL; call the test server instead.
    back.replace("http://127.0.0.1:8080", &app.address)
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_through_stripe_connect_stores_the_account() {
    let app = spawn_app_with(CONNECT).await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let authorize = start(&app, &alice).await;
    assert_eq!(authorize.path(), "/oauth/authorize");
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    assert_eq!(param(&authorize, "scope").as_deref(), Some("read_only"));
    assert_eq!(
        param(&authorize, "client_id").as_deref(),
        Some("ca_TestPlatformClient0001")
    );
    assert_eq!(
        param(&authorize, "redirect_uri").as_deref(),
        Some("http://127.0.0.1:8080/oauth/stripe/callback")
    );
    let state = param(&authorize, "state").unwrap();
    assert!(state.len() >= 40, "a long random state");

    let callback = at_stripe(&app, &authorize, false).await;
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "{}",
        res.text().await.unwrap()
    );
    let list: Value = app
        .get(
            &format!("/api/v1/orgs/{}/integrations", alice.org_id),
            &alice.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let connected = &list["data"][0];
    assert_eq!(connected["provider"], "stripe");
    assert!(connected["external_account_id"]
        .as_str()
        .unwrap()
        .starts_with("acct_"));
    // The account's key is sealed at rest.
    let mut conn = db::conn(&app.pool).await.unwrap();
    let sealed: Option<String> = {
        use biz_core::db::schema::integrations::dsl::*;
        integrations
            .select(credentials)
            .first(&mut conn)
            .await
            .unwrap()
    };
    assert!(sealed.unwrap().starts_with("v1:"));

    // The same callback again: the state is spent; nothing more stored.
    let res = app.client.get(&callback).send().await.unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "state_used");
    assert_eq!(integrations_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_callback_is_refused_and_stores_nothing() {
    let app = spawn_app_with(CONNECT).await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let callback = |q: &str| format!("{}/oauth/stripe/callback?{q}", app.address);

    // No state, or one never issued.
    let res = app.client.get(callback("code=ac_x")).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "missing_state"
    );
    let res = app
        .client
        .get(callback("code=ac_x&state=bos_forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "invalid_state"
    );

    // The user declines at Stripe.
    let authorize = start(&app, &alice).await;
    let back = at_stripe(&app, &authorize, true).await;
    let res = app.client.get(&back).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "oauth_denied"
    );

    // A code Stripe never issued.
    let authorize = start(&app, &alice).await;
    let state = param(&authorize, "state").unwrap();
    let res = app
        .client
        .get(callback(&format!("code=ac_Forged000000001&state={state}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "token_exchange_failed"
    );

    // An expired state.
    let authorize = start(&app, &alice).await;
    let back = at_stripe(&app, &authorize, false).await;
    let mut conn = db::conn(&app.pool).await.unwrap();
    diesel::sql_query(
        "UPDATE oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let res = app.client.get(&back).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "state_expired"
    );

    // Alice's approved callback opened in the signed-in browser of another user: refused, and
    // the state is spent.
    let mallory = app.signup("mallory@example.com", "M Corp").await;
    let authorize = start(&app, &alice).await;
    let back = at_stripe(&app, &authorize, false).await;
    let res = signed_in_get(&app, &back, &mallory).await;
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "state_not_yours"
    );
    let res = signed_in_get(&app, &back, &alice).await;
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "state_used");

    assert_eq!(integrations_count(&app).await, 0);

    // Her own signed-in browser gets through.
    let authorize = start(&app, &alice).await;
    let back = at_stripe(&app, &authorize, false).await;
    let res = signed_in_get(&app, &back, &alice).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(integrations_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_needs_an_admin_and_the_platform_settings() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/stripe/connect", alice.org_id),
            &alice.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "stripe_connect_not_configured"
    );

    let app = spawn_app_with(CONNECT).await;
    let alice = app.signup("alice@example.com", "A Corp").await;
    let mike = app.signup("mike@example.com", "Mike's").await;
    app.add_member(&alice, alice.org_id, &mike, "member").await;
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/stripe/connect", alice.org_id),
            &mike.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );
}
