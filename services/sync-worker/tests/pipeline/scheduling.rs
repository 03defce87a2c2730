//! Scheduled syncs with several replicas: each tick is claimed by exactly one.

use std::collections::HashSet;
use std::time::Duration;

use biz_core::db::{self, sync_runs};

use crate::harness::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn with_two_workers_each_scheduled_tick_produces_exactly_one_run() {
    let h = Harness::new(50).await;
    h.sql("UPDATE integrations SET sync_interval_seconds = 2, next_sync_at = now()")
        .await;
    let mut a = h.worker("replica-a", &[]);
    let mut b = h.worker("replica-b", &[]);
    tokio::time::sleep(Duration::from_secs(9)).await;
    a.sigterm();
    b.sigterm();
    assert!(a.wait_exit(Duration::from_secs(15)).success());
    assert!(b.wait_exit(Duration::from_secs(15)).success());

    let claims: Vec<String> = a
        .log_lines()
        .into_iter()
        .chain(b.log_lines())
        .filter(|l| l["message"] == "scheduled sync claimed")
        .map(|l| l["slot"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = claims.iter().collect();
    assert!(
        claims.len() >= 3,
        "ticks over 9 s at a 2 s interval: {claims:?}"
    );
    assert_eq!(
        unique.len(),
        claims.len(),
        "a tick claimed twice: {claims:?}"
    );

    let mut conn = db::conn(&h.pool).await.unwrap();
    let runs = sync_runs::list_for_integration(&mut conn, h.org_id, h.integration_id, None, 100)
        .await
        .unwrap();
    let scheduled: Vec<_> = runs.iter().filter(|r| r.trigger == "schedule").collect();
    assert_eq!(scheduled.len(), claims.len(), "one run per claimed tick");
    assert!(scheduled.iter().all(|r| r.mode == "incremental"));
    assert!(
        scheduled.iter().filter(|r| r.status == "succeeded").count() >= claims.len() - 1,
        "{scheduled:?}"
    );
}
