//! No secret reaches the logs: every log line of a full scenario, at the most verbose level, is
//! captured and searched for each secret the scenario used.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_settings, totp_code, PASSWORD};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_scenario_leaves_no_secret_in_the_logs() {
    // Everything this process logs, at trace level, through the product's own subscriber.
    let capture = Capture::default();
    let log_settings = test_settings("postgres://127.0.0.1/unused", &[("RUST_LOG", "trace")]);
    let guard = biz_core::telemetry::init_with_writer(
        "redaction-test",
        &log_settings,
        &Default::default(),
        capture.clone(),
    )
    .expect("the test owns this process's subscriber");

    let platform_secret = "sk_test_51PlatformRedaction0000001";
    let app = spawn_app_with(&[
        ("STRIPE_CLIENT_ID", "ca_RedactionPlatform0001"),
        ("STRIPE_SECRET_KEY", platform_secret),
    ])
    .await;
    let mut secrets: Vec<String> = vec![PASSWORD.into(), platform_secret.into()];

    // Sign-up, login, a cookie-borne session.
    let owner = app.signup("redact@example.com", "Redact Co").await;
    secrets.push(owner.token.clone());
    let login: Value = app
        .login("redact@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let session = login["token"].as_str().unwrap().to_owned();
    secrets.push(session.clone());
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("Cookie", format!("bi_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // An API key, used; an invitation.
    let key: Value = app
        .post(
            &format!("/api/v1/orgs/{}/api-keys", owner.org_id),
            &owner.token,
            json!({ "name": "ci", "role": "admin" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let api_key = key["key"].as_str().unwrap().to_owned();
    secrets.push(api_key.clone());
    assert_eq!(
        app.get(
            &format!("/api/v1/orgs/{}/integrations", owner.org_id),
            &api_key
        )
        .await
        .status(),
        StatusCode::OK
    );
    let inv: Value = app
        .post(
            &format!("/api/v1/orgs/{}/invitations", owner.org_id),
            &owner.token,
            json!({ "email": "new@example.com", "role": "member" }),
        )
        .await
        .json()
        .await
        .unwrap();
    secrets.push(inv["token"].as_str().unwrap().to_owned());

    // Stripe by key (checked live, its webhook endpoint registered), then a signed webhook.
    let stripe_key = "sk_test_51RedactionAccount000001";
    secrets.push(stripe_key.into());
    let connected: Value = app
        .post(
            &format!("/api/v1/orgs/{}/integrations", owner.org_id),
            &owner.token,
            json!({ "provider": "stripe", "credentials": { "api_key": stripe_key } }),
        )
        .await
        .json()
        .await
        .unwrap();
    let endpoints: Value = reqwest::get(format!("{}/_sim/stripe/endpoints", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webhook_secret = endpoints["data"][0]["secret"].as_str().unwrap().to_owned();
    secrets.push(webhook_secret.clone());
    let event = json!({
        "id": "evt_Redaction000001", "object": "event", "api_version": "2024-06-20",
        "created": 1_767_300_000, "type": "customer.updated", "livemode": false,
        "data": { "object": { "id": "cus_Redaction00001", "object": "customer", "created": 1_700_000_000 } }
    })
    .to_string();
    let signature = biz_core::crypto::signatures::sign_stripe(
        event.as_bytes(),
        webhook_secret.as_bytes(),
        chrono::Utc::now().timestamp(),
    );
    let res = app
        .client
        .post(app.url(&format!(
            "/webhooks/stripe/{}",
            connected["id"].as_str().unwrap()
        )))
        .header("Stripe-Signature", signature)
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // Stripe Connect: the authorize redirect, then a callback with a code.
    let res = app
        .get(
            &format!("/api/v1/orgs/{}/integrations/stripe/connect", owner.org_id),
            &owner.token,
        )
        .await;
    let authorize: reqwest::Url = res.headers()["location"].to_str().unwrap().parse().unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let page = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{}/oauth/authorize?{}",
            app.sim,
            authorize.query().unwrap()
        ))
        .send()
        .await
        .unwrap();
    let back: reqwest::Url = page.headers()["location"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    secrets.push(code.clone());
    let res = app
        .client
        .get(app.url(&format!("/oauth/stripe/callback?code={code}&state={state}")))
        .header("Cookie", format!("bi_session={}", owner.token))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_redirection() || res.status().is_success(),
        "{}",
        res.status()
    );

    // MFA on, a login with a recovery code, a password change.
    let setup: Value = app
        .post("/api/v1/auth/mfa/totp/setup", &owner.token, json!({}))
        .await
        .json()
        .await
        .unwrap();
    let totp_secret = setup["secret"].as_str().unwrap().to_owned();
    secrets.push(totp_secret.clone());
    let enabled: Value = app
        .post(
            "/api/v1/auth/mfa/totp/enable",
            &owner.token,
            json!({ "code": totp_code(&totp_secret, 0) }),
        )
        .await
        .json()
        .await
        .unwrap();
    let recovery = enabled["recovery_codes"][0].as_str().unwrap().to_owned();
    secrets.push(recovery.clone());
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "email": "redact@example.com", "password": PASSWORD, "recovery_code": recovery }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let new_password = "the redaction test's new passphrase";
    secrets.push(new_password.into());
    let res = app
        .post(
            "/api/v1/auth/password/change",
            &session,
            json!({ "current_password": PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // A failed login with a wrong password, which is a secret too.
    let wrong = "a wrong password typed in";
    secrets.push(wrong.into());
    app.login("redact@example.com", wrong).await;

    // A password reset by e-mail.
    let res = app
        .client
        .post(app.url("/api/v1/auth/password/forgot"))
        .json(&json!({ "email": "redact@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = crate::accounts::emails_to(&app, "redact@example.com")
            .await
            .pop()
        {
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
    let reset_token = reset_token.split_whitespace().next().unwrap().to_owned();
    secrets.push(reset_token.clone());
    let reset_password = "the redaction test's reset passphrase";
    secrets.push(reset_password.into());
    let res = app
        .client
        .post(app.url("/api/v1/auth/password/reset"))
        .json(&json!({ "token": reset_token, "new_password": reset_password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    secrets.push("re_TestSuiteKey0000001".into());

    // A careless log line of the future, naming secrets outright: the subscriber's redaction
    // still keeps them out.
    tracing::warn!(
        authorization = %format!("Bearer {api_key}"),
        credentials = %format!("{{\"api_key\":\"{stripe_key}\"}}"),
        "a careless log line with {webhook_secret} and password={new_password}"
    );

    drop(guard);
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("request served") && logs.lines().count() > 100,
        "the capture holds the scenario's logs ({} lines)",
        logs.lines().count()
    );
    assert!(logs.contains("a careless log line"));
    for secret in &secrets {
        let found = logs.matches(secret.as_str()).count();
        assert_eq!(
            found,
            0,
            "a secret ({}…) appears {found} times in the logs",
            &secret[..4]
        );
    }
}
