//! The pipeline harness: a fresh database, a provider simulator, an organisation with a Stripe
//! integration, and real `sync-worker` processes started from the built binary, each with its
//! own Redis key prefix per test so tests run in parallel.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use biz_core::crypto::KeyRing;
use biz_core::db::{self, integrations, sync_runs};
use biz_core::jobs::{Producer, SyncIntegration, SyncMode};
use biz_core::settings::Settings;
use chrono::Utc;
use secrecy::SecretString;
use serde_json::{json, Value};
use test_support::{config_dir, redis_url, Process, TestDb, ENCRYPTION_KEY};
use uuid::Uuid;

pub const API_KEY: &str = "sk_test_51PipelineHarnessKey000001";

pub struct Harness {
    /// Dropped with the harness, and the database with it.
    _db: TestDb,
    pub db_url: String,
    pub pool: db::Pool,
    pub sim: String,
    pub prefix: String,
    pub producer: Producer,
    pub org_id: Uuid,
    pub integration_id: Uuid,
    http: reqwest::Client,
    logs: PathBuf,
}

/// Worker settings for tests: short leases, heartbeats and backoff, so recovery takes seconds.
pub const FAST: &[(&str, &str)] = &[
    ("BIZ__JOBS__LEASE_SECONDS", "3"),
    ("BIZ__JOBS__SWEEP_INTERVAL_SECONDS", "1"),
    ("BIZ__JOBS__REQUEUE_AFTER_SECONDS", "5"),
    ("BIZ__JOBS__HEARTBEAT_SECONDS", "1"),
    ("BIZ__JOBS__MISSED_HEARTBEATS", "3"),
    ("BIZ__JOBS__BACKOFF_BASE_MS", "300"),
    ("BIZ__JOBS__BACKOFF_MAX_MS", "2000"),
    ("BIZ__JOBS__SCHEDULER_TICK_SECONDS", "1"),
    ("BIZ__JOBS__SHUTDOWN_GRACE_SECONDS", "10"),
];

impl Harness {
    /// A fresh world whose Stripe account holds `customers` customers.
    pub async fn new(customers: usize) -> Self {
        let db = TestDb::new().await;
        let db_url = db.url.clone();
        let prefix = test_support::key_prefix("pt");
        let sim = provider_sim::spawn(42).expect("simulator");
        let settings = settings(&db_url, &prefix, &sim);
        let pool = db::pool(&settings.database).unwrap();
        let conn = biz_core::jobs::redis_connection(&settings.redis).unwrap();
        let producer = Producer::new(conn, &settings.redis, &settings.jobs);

        let org_id = Uuid::new_v4();
        let integration_id = Uuid::new_v4();
        let keys = KeyRing::new("k1", &SecretString::from(ENCRYPTION_KEY.to_owned()), 1000);
        let sealed = keys
            .encrypt(
                &json!({ "api_key": API_KEY }).to_string(),
                &integrations::credentials_context(integration_id),
            )
            .unwrap();
        {
            let mut conn = db::conn(&pool).await.unwrap();
            db::accounts::organizations::insert(&mut conn, org_id, "Pipeline Co")
                .await
                .unwrap();
            integrations::insert(
                &mut conn,
                &integrations::NewIntegration {
                    id: integration_id,
                    organization_id: org_id,
                    provider: "stripe",
                    display_name: "Stripe",
                    external_account_id: None,
                    credentials: Some(&sealed),
                    settings: &json!({}),
                    sync_interval_seconds: 900,
                    next_sync_at: None,
                    created_by: None,
                },
            )
            .await
            .unwrap();
        }
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&db.name);
        std::fs::create_dir_all(&logs).unwrap();
        // For reading along while a test runs: where its simulator is.
        std::fs::write(logs.join("simulator.url"), &sim).unwrap();
        let h = Harness {
            _db: db,
            db_url,
            pool,
            sim,
            prefix,
            producer,
            org_id,
            integration_id,
            http: reqwest::Client::new(),
            logs,
        };
        h.sim_config(json!({ "stripe": { "customers": customers } }))
            .await;
        h
    }

    /// Starts a `sync-worker` process with the fast test settings plus `extra`.
    pub fn worker(&self, name: &str, extra: &[(&str, &str)]) -> Process {
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.db_url.clone()),
            ("REDIS_URL".into(), redis_url()),
            ("BIZ__REDIS__KEY_PREFIX".into(), self.prefix.clone()),
            ("BIZ__PROVIDERS__STRIPE_API_BASE".into(), self.sim.clone()),
            (
                "BIZ__PROVIDERS__SHOPIFY_API_BASE".into(),
                format!("{}/shopify/{{shop}}", self.sim),
            ),
            ("SHOPIFY_CLIENT_ID".into(), SHOPIFY_CLIENT_ID.into()),
            ("SHOPIFY_CLIENT_SECRET".into(), SHOPIFY_CLIENT_SECRET.into()),
        ];
        env.extend(
            FAST.iter()
                .chain(extra)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        test_support::spawn(env!("CARGO_BIN_EXE_sync-worker"), name, &self.logs, &env)
    }

    /// A producer on another Redis (the outage test's own server).
    pub fn producer_for(&self, redis_url: &str) -> Producer {
        let mut settings = settings(&self.db_url, &self.prefix, &self.sim);
        settings.redis.url = SecretString::from(redis_url.to_owned());
        let conn = biz_core::jobs::redis_connection(&settings.redis).unwrap();
        Producer::new(conn, &settings.redis, &settings.jobs)
    }

    /// Another Stripe integration in the same organisation, on the same account.
    pub async fn add_integration(&self) -> Uuid {
        let id = Uuid::new_v4();
        let keys = KeyRing::new("k1", &SecretString::from(ENCRYPTION_KEY.to_owned()), 1000);
        let sealed = keys
            .encrypt(
                &json!({ "api_key": API_KEY }).to_string(),
                &integrations::credentials_context(id),
            )
            .unwrap();
        let mut conn = db::conn(&self.pool).await.unwrap();
        integrations::insert(
            &mut conn,
            &integrations::NewIntegration {
                id,
                organization_id: self.org_id,
                provider: "stripe",
                display_name: "Stripe 2",
                external_account_id: None,
                credentials: Some(&sealed),
                settings: &json!({}),
                sync_interval_seconds: 900,
                next_sync_at: None,
                created_by: None,
            },
        )
        .await
        .unwrap();
        id
    }

    /// The gateway, in this process, on the same database, queues and simulator.
    pub async fn gateway(&self) -> String {
        self.gateway_on_redis(None).await
    }

    /// The gateway, with its queue on another Redis (`Some(url)`), e.g. one that is down.
    pub async fn gateway_on_redis(&self, redis_url: Option<&str>) -> String {
        // The gateway registers webhook endpoints at its public URL: make that its real address.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut settings = settings(&self.db_url, &self.prefix, &self.sim);
        settings.gateway.addr = format!("127.0.0.1:{port}");
        settings.gateway.public_url = format!("http://127.0.0.1:{port}");
        if let Some(url) = redis_url {
            settings.redis.url = SecretString::from(url.to_owned());
            // Sign-in is refused while the rate limiter's Redis is away (it fails closed for
            // AUTH); these tests are about the queue, so the limiter stays in this process.
            settings.rate_limit.backend = biz_core::settings::RateLimitBackend::Memory;
        }
        let app = gateway::startup::Application::build(settings).expect("gateway");
        let url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run());
        url
    }

    /// Signs up through `gateway` and connects Stripe with `api_key`, as a user would.
    pub async fn connect_through_api(
        &self,
        gateway: &str,
        email: &str,
        api_key: &str,
    ) -> ApiAccount {
        let http = reqwest::Client::new();
        let signup: Value = http
            .post(format!("{gateway}/api/v1/auth/signup"))
            .json(&json!({ "email": email, "password": "correct horse battery staple", "name": "Owner", "organization_name": "Pipeline Co" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = signup["token"].as_str().unwrap().to_owned();
        let org = signup["organization"]["id"].as_str().unwrap().to_owned();
        let res = http
            .post(format!("{gateway}/api/v1/orgs/{org}/integrations"))
            .bearer_auth(&token)
            .json(&json!({ "provider": "stripe", "credentials": { "api_key": api_key } }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), reqwest::StatusCode::CREATED);
        let connected = res.json().await.unwrap();
        ApiAccount {
            http,
            token,
            org,
            connected,
        }
    }

    pub async fn sim_config(&self, config: Value) {
        let res = self
            .http
            .post(format!("{}/_sim/config", self.sim))
            .json(&config)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "sim config refused: {}",
            res.text().await.unwrap()
        );
    }

    /// The simulator's log of requests whose path starts with `prefix`.
    pub async fn sim_requests(&self, prefix: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_sim/requests?path_prefix={prefix}", self.sim))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().unwrap().clone()
    }

    /// Queues a run as the gateway does: the row, then the job.
    pub async fn start_run(&self, mode: SyncMode) -> Uuid {
        self.start_run_for(self.integration_id, mode).await
    }

    /// [`Self::start_run`] for another integration of the organisation.
    pub async fn start_run_for(&self, integration_id: Uuid, mode: SyncMode) -> Uuid {
        let mut conn = db::conn(&self.pool).await.unwrap();
        let (run, created) = sync_runs::create_or_existing(
            &mut conn,
            self.org_id,
            integration_id,
            mode.as_str(),
            "manual",
            5,
        )
        .await
        .unwrap();
        assert!(created);
        self.producer
            .push(SyncIntegration {
                integration_id,
                mode,
                sync_run_id: run.id,
            })
            .await
            .unwrap();
        sync_runs::mark_enqueued(&mut conn, run.id, Utc::now())
            .await
            .unwrap();
        run.id
    }

    pub async fn run(&self, id: Uuid) -> sync_runs::SyncRun {
        let mut conn = db::conn(&self.pool).await.unwrap();
        sync_runs::find(&mut conn, self.org_id, id)
            .await
            .unwrap()
            .unwrap()
    }

    /// Polls the run until `done` holds or `timeout` passes (then panics with the run).
    pub async fn wait_for(
        &self,
        id: Uuid,
        timeout: Duration,
        done: impl Fn(&sync_runs::SyncRun) -> bool,
    ) -> sync_runs::SyncRun {
        let start = Instant::now();
        loop {
            let run = self.run(id).await;
            if done(&run) {
                return run;
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting; run is {run:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn customer_ids(&self) -> Vec<String> {
        self.ids("customer").await
    }

    /// Stored ids of one object type, sorted.
    pub async fn ids(&self, object_type: &str) -> Vec<String> {
        let mut conn = db::conn(&self.pool).await.unwrap();
        db::stripe::ids(&mut conn, self.org_id, self.integration_id, object_type)
            .await
            .unwrap()
    }

    /// Every synced object type's stored ids.
    pub async fn all_ids(&self) -> std::collections::BTreeMap<&'static str, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        for t in db::stripe::OBJECT_TYPES {
            out.insert(t, self.ids(t).await);
        }
        out
    }

    /// A stored metric series of the harness' organisation: (day, dimension) → value, zeros out.
    pub async fn metric(
        &self,
        key: &str,
    ) -> std::collections::BTreeMap<(chrono::NaiveDate, String), i64> {
        let mut conn = db::conn(&self.pool).await.unwrap();
        let from = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let to = chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap();
        biz_core::metrics::rollup::series(&mut conn, self.org_id, key, from, to)
            .await
            .unwrap()
            .into_iter()
            .map(|p| {
                (
                    (p.day, p.dimension),
                    p.value.split('.').next().unwrap().parse::<i64>().unwrap(),
                )
            })
            .filter(|(_, v)| *v != 0)
            .collect()
    }

    /// Every Stripe request the simulator served.
    pub async fn stripe_requests(&self) -> Vec<Value> {
        self.sim_requests("/v1/").await
    }

    pub async fn sql(&self, query: &str) {
        use diesel_async::RunQueryDsl;
        let mut conn = db::conn(&self.pool).await.unwrap();
        diesel::sql_query(query).execute(&mut conn).await.unwrap();
    }
}

/// The simulator's Shopify app.
pub const SHOPIFY_CLIENT_ID: &str = "sim-shopify-client-id";
pub const SHOPIFY_CLIENT_SECRET: &str = "sim-shopify-client-secret";

fn settings(db_url: &str, prefix: &str, sim: &str) -> Settings {
    let vars = std::collections::HashMap::from([
        ("ENCRYPTION_KEY".to_owned(), ENCRYPTION_KEY.to_owned()),
        (
            "SESSION_SECRET".to_owned(),
            "pipeline-test-session-secret-0123456789".to_owned(),
        ),
        ("BIZ__GATEWAY__ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("BIZ_ENV".to_owned(), "test".to_owned()),
        ("DATABASE_URL".to_owned(), db_url.to_owned()),
        ("REDIS_URL".to_owned(), redis_url()),
        ("BIZ__REDIS__KEY_PREFIX".to_owned(), prefix.to_owned()),
        ("BIZ__PROVIDERS__STRIPE_API_BASE".to_owned(), sim.to_owned()),
        (
            "BIZ__PROVIDERS__SHOPIFY_API_BASE".to_owned(),
            format!("{sim}/shopify/{{shop}}"),
        ),
        ("SHOPIFY_CLIENT_ID".to_owned(), SHOPIFY_CLIENT_ID.to_owned()),
        (
            "SHOPIFY_CLIENT_SECRET".to_owned(),
            SHOPIFY_CLIENT_SECRET.to_owned(),
        ),
    ]);
    Settings::load_from(&config_dir(), &vars).unwrap().0
}

/// An organisation made through the gateway's API, with Stripe connected.
pub struct ApiAccount {
    pub http: reqwest::Client,
    pub token: String,
    pub org: String,
    /// The `POST …/integrations` answer.
    pub connected: Value,
}
