//! Installing the Shopify app: the redirect with a one-time state bound to the shop, the
//! callback that verifies everything before exchanging the code, the webhooks registered, and
//! every refusal a 400 that stores nothing.

use biz_core::db;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app_with, Account, TestApp};

const APP: &[(&str, &str)] = &[
    ("SHOPIFY_CLIENT_ID", "sim-shopify-client-id"),
    ("SHOPIFY_CLIENT_SECRET", "sim-shopify-client-secret"),
];
const SHOP: &str = "acme-store.myshopify.com";

async fn integrations_count(app: &TestApp) -> i64 {
    use biz_core::db::schema::integrations::dsl::*;
    let mut conn = db::conn(&app.pool).await.unwrap();
    integrations.count().get_result(&mut conn).await.unwrap()
}

async fn install(app: &TestApp, who: &Account, shop: &str) -> reqwest::Response {
    app.get(
        &format!(
            "/api/v1/orgs/{}/integrations/shopify/install?shop={shop}",
            who.org_id
        ),
        &who.token,
    )
    .await
}

/// Follows the install to the simulated shop, which "approves" and answers the callback URL.
async fn approved_callback(app: &TestApp, who: &Account, shop: &str) -> reqwest::Url {
    let res = install(app, who, shop).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let authorize: reqwest::Url = res.headers()["location"].to_str().unwrap().parse().unwrap();
    let res = app.client.get(authorize).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let back = res.headers()["location"].to_str().unwrap();
    back.replace("http://127.0.0.1:8080", &app.address)
        .parse()
        .unwrap()
}

fn with_param(url: &reqwest::Url, name: &str, value: &str) -> reqwest::Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn installing_on_a_shop_stores_its_token_sealed_and_subscribes_the_webhooks() {
    let app = spawn_app_with(APP).await;
    let owner = app.signup("merchant@example.com", "Acme").await;

    let res = install(&app, &owner, SHOP).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let authorize: reqwest::Url = res.headers()["location"].to_str().unwrap().parse().unwrap();
    assert!(authorize
        .path()
        .ends_with(&format!("/shopify/{SHOP}/admin/oauth/authorize")));
    let param = |n: &str| {
        authorize
            .query_pairs()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("client_id").as_deref(), Some("sim-shopify-client-id"));
    assert_eq!(
        param("scope").as_deref(),
        Some("read_orders,read_products,read_customers")
    );
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some("http://127.0.0.1:8080/oauth/shopify/callback")
    );
    assert!(param("state").unwrap().len() >= 40);

    let callback = approved_callback(&app, &owner, SHOP).await;
    let res = app.client.get(callback.clone()).send().await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "{}",
        res.text().await.unwrap()
    );
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/#/integrations?connected=shopify"));
    let list: Value = app
        .get(
            &format!("/api/v1/orgs/{}/integrations", owner.org_id),
            &owner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    let shop = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "shopify")
        .expect("a Shopify integration");
    assert_eq!(shop["external_account_id"], SHOP);
    // The token is sealed at rest.
    let dump = crate::dump::database_text(&app).await;
    assert!(!dump.contains("shpat_"), "no token in the clear");
    // Every topic subscribed, at our public webhook address.
    let hooks: Value = reqwest::get(format!("{}/_sim/shopify/webhooks", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let topics: Vec<&str> = hooks["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics.len(), gateway::routes::oauth::SHOPIFY_TOPICS.len());
    for topic in ["app/uninstalled", "refunds/create", "orders/delete"] {
        assert!(topics.contains(&topic), "{topic} not subscribed");
    }
    assert!(hooks["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["address"] == "http://127.0.0.1:8080/webhooks/shopify"
            && h["api_version"] == "2026-10"));

    // The same callback again: the state was used.
    let res = app.client.get(callback).send().await.unwrap();
    assert_eq!(error_code(res, StatusCode::BAD_REQUEST).await, "state_used");
    assert_eq!(integrations_count(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failed_check_is_a_400_and_stores_nothing() {
    let app = spawn_app_with(APP).await;
    let owner = app.signup("careful@example.com", "Careful").await;

    // A shop name that is not a myshopify domain never gets as far as Shopify.
    for bad in ["acme.com", "-acme.myshopify.com", "ac_me.myshopify.com", ""] {
        let res = install(&app, &owner, bad).await;
        assert_eq!(
            error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_shop",
            "{bad}"
        );
    }

    let callback = approved_callback(&app, &owner, SHOP).await;
    // Tampered parameters break the hmac; so does a missing one.
    for (name, value, code) in [
        ("shop", "evil-store.myshopify.com", "invalid_hmac"),
        ("code", "0000", "invalid_hmac"),
        ("hmac", "00", "invalid_hmac"),
    ] {
        let res = app
            .client
            .get(with_param(&callback, name, value))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(res, StatusCode::BAD_REQUEST).await,
            code,
            "{name}"
        );
    }
    let res = app
        .client
        .get(format!(
            "{}/oauth/shopify/callback?shop={SHOP}&code=x",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "invalid_hmac"
    );

    // A state issued for another shop, correctly signed by that shop.
    let other = approved_callback(&app, &owner, "other-store.myshopify.com").await;
    let state = other
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut params: Vec<(String, String)> = callback
        .query_pairs()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            let v = if k == "state" {
                state.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let hmac = provider_sim::shopify::query_hmac(&params, "sim-shopify-client-secret");
    params.push(("hmac".into(), hmac));
    let mut crossed = callback.clone();
    crossed
        .query_pairs_mut()
        .clear()
        .extend_pairs(params.clone());
    let res = app.client.get(crossed).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "shop_mismatch"
    );

    // An old timestamp, correctly signed.
    let mut params: Vec<(String, String)> = callback
        .query_pairs()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            let old = (chrono::Utc::now().timestamp() - 3_600).to_string();
            (
                k.to_string(),
                if k == "timestamp" {
                    old
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    let hmac = provider_sim::shopify::query_hmac(&params, "sim-shopify-client-secret");
    params.push(("hmac".into(), hmac));
    let mut stale = callback.clone();
    stale.query_pairs_mut().clear().extend_pairs(params);
    let res = app.client.get(stale).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "stale_timestamp"
    );

    // An expired state.
    {
        let mut conn = db::conn(&app.pool).await.unwrap();
        diesel::sql_query("UPDATE oauth_states SET expires_at = now() - interval '1 second' WHERE used_at IS NULL")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let res = app.client.get(callback).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "state_expired"
    );

    assert_eq!(integrations_count(&app).await, 0, "nothing stored");
}

/// `url` with `name` set to `value` and signed again with the app's secret, as a callback that
/// Shopify really sent would be.
fn resigned(url: &reqwest::Url, name: &str, value: &str) -> reqwest::Url {
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "hmac")
        .map(|(k, v)| {
            let v = if k == name {
                value.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    let hmac = provider_sim::shopify::query_hmac(&params, "sim-shopify-client-secret");
    params.push(("hmac".into(), hmac));
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(params);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_shop_names_and_another_users_state_are_refused() {
    let app = spawn_app_with(APP).await;
    let owner = app.signup("owner@example.com", "Shop Co").await;
    let tricks = [
        "evil.com",
        "x.myshopify.com.evil.com",
        "X.MYSHOPIFY.COM.EVIL.COM",
        "acme.myshopify.com.",
        "acme.myshopify.com/evil",
        "acme.myshopify.com%2F.evil.com",
        "acme..myshopify.com",
    ];
    // At install: refused before any redirect.
    for bad in tricks {
        let res = install(&app, &owner, bad).await;
        assert_eq!(
            error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
            "invalid_shop",
            "{bad}"
        );
    }
    // Domains are case-insensitive: the install normalises the name to lower case, and only
    // then checks it, so no spelling gets past the check.
    let res = install(&app, &owner, "ACME-Store.MyShopify.com").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    let to = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.contains("/shopify/acme-store.myshopify.com/admin/oauth/authorize"),
        "{to}"
    );
    // At the callback, even correctly signed: 400, uppercase included (Shopify sends the
    // lower-case name).
    let callback = approved_callback(&app, &owner, SHOP).await;
    for bad in tricks.iter().chain(&["ACME-STORE.MYSHOPIFY.COM"]) {
        let res = app
            .client
            .get(resigned(&callback, "shop", bad))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(res, StatusCode::BAD_REQUEST).await,
            "invalid_shop",
            "{bad}"
        );
    }
    // A missing parameter, correctly signed without it.
    let mut without_code = resigned(&callback, "code", "");
    let pairs: Vec<(String, String)> = without_code
        .query_pairs()
        .filter(|(k, _)| k != "code" && k != "hmac")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let hmac = provider_sim::shopify::query_hmac(&pairs, "sim-shopify-client-secret");
    without_code
        .query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("hmac", &hmac);
    let res = app.client.get(without_code).send().await.unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "missing_code"
    );

    // A member of the same organisation, signed in, opening the owner's callback.
    let member = app.signup("intruder@example.com", "Elsewhere").await;
    let callback = approved_callback(&app, &owner, SHOP).await;
    let res = app
        .client
        .get(callback)
        .bearer_auth(&member.token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "state_not_yours"
    );
    assert_eq!(integrations_count(&app).await, 0, "nothing stored");

    // The owner's own signed-in browser gets through.
    let callback = approved_callback(&app, &owner, SHOP).await;
    let res = app
        .client
        .get(callback)
        .bearer_auth(&owner.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(integrations_count(&app).await, 1);
}
