//! Signup, login, sessions and API keys, end to end over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, PASSWORD};

#[tokio::test(flavor = "multi_thread")]
async fn signup_login_api_key_use_and_revoke() {
    let app = spawn_app().await;

    // Sign up: 201 with the user, the organisation (owned) and a session token + cookie.
    let res = app
        .signup_raw(json!({ "email": "  Ann@Example.com ", "password": PASSWORD, "name": "Ann", "organization_name": "Ann's Shop" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("bi_session=bis_"), "{cookie}");
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "cookie lacks {attr}: {cookie}");
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["organization"]["name"], "Ann's Shop");
    assert_eq!(body["organization"]["role"], "owner");
    assert_eq!(body["organization"]["timezone"], "UTC");
    let org_id = body["organization"]["id"].as_str().unwrap().to_owned();
    let signup_token = body["token"].as_str().unwrap().to_owned();
    assert!(signup_token.starts_with("bis_"));

    // The same email again: 409.
    let res = app
        .signup_raw(json!({ "email": "ann@example.com", "password": PASSWORD, "name": "Ann", "organization_name": "Other" }))
        .await;
    assert_eq!(error_code(res, StatusCode::CONFLICT).await, "email_taken");

    // Log in: a new, different session.
    let res = app.login("ANN@example.com", PASSWORD).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_ne!(token, signup_token);
    assert_eq!(body["user"]["email"], "ann@example.com");

    // me
    let res = app.get("/api/v1/me", &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"]["email"], "ann@example.com");
    assert_eq!(me["organizations"].as_array().unwrap().len(), 1);
    assert_eq!(me["organizations"][0]["id"], org_id.as_str());

    // Create an API key: 201 with the key shown once.
    let res = app
        .post(
            &format!("/api/v1/orgs/{org_id}/api-keys"),
            &token,
            json!({ "name": "CI export", "role": "member" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bik_") && key.len() == 47, "{key}");
    assert_eq!(created["role"], "member");
    assert_eq!(created["prefix"], &key[..8]);

    // The listing never shows the key again.
    let res = app
        .get(&format!("/api/v1/orgs/{org_id}/api-keys"), &token)
        .await;
    let listed: Value = res.json().await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&key));
    assert_eq!(listed["next_cursor"], Value::Null);

    // Use it: it reads its organisation, as a member.
    let res = app.get(&format!("/api/v1/orgs/{org_id}"), &key).await;
    assert_eq!(res.status(), StatusCode::OK);
    let org: Value = res.json().await.unwrap();
    assert_eq!(org["role"], "member");
    let res = app.get("/api/v1/me", &key).await;
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["api_key"]["id"], key_id.as_str());
    assert_eq!(me["user"], Value::Null);
    // A member key cannot manage keys.
    let res = app
        .get(&format!("/api/v1/orgs/{org_id}/api-keys"), &key)
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "insufficient_role"
    );

    // Revoke it: 204, then it no longer authenticates, and revoking again is 404.
    let res = app
        .delete(&format!("/api/v1/orgs/{org_id}/api-keys/{key_id}"), &token)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get(&format!("/api/v1/orgs/{org_id}"), &key).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    let res = app
        .delete(&format!("/api/v1/orgs/{org_id}/api-keys/{key_id}"), &token)
        .await;
    assert_eq!(error_code(res, StatusCode::NOT_FOUND).await, "not_found");

    // Log out: the session stops working; the signup session still works.
    let res = app
        .request(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/api/v1/me", &token).await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "unauthenticated"
    );
    assert_eq!(
        app.get("/api/v1/me", &signup_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_failures_do_not_reveal_whether_the_email_exists() {
    let app = spawn_app().await;
    app.signup("bob@example.com", "Bob Co").await;
    let wrong_password = app
        .login("bob@example.com", "not the password at all")
        .await;
    let unknown_email = app.login("nobody@example.com", PASSWORD).await;
    let not_an_email = app.login("nobody", PASSWORD).await;
    let mut messages = Vec::new();
    for res in [wrong_password, unknown_email, not_an_email] {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
        messages.push(body["error"]["message"].as_str().unwrap().to_owned());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_roles_are_capped_by_the_creator_and_never_owner() {
    let app = spawn_app().await;
    let owner = app.signup("owner@example.com", "Cap Co").await;
    let path = format!("/api/v1/orgs/{}/api-keys", owner.org_id);
    let res = app
        .post(&path, &owner.token, json!({ "name": "x", "role": "owner" }))
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_role"
    );
    // Default role is viewer; an admin key can create keys up to admin.
    let res = app
        .post(&path, &owner.token, json!({ "name": "viewer key" }))
        .await;
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["role"], "viewer");
    let res = app
        .post(
            &path,
            &owner.token,
            json!({ "name": "admin key", "role": "admin" }),
        )
        .await;
    let admin_key = res.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .post(
            &path,
            &admin_key,
            json!({ "name": "from key", "role": "admin", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app
        .post(
            &path,
            &owner.token,
            json!({ "name": "x", "expires_in_days": 0 }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_expiry"
    );
    // Keys cannot create organisations or accept invitations: those act for a person.
    let res = app
        .post("/api/v1/orgs", &admin_key, json!({ "name": "Sneaky" }))
        .await;
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "user_session_required"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_sessions_need_the_csrf_header_for_changes() {
    let app = spawn_app().await;
    let res = app
        .signup_raw(json!({ "email": "cookie@example.com", "password": PASSWORD, "name": "C", "organization_name": "Cookie Co" }))
        .await;
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let org_id = body["organization"]["id"].as_str().unwrap().to_owned();

    // Reads work with the cookie alone.
    let res = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A change without the header is refused, with a wrong one too; with the right one it passes.
    let url = app.url(&format!("/api/v1/orgs/{org_id}"));
    let res = app
        .client
        .patch(&url)
        .header("cookie", &cookie)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "csrf_token_invalid"
    );
    let res = app
        .client
        .patch(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", "00ff")
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(res, StatusCode::FORBIDDEN).await,
        "csrf_token_invalid"
    );
    let res = app
        .client
        .patch(&url)
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "Renamed");
}

#[tokio::test(flavor = "multi_thread")]
async fn organisation_settings_are_validated() {
    let app = spawn_app().await;
    let a = app.signup("tz@example.com", "TZ Co").await;
    let path = format!("/api/v1/orgs/{}", a.org_id);
    let res = app
        .patch(&path, &a.token, json!({ "timezone": "Mars/Olympus" }))
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_timezone"
    );
    let res = app
        .patch(&path, &a.token, json!({ "reporting_currency": "usd" }))
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_currency"
    );
    let res = app
        .patch(
            &path,
            &a.token,
            json!({ "timezone": "America/Los_Angeles", "reporting_currency": "EUR" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["timezone"], "America/Los_Angeles");
    assert_eq!(v["reporting_currency"], "EUR");
    // A second organisation: listed beside the first, both owned.
    let res = app
        .post("/api/v1/orgs", &a.token, json!({ "name": "Second" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let res = app.get("/api/v1/orgs", &a.token).await;
    let list: Value = res.json().await.unwrap();
    let names: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["TZ Co", "Second"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_password_or_logging_out_everywhere_ends_every_session() {
    let app = spawn_app().await;
    let carol = app.signup("carol@example.com", "Carol Co").await;
    let second: Value = app
        .login("carol@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let second = second["token"].as_str().unwrap().to_owned();
    let new_password = "a brand new passphrase 42";

    let res = app
        .post(
            "/api/v1/auth/password/change",
            &carol.token,
            json!({ "current_password": "not the password at all", "new_password": new_password }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNAUTHORIZED).await,
        "invalid_credentials"
    );
    let res = app
        .post(
            "/api/v1/auth/password/change",
            &carol.token,
            json!({ "current_password": PASSWORD, "new_password": "short" }),
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "password_too_short"
    );
    let res = app
        .post(
            "/api/v1/auth/password/change",
            &carol.token,
            json!({ "current_password": PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let fresh: Value = res.json().await.unwrap();
    let fresh = fresh["token"].as_str().unwrap().to_owned();
    for old in [&carol.token, &second] {
        assert_eq!(
            app.get("/api/v1/me", old).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(app.get("/api/v1/me", &fresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.login("carol@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let other: Value = app
        .login("carol@example.com", new_password)
        .await
        .json()
        .await
        .unwrap();
    let other = other["token"].as_str().unwrap().to_owned();

    // Logging out everywhere ends both live sessions.
    let res = app
        .post("/api/v1/auth/logout-everywhere", &fresh, json!({}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for token in [&fresh, &other] {
        assert_eq!(
            app.get("/api/v1/me", token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

/// The e-mails the simulated Resend accepted, to `to`.
pub(crate) async fn emails_to(app: &crate::helpers::TestApp, to: &str) -> Vec<Value> {
    let all: Value = reqwest::get(format!("{}/_sim/resend/emails", app.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"][0] == to)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_link_works_once_and_ends_every_session() {
    let app = spawn_app().await;
    let dave = app.signup("dave@example.com", "Dave Co").await;

    // Unknown and known addresses get the same answer; only the known one gets mail.
    for email in ["nobody@example.com", "dave@example.com"] {
        let res = app
            .client
            .post(app.url("/api/v1/auth/password/forgot"))
            .json(&json!({ "email": email }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "accepted": true })
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mail = loop {
        if let Some(m) = emails_to(&app, "dave@example.com").await.pop() {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "no reset e-mail");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(emails_to(&app, "nobody@example.com").await.is_empty());
    assert_eq!(mail["subject"], "Reset your BizInsights password");
    assert_eq!(mail["from"], "BizInsights <no-reply@bizinsights.example>");
    let text = mail["text"].as_str().unwrap();
    let token = text
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("bir_"));

    // A bad new password does not use the link up.
    let reset = |token: String, password: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/api/v1/auth/password/reset"))
                .json(&json!({ "token": token, "new_password": password }))
                .send()
                .await
                .unwrap()
        }
    };
    let res = reset(token.clone(), "short").await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "password_too_short"
    );
    let res = reset(token.clone(), "a reset passphrase that is long").await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Once only.
    let res = reset(token.clone(), "another passphrase entirely").await;
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "invalid_reset_token"
    );
    assert_eq!(
        app.get("/api/v1/me", &dave.token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("dave@example.com", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("dave@example.com", "a reset passphrase that is long")
            .await
            .status(),
        StatusCode::OK
    );

    // An expired link is refused.
    let res = app
        .client
        .post(app.url("/api/v1/auth/password/forgot"))
        .json(&json!({ "email": "dave@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while emails_to(&app, "dave@example.com").await.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second e-mail");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let second = emails_to(&app, "dave@example.com").await.pop().unwrap();
    let token = second["text"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    {
        use diesel_async::RunQueryDsl;
        let mut conn = biz_core::db::conn(&app.pool).await.unwrap();
        diesel::sql_query("UPDATE password_resets SET expires_at = now() - interval '1 minute'")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let res = reset(token, "yet another long passphrase").await;
    assert_eq!(
        error_code(res, StatusCode::BAD_REQUEST).await,
        "invalid_reset_token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_when_idle_too_long_and_at_their_absolute_expiry() {
    use diesel_async::RunQueryDsl;
    let app = crate::helpers::spawn_app_with(&[
        ("BIZ__SECURITY__SESSION_IDLE_TIMEOUT_MINUTES", "30"),
        ("BIZ__SECURITY__SESSION_ABSOLUTE_TIMEOUT_HOURS", "12"),
    ])
    .await;
    let erin = app.signup("erin@example.com", "Erin Co").await;
    let token = |v: Value| v["token"].as_str().unwrap().to_owned();
    let idle = token(
        app.login("erin@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    );
    let old = token(
        app.login("erin@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap(),
    );
    let hash = |t: &str| biz_core::crypto::tokens::hash(t);
    let mut conn = biz_core::db::conn(&app.pool).await.unwrap();
    // Used 29 minutes ago: still live (and touched again). 31 minutes: over.
    let set_seen = |minutes: i64, t: &str| {
        diesel::sql_query(format!(
            "UPDATE sessions SET last_seen_at = now() - interval '{minutes} minutes' WHERE token_hash = '{}'",
            hash(t)
        ))
    };
    set_seen(29, &idle).execute(&mut conn).await.unwrap();
    assert_eq!(app.get("/api/v1/me", &idle).await.status(), StatusCode::OK);
    set_seen(31, &idle).execute(&mut conn).await.unwrap();
    assert_eq!(
        app.get("/api/v1/me", &idle).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The absolute expiry: 12 hours after sign-in, used or not.
    assert_eq!(app.get("/api/v1/me", &old).await.status(), StatusCode::OK);
    diesel::sql_query(format!(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE token_hash = '{}'",
        hash(&old)
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        app.get("/api/v1/me", &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // New sessions get the configured absolute lifetime.
    #[derive(diesel::QueryableByName)]
    struct Hours {
        #[diesel(sql_type = diesel::sql_types::Double)]
        hours: f64,
    }
    let h: Hours = diesel::sql_query(format!(
        "SELECT EXTRACT(EPOCH FROM expires_at - created_at)::float8 / 3600 AS hours FROM sessions WHERE token_hash = '{}'",
        hash(&erin.token)
    ))
    .get_result(&mut conn)
    .await
    .unwrap();
    assert!((h.hours - 12.0).abs() < 0.01, "{}", h.hours);
}
