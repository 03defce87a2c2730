//! Group commit for incoming webhook events. Each handler hands its verified event here and
//! waits for the row to be durable before answering 2xx; a dispatcher gathers whatever events
//! are waiting into one multi-row `INSERT … ON CONFLICT DO NOTHING`, one commit for the lot.
//! Nothing lingers on purpose: a lone event is written at once, and under load the events that
//! arrive while the writers are busy form the next batch. A batch that fails is retried row by
//! row, so one bad event cannot cost the others their write.

use std::sync::Arc;

use biz_core::db::{self, webhook_events};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

/// Most events in one statement.
const MAX_BATCH: usize = 256;
/// Batches in flight at once, each on its own pooled connection.
const WRITERS: usize = 4;

/// One event to store, as the handler verified it.
pub struct Incoming {
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub provider: &'static str,
    pub external_id: String,
    pub event_type: String,
    pub payload: String,
}

/// The outcome for one event: its new row's id, `None` for a redelivery, or why it could not
/// be stored.
type Outcome = Result<Option<Uuid>, String>;

struct Pending {
    id: Uuid,
    event: Incoming,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Clone)]
pub struct EventWriter {
    tx: mpsc::Sender<Pending>,
}

impl EventWriter {
    /// Starts the dispatcher on the current runtime.
    pub fn start(pool: db::Pool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(MAX_BATCH * 16);
        tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(WRITERS));
            while let Some(first) = rx.recv().await {
                // Waiting for a free writer is what lets a batch form under load.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let pool = pool.clone();
                tokio::spawn(async move {
                    write(&pool, batch).await;
                    drop(permit);
                });
            }
        });
        EventWriter { tx }
    }

    /// Stores the event; returns once it is durable (`Some(row id)`) or known to be a
    /// redelivery (`None`).
    pub async fn store(&self, event: Incoming) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            id: Uuid::new_v4(),
            event,
            reply,
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| "the event writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the event writer dropped the event".to_owned())?
    }
}

fn row(p: &Pending) -> webhook_events::NewWebhookEvent<'_> {
    webhook_events::NewWebhookEvent {
        id: p.id,
        organization_id: p.event.organization_id,
        integration_id: p.event.integration_id,
        provider: p.event.provider,
        external_id: &p.event.external_id,
        event_type: &p.event.event_type,
        payload: &p.event.payload,
        // About to be queued by the enqueuer; cleared if that fails (see enqueuer.rs).
        enqueued_at: Some(chrono::Utc::now()),
    }
}

async fn write(pool: &db::Pool, batch: Vec<Pending>) {
    let mut conn = match db::conn(pool).await {
        Ok(c) => c,
        Err(e) => {
            let why = format!("no database connection: {e}");
            for p in batch {
                let _ = p.reply.send(Err(why.clone()));
            }
            return;
        }
    };
    let rows: Vec<_> = batch.iter().map(row).collect();
    match webhook_events::insert_many(&mut conn, &rows).await {
        Ok(inserted) => {
            let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
            for p in batch {
                let outcome = inserted.contains(&p.id).then_some(p.id);
                let _ = p.reply.send(Ok(outcome));
            }
        }
        Err(e) if batch.len() > 1 => {
            tracing::warn!(error = %e, events = batch.len(), "a batch of webhook events failed; storing them one by one");
            for p in batch {
                let outcome = webhook_events::insert_many(&mut conn, &[row(&p)])
                    .await
                    .map(|ids| ids.first().copied())
                    .map_err(|e| e.to_string());
                let _ = p.reply.send(outcome);
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p.reply.send(Err(e.to_string()));
            }
        }
    }
}
