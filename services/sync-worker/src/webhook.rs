//! Applying stored webhook events (`process_webhook_event.v1`).
//!
//! The gateway stored the event before answering the provider; here its object is upserted with
//! the event's `created` as its version, in one transaction with marking the event processed.
//! An event older than what a row already holds (delivered out of order, or replayed) changes
//! nothing. A duplicate job finds the event processed and stops.

use std::sync::Arc;
use std::time::Instant;

use apalis::prelude::{BoxDynError, Data};
use biz_core::db::stripe::{object_from_event, upsert};
use biz_core::db::webhook_events::{self, WebhookEvent};
use biz_core::db::{self, DbError};
use biz_core::jobs::{backoff_delay, Job, ProcessWebhookEvent};
use biz_core::metrics::rollup;
use diesel_async::AsyncConnection;

use crate::context::SyncContext;

pub async fn handle(
    job: ProcessWebhookEvent,
    ctx: Data<Arc<SyncContext>>,
) -> Result<(), BoxDynError> {
    let started = Instant::now();
    let name = ProcessWebhookEvent::NAME;
    let mut conn = db::conn(&ctx.pool).await?;
    let Some(event) = webhook_events::find_for_job(&mut conn, job.event_row_id).await? else {
        tracing::warn!(event_row.id = %job.event_row_id, "job for an event that does not exist; dropped");
        return Ok(());
    };
    if event.status != "pending" {
        return Ok(());
    }
    ctx.metrics.started(name);
    let result = match event.provider.as_str() {
        "stripe" => apply_stripe(&mut conn, &event).await,
        "shopify" => crate::shopify_events::apply(&mut conn, &event).await,
        other => Err(ApplyError::Unsupported(other.to_owned())),
    };
    match result {
        Ok(()) => ctx.metrics.succeeded(name, started.elapsed()),
        Err(e) => {
            let max = ctx.settings.jobs.max_attempts;
            webhook_events::record_failure(&mut conn, event.id, &e.to_string(), max).await?;
            if event.attempts + 1 < max {
                let delay = backoff_delay(
                    ctx.backoff(),
                    (event.attempts + 1) as u32,
                    None,
                    &mut fastrand::Rng::new(),
                );
                let _ = ctx.producer.push_after(job, delay).await;
                ctx.metrics.retried(name);
            } else {
                ctx.metrics.failed(name, started.elapsed());
            }
            tracing::warn!(error = %e, event.id = %event.external_id, "webhook event not applied");
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the stored payload is not an event: {0}")]
    Payload(String),
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("no handler for {0} events")]
    Unsupported(String),
}

impl From<diesel::result::Error> for ApplyError {
    fn from(e: diesel::result::Error) -> Self {
        ApplyError::Db(DbError::Query(e))
    }
}

async fn apply_stripe(conn: &mut db::Conn, event: &WebhookEvent) -> Result<(), ApplyError> {
    let payload: serde_json::Value =
        serde_json::from_str(&event.payload).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let row = object_from_event(event.organization_id, event.integration_id, &payload);
    let id = event.id;
    conn.transaction::<_, ApplyError, _>(async move |conn| {
        if let Some(row) = row {
            upsert(conn, std::slice::from_ref(&row)).await?;
            // The object's own day onwards: its history is rebuilt from its current state.
            let day = row
                .created
                .date_naive()
                .pred_opt()
                .unwrap_or(row.created.date_naive());
            rollup::mark_dirty(conn, row.organization_id, day).await?;
        }
        webhook_events::mark_processed(conn, id).await?;
        Ok(())
    })
    .await
}
