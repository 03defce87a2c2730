//! `spawn_app()`: a gateway on a random port over a fresh database (`test_support::TestDb`),
//! with one helper per endpoint.

use std::collections::HashMap;
use std::sync::OnceLock;

use biz_core::db;
use biz_core::settings::Settings;
use gateway::startup::Application;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

fn init_logs(settings: &Settings) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            let _ = biz_core::telemetry::init("gateway-test", settings, &Default::default())
                .map(std::mem::forget);
        }
    });
}

pub struct TestApp {
    pub address: String,
    /// This test's provider simulator.
    pub sim: String,
    pub client: reqwest::Client,
    pub pool: db::Pool,
    pub db_url: String,
    /// What this app was started with: a twin started from it shares its database and Redis.
    pub settings: Settings,
    _db: test_support::TestDb,
}

/// Settings for a test: the test profile plus `overrides` (variable → value).
pub fn test_settings(db_url: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("BIZ_ENV".into(), "test".into()),
        ("DATABASE_URL".into(), db_url.into()),
        ("BIZ__GATEWAY__ADDR".into(), "127.0.0.1:0".into()),
    ]);
    if let Ok(r) = std::env::var("REDIS_URL") {
        vars.insert("REDIS_URL".into(), r);
    }
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    Settings::load_from(&test_support::config_dir(), &vars)
        .expect("test settings load")
        .0
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    // Created and migrated for this test, dropped with it.
    let test_db = test_support::TestDb::new().await;
    let db_url = test_db.url.clone();
    let sim = provider_sim::spawn(42).expect("start the provider simulator");
    // Each test gets its own simulator and its own Redis key prefix (so its own queues).
    let prefix = test_support::key_prefix("bt");
    let shopify_base = format!("{sim}/shopify/{{shop}}");
    let mut all: Vec<(&str, &str)> = vec![
        ("BIZ__PROVIDERS__SHOPIFY_API_BASE", &shopify_base),
        ("BIZ__PROVIDERS__STRIPE_API_BASE", &sim),
        ("BIZ__PROVIDERS__STRIPE_CONNECT_BASE", &sim),
        ("BIZ__PROVIDERS__RESEND_API_BASE", &sim),
        ("RESEND_API_KEY", "re_TestSuiteKey0000001"),
        ("BIZ__REDIS__KEY_PREFIX", &prefix),
    ];
    all.extend_from_slice(overrides);
    let settings = test_settings(&db_url, &all);
    init_logs(&settings);
    let pool = db::pool(&settings.database).expect("pool");
    let app = Application::build(settings.clone()).expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run());
    TestApp {
        address,
        sim,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        pool,
        db_url,
        settings,
        _db: test_db,
    }
}

/// A signed-up user with their first organisation.
#[derive(Debug, Clone)]
pub struct Account {
    pub token: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub email: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A second gateway instance on the same database, Redis and settings; its base URL.
    pub fn twin(&self) -> String {
        self.twin_with(self.settings.clone())
    }

    /// Another gateway instance on `settings` (this app's, changed); its base URL.
    pub fn twin_with(&self, settings: Settings) -> String {
        let app = Application::build(settings).expect("build twin");
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
        address
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    pub async fn signup_raw(&self, body: Value) -> Response {
        self.request(Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await
    }

    pub async fn signup(&self, email: &str, org: &str) -> Account {
        let res = self
            .signup_raw(json!({ "email": email, "password": PASSWORD, "name": "Test Person", "organization_name": org }))
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let body: Value = res.json().await.unwrap();
        Account {
            token: body["token"].as_str().unwrap().to_owned(),
            user_id: body["user"]["id"].as_str().unwrap().parse().unwrap(),
            org_id: body["organization"]["id"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap(),
            email: email.to_owned(),
        }
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// Invites `email` into `org_id` with `role` and has `invitee` accept; returns nothing, asserts.
    pub async fn add_member(&self, admin: &Account, org_id: Uuid, invitee: &Account, role: &str) {
        let res = self
            .post(
                &format!("/api/v1/orgs/{org_id}/invitations"),
                &admin.token,
                json!({ "email": invitee.email, "role": role }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let inv: Value = res.json().await.unwrap();
        let res = self
            .post(
                "/api/v1/invitations/accept",
                &invitee.token,
                json!({ "token": inv["token"] }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK);
    }
}

/// What an authenticator shows for `secret` (base32) `offset_steps` 30-second steps from now.
pub fn totp_code(secret: &str, offset_steps: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .with_account_name("test")
        .build()
        .unwrap();
    let at = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp.generate(at as u64).to_string()
}

/// Asserts the contract's error body and returns its code.
pub async fn error_code(res: Response, status: StatusCode) -> String {
    assert_eq!(res.status(), status, "unexpected status");
    let header_id = res
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .expect("x-request-id header");
    let body: Value = res.json().await.expect("JSON error body");
    let err = &body["error"];
    assert_eq!(
        err["request_id"].as_str(),
        Some(header_id.as_str()),
        "body and header request ids differ"
    );
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    err["code"].as_str().expect("error code").to_owned()
}
