//! Key rotation: every stored secret re-sealed under the new key id, in batches, resumable; a
//! gateway that knows only the new key still uses every integration and second factor.

use biz_core::crypto::signatures::sign_stripe;
use biz_core::crypto::KeyRing;
use biz_core::db;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, totp_code, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn rotating_reseals_every_secret_and_only_the_new_key_is_needed_after() {
    let app = spawn_app().await;
    let owner = app.signup("rotate@example.com", "Rotate Co").await;
    // A Stripe integration (API key and webhook secret, sealed) and MFA (TOTP secret, sealed).
    let connected: Value = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", owner.org_id),
            &owner.token,
            json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51RotateAccount0000001" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let integration = connected["id"].as_str().unwrap().to_owned();
    let setup: Value = app
        .post("/api/v1/auth/mfa/totp/setup", &owner.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            &owner.token,
            json!({ "code": totp_code(&secret, 0) }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let old_id = app.settings.security.encryption_key_id.clone();
    let before = crate::dump::database_text(&app).await;
    assert_eq!(
        before.matches(&format!("v1:{old_id}:")).count(),
        2,
        "two sealed values"
    );

    // The operator's step 1: a new current key, the old one kept for decryption.
    let mut rotated = app.settings.clone();
    rotated.security.encryption_key_id = "k2".into();
    rotated.security.encryption_key =
        SecretString::from("a fresh encryption key for the rotation test 0123456789".to_owned());
    rotated.security.previous_encryption_keys = vec![SecretString::from(format!(
        "{old_id}={}",
        app.settings.security.encryption_key.expose_secret()
    ))];
    // Step 2: the rotation, one row per batch.
    let keys = KeyRing::from_settings(&rotated.security);
    let mut conn = db::conn(&app.pool).await.unwrap();
    let report = db::rotation::rotate_all(&mut conn, &keys, 1).await.unwrap();
    assert_eq!(
        report.iter().map(|r| r.rotated).sum::<u64>(),
        2,
        "{report:?}"
    );
    assert_eq!(report.iter().map(|r| r.failed).sum::<u64>(), 0);
    assert_eq!(db::rotation::remaining(&mut conn, &keys).await.unwrap(), 0);
    // Running it again finds nothing to do.
    let again = db::rotation::rotate_all(&mut conn, &keys, 1).await.unwrap();
    assert_eq!(again.iter().map(|r| r.rotated).sum::<u64>(), 0);

    let after = crate::dump::database_text(&app).await;
    assert_eq!(after.matches("v1:k2:").count(), 2);
    assert!(
        !after.contains(&format!("v1:{old_id}:")),
        "no value under the old key"
    );
    assert!(after.contains("encryption.rotate"), "audited");

    // Step 3: the old key is dropped. A gateway with the new key only...
    let mut only_new = rotated.clone();
    only_new.security.previous_encryption_keys.clear();
    let gateway = app.twin_with(only_new);
    let http = reqwest::Client::new();
    // ...checks the second factor,
    let res = http
        .post(format!("{gateway}/api/v1/auth/login"))
        .json(&json!({ "email": "rotate@example.com", "password": PASSWORD, "totp_code": totp_code(&secret, 1) }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token: Value = res.json().await.unwrap();
    let token = token["token"].as_str().unwrap().to_owned();
    // ...verifies the integration's webhooks with its sealed endpoint secret,
    let endpoints: Value = reqwest::get(format!("{}/_sim/stripe/endpoints", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook_secret = endpoints["data"][0]["secret"].as_str().unwrap();
    let event = json!({
        "id": "evt_AfterRotation0001", "object": "event", "api_version": "2024-06-20",
        "created": 1_767_300_000, "type": "customer.updated", "livemode": false,
        "data": { "object": { "id": "cus_Rotated000001", "object": "customer", "created": 1_700_000_000 } }
    })
    .to_string();
    let res = http
        .post(format!("{gateway}/webhooks/stripe/{integration}"))
        .header(
            "Stripe-Signature",
            sign_stripe(
                event.as_bytes(),
                webhook_secret.as_bytes(),
                chrono::Utc::now().timestamp(),
            ),
        )
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // ...and calls Stripe with the sealed API key (disconnecting removes the endpoint there).
    let res = http
        .delete(format!(
            "{gateway}/api/v1/orgs/{}/integrations/{integration}",
            owner.org_id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let endpoints: Value = reqwest::get(format!("{}/_sim/stripe/endpoints", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(endpoints["data"].as_array().unwrap().len(), 0);
}
