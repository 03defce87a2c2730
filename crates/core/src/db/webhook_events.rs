//! Webhook events: stored before the provider is answered, applied by a worker, swept when
//! their job was lost.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use crate::db::schema::webhook_events;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct WebhookEvent {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub provider: String,
    pub external_id: String,
    pub event_type: String,
    pub payload: String,
    pub status: String,
    pub attempts: i32,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = webhook_events)]
pub struct NewWebhookEvent<'a> {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub provider: &'a str,
    pub external_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a str,
    /// Set by the receiver that is about to queue the event (cleared if queueing fails), so the
    /// happy path needs no second write; a receiver that dies in between leaves it to the
    /// sweeper after `requeue_after_seconds`.
    pub enqueued_at: Option<DateTime<Utc>>,
}

/// Stores several events in one statement (the gateway's group commit); returns the ids of the
/// rows inserted, so the events left out are the redeliveries — including a second copy of one
/// event within the same batch.
pub async fn insert_many(
    conn: &mut Conn,
    events: &[NewWebhookEvent<'_>],
) -> Result<Vec<Uuid>, DbError> {
    Ok(diesel::insert_into(webhook_events::table)
        .values(events)
        .on_conflict_do_nothing()
        .returning(webhook_events::id)
        .get_results(conn)
        .await?)
}

/// Forgets an enqueue that did not happen (Redis was away): the next sweep queues the event.
pub async fn clear_enqueued(conn: &mut Conn, id: Uuid) -> Result<(), DbError> {
    diesel::update(webhook_events::table.find(id))
        .set(webhook_events::enqueued_at.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await?;
    Ok(())
}

/// Workers load the event a job names by id; the row carries its organisation.
pub async fn find_for_job(conn: &mut Conn, id: Uuid) -> Result<Option<WebhookEvent>, DbError> {
    Ok(webhook_events::table
        .find(id)
        .select(WebhookEvent::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Marks a pending event processed. False when it was not pending (already done elsewhere).
pub async fn mark_processed(conn: &mut Conn, id: Uuid) -> Result<bool, DbError> {
    Ok(diesel::update(webhook_events::table.find(id))
        .filter(webhook_events::status.eq("pending"))
        .set((
            webhook_events::status.eq("processed"),
            webhook_events::processed_at.eq(Utc::now()),
            webhook_events::error.eq(None::<String>),
        ))
        .execute(conn)
        .await?
        == 1)
}

/// Records a failed attempt; the event stays pending until `max_attempts`, then is `failed`.
pub async fn record_failure(
    conn: &mut Conn,
    id: Uuid,
    error: &str,
    max_attempts: i32,
) -> Result<(), DbError> {
    diesel::sql_query(
        "UPDATE webhook_events
            SET attempts = attempts + 1, error = $2,
                status = CASE WHEN attempts + 1 >= $3 THEN 'failed' ELSE status END
          WHERE id = $1 AND status = 'pending'",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(error)
    .bind::<Integer, _>(max_attempts)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, QueryableByName)]
pub struct Stalled {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
}

/// Pending events never queued, or queued longer than `requeue_after_seconds` ago; marks them
/// enqueued in the same statement so concurrent sweepers split them.
pub async fn claim_stalled(
    conn: &mut Conn,
    requeue_after_seconds: i32,
    limit: i64,
) -> Result<Vec<Stalled>, DbError> {
    Ok(diesel::sql_query(
        "UPDATE webhook_events w SET enqueued_at = now()
          WHERE w.id IN (
                SELECT id FROM webhook_events
                 WHERE status = 'pending'
                   AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => $1))
                 ORDER BY received_at
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED)
      RETURNING w.id",
    )
    .bind::<Integer, _>(requeue_after_seconds)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// Counts by status for one integration: for tests and the jobs summary.
pub async fn status_counts(
    conn: &mut Conn,
    integration_id: Uuid,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(webhook_events::table
        .filter(webhook_events::integration_id.eq(integration_id))
        .group_by(webhook_events::status)
        .select((webhook_events::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}
