//! Secrets at rest: after a scenario that creates every kind of secret, a full `pg_dump` of the
//! database holds none of them in plain text.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// The whole database as `pg_dump --data-only` prints it.
pub async fn database_text(app: &crate::helpers::TestApp) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.db_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_dump_holds_no_password_token_or_key_in_plain_text() {
    let app = spawn_app().await;
    let password = "dump-test password 7f3a9c";
    let res = app
        .signup_raw(json!({ "email": "dump@example.com", "password": password, "name": "Dump", "organization_name": "Dump Co" }))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let signup_token = body["token"].as_str().unwrap().to_owned();
    let org = body["organization"]["id"].as_str().unwrap().to_owned();
    let login: Value = app
        .login("dump@example.com", password)
        .await
        .json()
        .await
        .unwrap();
    let login_token = login["token"].as_str().unwrap().to_owned();
    let key: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &login_token,
            json!({ "name": "k", "role": "admin" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let api_key = key["key"].as_str().unwrap().to_owned();
    let inv: Value = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            &login_token,
            json!({ "email": "new@example.com", "role": "member" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let invitation_token = inv["token"].as_str().unwrap().to_owned();

    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &app.db_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    // The dump is real: it holds the rows.
    assert!(dump.contains("dump@example.com"));
    assert!(dump.contains("$argon2id$"));
    for (what, secret) in [
        ("password", password.to_owned()),
        ("signup session token", signup_token.clone()),
        ("login session token", login_token.clone()),
        ("API key", api_key.clone()),
        ("invitation token", invitation_token.clone()),
    ] {
        assert!(!dump.contains(&secret), "the dump contains the {what}");
        // Nor the random part alone, should a prefix ever be stripped before storing.
        assert!(
            !dump.contains(&secret[4..]),
            "the dump contains the {what} without its prefix"
        );
    }
}
