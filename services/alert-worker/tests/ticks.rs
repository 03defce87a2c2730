//! The alert tick with two replicas: each period is claimed once and each organisation is
//! evaluated once per period.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use test_support::{redis_url, Process, TestDb};
use uuid::Uuid;

fn replica(db: &TestDb, prefix: &str, name: &str) -> Process {
    let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&db.name);
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", &redis_url()),
        ("BIZ__REDIS__KEY_PREFIX", prefix),
        ("BIZ__JOBS__ALERT_INTERVAL_SECONDS", "2"),
        ("BIZ__JOBS__SCHEDULER_TICK_SECONDS", "1"),
        ("BIZ__JOBS__HEARTBEAT_SECONDS", "1"),
        ("BIZ__JOBS__SHUTDOWN_GRACE_SECONDS", "5"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    test_support::spawn(env!("CARGO_BIN_EXE_alert-worker"), name, &logs, &env)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_queue_each_alert_tick_once() {
    let db = TestDb::new().await;
    let prefix = test_support::key_prefix("at");
    // Two organisations with an active integration, one without any (not evaluated).
    let settings = biz_core::settings::DatabaseSettings {
        url: db.url.clone().into(),
        pool_size: 2,
        acquire_timeout_ms: 5000,
    };
    let pool = biz_core::db::pool(&settings).unwrap();
    let mut conn = biz_core::db::conn(&pool).await.unwrap();
    let mut active = Vec::new();
    for (i, with_integration) in [true, true, false].into_iter().enumerate() {
        let org = Uuid::new_v4();
        biz_core::db::accounts::organizations::insert(&mut conn, org, &format!("Org {i}"))
            .await
            .unwrap();
        if with_integration {
            diesel::sql_query(format!(
                "INSERT INTO integrations (id, organization_id, provider, credentials) VALUES ('{}', '{org}', 'stripe', 'v1:k1:x')",
                Uuid::new_v4()
            ))
            .execute(&mut conn)
            .await
            .unwrap();
            active.push(org.to_string());
        }
    }

    let mut a = replica(&db, &prefix, "alerts-a");
    let mut b = replica(&db, &prefix, "alerts-b");
    tokio::time::sleep(Duration::from_secs(8)).await;
    a.sigterm();
    b.sigterm();
    assert!(
        a.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        a.log_text()
    );
    assert!(
        b.wait_exit(Duration::from_secs(15)).success(),
        "{}",
        b.log_text()
    );

    let claims: Vec<String> = a
        .events("alert tick claimed")
        .into_iter()
        .chain(b.events("alert tick claimed"))
        .map(|l| {
            assert_eq!(l["organizations"], 2);
            l["slot"].as_str().unwrap().to_owned()
        })
        .collect();
    let unique: HashSet<&String> = claims.iter().collect();
    assert!(claims.len() >= 3, "8 s at a 2 s period: {claims:?}");
    assert_eq!(
        unique.len(),
        claims.len(),
        "a tick was claimed twice: {claims:?}"
    );

    let evaluations: Vec<(String, String)> = a
        .events("alert evaluation ran")
        .into_iter()
        .chain(b.events("alert evaluation ran"))
        .map(|l| {
            (
                l["organization.id"].as_str().unwrap().to_owned(),
                l["slot"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let distinct: HashSet<&(String, String)> = evaluations.iter().collect();
    assert_eq!(distinct.len(), evaluations.len(), "an evaluation ran twice");
    assert!(evaluations
        .iter()
        .all(|(org, slot)| active.contains(org) && unique.contains(slot)));
    // Every queued evaluation ran, except any queued in the last instant before the stop,
    // which are still in the queue for the next replica.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut r = client.get_multiplexed_async_connection().await.unwrap();
    let queue = format!("{prefix}:q:evaluate_alerts.v1");
    let (waiting, scheduled): (usize, usize) = redis::pipe()
        .cmd("LLEN")
        .arg(format!("{queue}:active"))
        .cmd("ZCARD")
        .arg(format!("{queue}:scheduled"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(evaluations.len() + waiting + scheduled, claims.len() * 2);
}
