//! The audit log gets a row for each security-relevant action, readable by the organisation's
//! admins (its own entries and its members' account-level ones), and cannot be changed.

use std::collections::BTreeSet;

use biz_core::db;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, totp_code, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn every_listed_action_leaves_a_row() {
    let app = spawn_app().await;
    let owner = app.signup("audit-owner@example.com", "Audit Co").await;
    let org = owner.org_id;
    let other = app.signup("audit-member@example.com", "Other Co").await;

    // Logins, good and bad.
    assert_eq!(
        app.login(&owner.email, PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login(&owner.email, "not the password at all")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // MFA on and off.
    let setup: Value = app
        .post("/api/v1/auth/mfa/totp/setup", &owner.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let secret = setup["secret"].as_str().unwrap();
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            &owner.token,
            json!({ "code": totp_code(secret, 0) }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &owner.token,
            json!({ "password": PASSWORD, "code": totp_code(secret, 1) }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Invitations: one revoked, one accepted; then a role change and a removal.
    let inv: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &owner.token,
            json!({ "email": "nobody@example.com", "role": "viewer" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{org}/invitations/{}",
                inv["id"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await;
    assert!(res.status().is_success());
    app.add_member(&owner, org, &other, "member").await;
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/{}", other.user_id),
            &owner.token,
            json!({ "role": "admin" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .delete(
            &format!("/api/v1/orgs/{org}/members/{}", other.user_id),
            &owner.token,
        )
        .await;
    assert!(res.status().is_success());
    // An API key made and revoked.
    let key: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &owner.token,
            json!({ "name": "ci" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{org}/api-keys/{}",
                key["id"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await;
    assert!(res.status().is_success());
    // Stripe connected and disconnected; a settings change.
    let connected: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/integrations"),
            &owner.token,
            json!({ "provider": "stripe", "credentials": { "api_key": "sk_test_51AuditAccount00000001" } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .delete(
            &format!(
                "/api/v1/orgs/{org}/integrations/{}",
                connected["id"].as_str().unwrap()
            ),
            &owner.token,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &owner.token,
            json!({ "timezone": "Europe/Berlin" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A password change (which ends the sessions; carry on with the new one).
    let res = app
        .post(
            "/api/v1/auth/password/change",
            &owner.token,
            json!({ "current_password": PASSWORD, "new_password": "the audit test's new passphrase" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // And a reset by e-mail.
    let res = app
        .client
        .post(app.url("/api/v1/auth/password/forgot"))
        .json(&json!({ "email": owner.email }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = crate::accounts::emails_to(&app, &owner.email).await.pop() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no reset e-mail");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let reset_token = mail["text"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap();
    let reset_token = reset_token.split_whitespace().next().unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/auth/password/reset"))
        .json(&json!({ "token": reset_token, "new_password": "the audit test's reset passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let login: Value = app
        .login(&owner.email, "the audit test's reset passphrase")
        .await
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();

    // What the organisation's admins read.
    let log: Value = app
        .get(&format!("/api/v1/orgs/{org}/audit-log?limit=200"), &token)
        .await
        .json()
        .await
        .unwrap();
    let actions: BTreeSet<String> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "auth.login",
        "auth.login_failed",
        "mfa.setup",
        "mfa.enable",
        "mfa.disable",
        "auth.password_change",
        "auth.password_reset_requested",
        "auth.password_reset",
        "invitation.create",
        "invitation.revoke",
        "invitation.accept",
        "member.role_change",
        "member.remove",
        "api_key.create",
        "api_key.revoke",
        "integration.connect",
        "integration.disconnect",
        "organization.update",
    ] {
        assert!(actions.contains(action), "no {action} in {actions:?}");
    }
    // Filtered by action.
    let only: Value = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?action=member.role_change"),
            &token,
        )
        .await
        .json()
        .await
        .unwrap();
    let only = only["data"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["action"], "member.role_change");

    // Key rotation and the organisation's deletion are logged too (no organisation to read them
    // through afterwards: in the table).
    let keys = biz_core::crypto::KeyRing::from_settings(&app.settings.security);
    let mut conn = db::conn(&app.pool).await.unwrap();
    db::rotation::rotate_all(&mut conn, &keys, 100)
        .await
        .unwrap();
    let res = app.delete(&format!("/api/v1/orgs/{org}"), &token).await;
    assert!(res.status().is_success());
    let dump = crate::dump::database_text(&app).await;
    for action in ["encryption.rotate", "organization.delete"] {
        assert!(dump.contains(action), "no {action} row");
    }

    // Rows cannot be changed or removed.
    for sql in [
        "UPDATE audit_log SET action = 'x'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = diesel::sql_query(sql).execute(&mut conn).await;
        assert!(err.is_err(), "{sql} was allowed");
    }
}
