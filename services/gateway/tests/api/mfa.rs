//! TOTP MFA: setup, enabling, logging in with a code or a recovery code (each once), turning it
//! off, and an organisation that requires it.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, totp_code, Account, TestApp, PASSWORD};

async fn login(app: &TestApp, email: &str, extra: Value) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": PASSWORD });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.client
        .post(app.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Sets MFA up and on for `who`; returns the secret and the recovery codes.
async fn turn_on(app: &TestApp, who: &Account) -> (String, Vec<String>) {
    let res = app
        .post("/api/v1/auth/mfa/totp/setup", &who.token, json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let setup: Value = res.json().await.unwrap();
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/BizInsights:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")) && uri.contains("issuer=BizInsights"));
    assert!(setup["qr_svg"].as_str().unwrap().contains("<svg"));

    let res = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            &who.token,
            json!({ "code": "000000" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            &who.token,
            json!({ "code": totp_code(&secret, 0) }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_codes_and_recovery_codes_each_work_once() {
    let app = spawn_app().await;
    let alice = app.signup("alice@example.com", "Alice Co").await;
    let (secret, recovery) = turn_on(&app, &alice).await;

    // The password alone no longer logs in.
    let res = login(&app, &alice.email, json!({})).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "mfa_required"
    );
    // A wrong code.
    let res = login(&app, &alice.email, json!({ "totp_code": "123456" })).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    // The code that enabled MFA was used: not again.
    let res = login(
        &app,
        &alice.email,
        json!({ "totp_code": totp_code(&secret, 0) }),
    )
    .await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    // The next step's code (within the ±1 step window) logs in, once.
    let next = totp_code(&secret, 1);
    let res = login(&app, &alice.email, json!({ "totp_code": next })).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = login(&app, &alice.email, json!({ "totp_code": next })).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    // A recovery code logs in once, written any way.
    let lower = recovery[3].to_lowercase().replace('-', " ");
    let res = login(&app, &alice.email, json!({ "recovery_code": lower })).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = login(&app, &alice.email, json!({ "recovery_code": recovery[3] })).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    // A wrong password with a good code is still a wrong password.
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": alice.email, "password": "not the password at all", "recovery_code": recovery[4] }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );

    // Setting up again while on is refused.
    let res = app
        .post("/api/v1/auth/mfa/totp/setup", &alice.token, json!({}))
        .await;
    assert_eq!(
        error_code(res, StatusCode::CONFLICT).await,
        "mfa_already_enabled"
    );
    // Turning it off needs the password and a code.
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &alice.token,
            json!({ "password": "wrong password here", "code": recovery[5] }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &alice.token,
            json!({ "password": PASSWORD, "code": recovery[3] }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_mfa_code"
    );
    let res = app
        .post(
            "/api/v1/auth/mfa/totp/disable",
            &alice.token,
            json!({ "password": PASSWORD, "code": recovery[5] }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = login(&app, &alice.email, json!({})).await;
    assert_eq!(res.status(), StatusCode::OK);

    // The secret is sealed at rest, never stored as the base32 the user saw.
    let dump = crate::dump::database_text(&app).await;
    assert!(!dump.contains(&secret));
    for code in &recovery {
        assert!(!dump.contains(code.as_str()));
    }

    // Each step was audited (user-level entries: no organisation).
    let dump = crate::dump::database_text(&app).await;
    for action in [
        "mfa.setup",
        "mfa.enable",
        "mfa.disable",
        "auth.login_failed",
    ] {
        assert!(dump.contains(action), "no {action} in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_organisation_can_require_mfa_of_every_member() {
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Strict Co").await;
    let member = app.signup("member@example.com", "Elsewhere").await;
    app.add_member(&owner, owner.org_id, &member, "member")
        .await;
    let org_path = format!("/api/v1/orgs/{}", owner.org_id);

    // The owner must have MFA on first.
    let res = app
        .patch(&org_path, &owner.token, json!({ "require_mfa": true }))
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "mfa_not_enabled"
    );
    turn_on(&app, &owner).await;
    // Only owners may require it.
    let res = app
        .patch(&org_path, &member.token, json!({ "require_mfa": true }))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .patch(&org_path, &owner.token, json!({ "require_mfa": true }))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["require_mfa"], true);

    // The member without MFA is kept out of this organisation, not out of their own.
    let res = app.get(&format!("{org_path}/members"), &member.token).await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "mfa_required_by_organization"
    );
    let res = app
        .get(&format!("/api/v1/orgs/{}", member.org_id), &member.token)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Once the member turns MFA on, they are back in.
    turn_on(&app, &member).await;
    let res = app.get(&format!("{org_path}/members"), &member.token).await;
    assert_eq!(res.status(), StatusCode::OK);
}
