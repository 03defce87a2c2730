//! Queueing stored webhook events off the request path. A handler stores the event (the
//! durable part, before the 2xx) and hands its id here; this task pushes ids to the webhook
//! queue in batches (up to 500, or whatever arrived within 5 ms) with one round trip and one
//! wake-up. If Redis is away, or the hand-off queue is full, the events' enqueue time is cleared
//! and the workers' sweeper queues them: nothing stored is lost, only delayed.

use std::time::Duration;

use biz_core::db::{self, webhook_events};
use biz_core::jobs::{ProcessWebhookEvent, Producer};
use tokio::sync::mpsc;
use uuid::Uuid;

const BATCH: usize = 500;
const LINGER: Duration = Duration::from_millis(5);

#[derive(Clone)]
pub struct Enqueuer {
    tx: mpsc::Sender<Uuid>,
}

impl Enqueuer {
    /// Starts the batching task on the current runtime.
    pub fn start(producer: Producer, pool: db::Pool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Uuid>(10_000);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                let deadline = tokio::time::Instant::now() + LINGER;
                while batch.len() < BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(id)) => batch.push(id),
                        _ => break,
                    }
                }
                let jobs = batch
                    .iter()
                    .map(|id| ProcessWebhookEvent { event_row_id: *id })
                    .collect();
                if let Err(e) = producer.push_bulk(jobs).await {
                    tracing::warn!(error = %e, events = batch.len(), "queue unavailable; the sweeper will queue these events");
                    clear(&pool, &batch).await;
                }
                batch.clear();
            }
        });
        Enqueuer { tx }
    }

    /// Hands over a stored event. Never waits: a full hand-off queue leaves it to the sweeper.
    pub async fn enqueue(&self, pool: &db::Pool, id: Uuid) {
        if self.tx.try_send(id).is_err() {
            clear(pool, &[id]).await;
        }
    }
}

async fn clear(pool: &db::Pool, ids: &[Uuid]) {
    let Ok(mut conn) = db::conn(pool).await else {
        return;
    };
    for id in ids {
        if let Err(e) = webhook_events::clear_enqueued(&mut conn, *id).await {
            tracing::warn!(error = %e, "could not clear an enqueue time; the sweeper will still find the event later");
        }
    }
}
