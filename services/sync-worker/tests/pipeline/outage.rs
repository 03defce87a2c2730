//! Redis dies and comes back (empty, as a restarted Redis without persistence does) while a
//! worker runs: the worker recovers without a restart and every run accepted before or during
//! the outage completes.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use biz_core::db::{self, sync_runs};
use biz_core::jobs::{Producer, SyncIntegration, SyncMode};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::harness::Harness;

/// A Redis server of this test's own, so killing it disturbs no other test.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn queue_run(h: &Harness, producer: &Producer, integration_id: Uuid) -> (Uuid, bool) {
    let mut conn = db::conn(&h.pool).await.unwrap();
    let (run, _) =
        sync_runs::create_or_existing(&mut conn, h.org_id, integration_id, "full", "manual", 5)
            .await
            .unwrap();
    let job = SyncIntegration {
        integration_id,
        mode: SyncMode::Full,
        sync_run_id: run.id,
    };
    let pushed = tokio::time::timeout(Duration::from_secs(3), producer.push(job)).await;
    let pushed = matches!(pushed, Ok(Ok(())));
    if pushed {
        sync_runs::mark_enqueued(&mut conn, run.id, Utc::now())
            .await
            .unwrap();
    }
    (run.id, pushed)
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_recover_from_a_redis_restart_and_no_accepted_run_is_lost() {
    // About 40 pages at 40 ms each: every run takes a few seconds.
    let h = Harness::new(100).await;
    h.sim_config(json!({ "stripe": { "customers": 100 }, "latency_ms": 40 }))
        .await;
    let second = h.add_integration().await;
    let third = h.add_integration().await;
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let producer = h.producer_for(&redis.url());
    let mut worker = h.worker(
        "survivor",
        &[
            ("REDIS_URL", &redis.url()),
            ("BIZ__JOBS__SYNC_CONCURRENCY", "1"),
        ],
    );

    // A long run is going; a second waits behind it in Redis.
    let (long, pushed) = queue_run(&h, &producer, h.integration_id).await;
    assert!(pushed);
    h.wait_for(long, Duration::from_secs(30), |r| r.status == "running")
        .await;
    let (waiting, pushed) = queue_run(&h, &producer, second).await;
    assert!(pushed);

    // Redis dies, taking the waiting job with it. A run requested during the outage is
    // accepted (its row is written) although its job cannot be queued.
    redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (during, pushed) = queue_run(&h, &producer, third).await;
    assert!(!pushed, "Redis is down");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Redis comes back empty on the same port.
    redis = PrivateRedis::start(port);
    for id in [long, waiting, during] {
        let run = h
            .wait_for(id, Duration::from_secs(90), |r| r.status == "succeeded")
            .await;
        assert_eq!(run.progress["customers"]["stored"], 100, "{run:?}");
    }
    assert!(worker.is_running(), "the worker was never restarted");
    let requeued = worker
        .log_lines()
        .iter()
        .filter(|l| l["message"] == "stalled sync run pushed to the queue again")
        .count();
    assert!(
        requeued >= 2,
        "the sweeper re-queued the lost and the never-queued run"
    );
    drop(redis);
}
