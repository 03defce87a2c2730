//! Sync runs: the record of truth for every sync, whatever happens to its job in Redis.
//!
//! A run is `queued` until a worker claims it (`running`, with a lease it keeps renewing), then
//! `succeeded` or `failed`; a transient error puts it back to `queued` with a later
//! `next_attempt_at`. Every write a worker makes while running is conditional on still holding
//! the lease, so a worker that lost its run (it stalled, another took over) cannot overwrite the
//! new holder's progress. See docs/JOBS.md.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text, Timestamptz};
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::sync_runs;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = sync_runs)]
pub struct SyncRun {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub progress: Value,
    pub checkpoint: Value,
    pub attempts: i32,
    pub max_attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl SyncRun {
    pub fn is_active(&self) -> bool {
        self.status == "queued" || self.status == "running"
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = sync_runs)]
struct NewSyncRun<'a> {
    id: Uuid,
    organization_id: Uuid,
    integration_id: Uuid,
    mode: &'a str,
    trigger: &'a str,
    max_attempts: i32,
}

/// Creates a queued run, unless the integration already has a queued or running one (a partial
/// unique index allows one): then that run is returned and `created` is false.
#[tracing::instrument(skip(conn))]
pub async fn create_or_existing(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    mode: &str,
    trigger: &str,
    max_attempts: i32,
) -> Result<(SyncRun, bool), DbError> {
    // Two racing requests: one insert wins, the other finds nothing to insert and reads the
    // winner. If the winner finished in between, try again.
    for _ in 0..3 {
        let inserted = diesel::insert_into(sync_runs::table)
            .values(&NewSyncRun {
                id: Uuid::new_v4(),
                organization_id,
                integration_id,
                mode,
                trigger,
                max_attempts,
            })
            .on_conflict_do_nothing()
            .returning(SyncRun::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        if let Some(run) = inserted {
            return Ok((run, true));
        }
        let existing = sync_runs::table
            .filter(sync_runs::integration_id.eq(integration_id))
            .filter(sync_runs::organization_id.eq(organization_id))
            .filter(sync_runs::status.eq_any(["queued", "running"]))
            .select(SyncRun::as_select())
            .first(conn)
            .await
            .optional()?;
        if let Some(run) = existing {
            return Ok((run, false));
        }
    }
    Err(DbError::Query(diesel::result::Error::NotFound))
}

#[tracing::instrument(skip(conn))]
pub async fn find(
    conn: &mut Conn,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Option<SyncRun>, DbError> {
    Ok(sync_runs::table
        .filter(sync_runs::organization_id.eq(organization_id))
        .filter(sync_runs::id.eq(id))
        .select(SyncRun::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// Workers load the run a job names by id alone; the row carries its organisation.
#[tracing::instrument(skip(conn))]
pub async fn find_for_job(conn: &mut Conn, id: Uuid) -> Result<Option<SyncRun>, DbError> {
    Ok(sync_runs::table
        .find(id)
        .select(SyncRun::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// An integration's runs, newest first, `limit` at a time; `before` is the last run of the
/// previous page.
#[tracing::instrument(skip(conn))]
pub async fn list_for_integration(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<SyncRun>, DbError> {
    let mut query = sync_runs::table
        .filter(sync_runs::organization_id.eq(organization_id))
        .filter(sync_runs::integration_id.eq(integration_id))
        .into_boxed();
    if let Some((at, id)) = before {
        query = query.filter(
            sync_runs::created_at
                .lt(at)
                .or(sync_runs::created_at.eq(at).and(sync_runs::id.lt(id))),
        );
    }
    Ok(query
        .order((sync_runs::created_at.desc(), sync_runs::id.desc()))
        .limit(limit)
        .select(SyncRun::as_select())
        .load(conn)
        .await?)
}

/// Counts of an organisation's runs by status, for the jobs summary.
#[tracing::instrument(skip(conn))]
pub async fn status_counts(
    conn: &mut Conn,
    organization_id: Uuid,
) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sync_runs::table
        .filter(sync_runs::organization_id.eq(organization_id))
        .group_by(sync_runs::status)
        .select((sync_runs::status, diesel::dsl::count_star()))
        .load(conn)
        .await?)
}

/// Records that the run's job was pushed to Redis, to become due at `due` (now, or after a
/// delay). The sweeper measures "not taken in time" from then.
#[tracing::instrument(skip(conn))]
pub async fn mark_enqueued(conn: &mut Conn, id: Uuid, due: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(sync_runs::table.find(id))
        .set(sync_runs::enqueued_at.eq(due))
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes a run for `owner`: a queued run that is due, or a running run whose lease lapsed (its
/// worker died). Counts an attempt. `None` when the run is not there to take.
#[tracing::instrument(skip(conn))]
pub async fn claim(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    lease_seconds: i32,
) -> Result<Option<SyncRun>, DbError> {
    Ok(diesel::sql_query(
        "UPDATE sync_runs
            SET status = 'running', lease_owner = $2,
                lease_expires_at = now() + make_interval(secs => $3),
                attempts = attempts + 1,
                started_at = COALESCE(started_at, now()),
                updated_at = now()
          WHERE id = $1
            AND ((status = 'queued' AND next_attempt_at <= now())
              OR (status = 'running' AND lease_expires_at < now()))
      RETURNING *",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Integer, _>(lease_seconds)
    .get_result(conn)
    .await
    .optional()?)
}

/// Extends the lease. False when `owner` no longer holds the run: stop working on it.
#[tracing::instrument(skip(conn))]
pub async fn renew_lease(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    lease_seconds: i32,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE sync_runs SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
          WHERE id = $1 AND status = 'running' AND lease_owner = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Integer, _>(lease_seconds)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Saves progress and checkpoint after a stored page; call it in the page's transaction. False
/// when the lease was lost, and the caller must roll back.
#[tracing::instrument(skip(conn, progress, checkpoint))]
pub async fn save_progress(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    progress: &Value,
    checkpoint: &Value,
) -> Result<bool, DbError> {
    let n = diesel::update(sync_runs::table.find(id))
        .filter(sync_runs::status.eq("running"))
        .filter(sync_runs::lease_owner.eq(owner))
        .set((
            sync_runs::progress.eq(progress),
            sync_runs::checkpoint.eq(checkpoint),
            sync_runs::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Saves one resource's entries of the progress and the checkpoint (`key`), leaving the other
/// resources' as they are: concurrent walks of different resources in one run each save only
/// what they have stored. Same lease rule as [`save_progress`].
#[tracing::instrument(skip(conn, progress, checkpoint))]
pub async fn save_resource_progress(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    key: &str,
    progress: &Value,
    checkpoint: &Value,
) -> Result<bool, DbError> {
    let n = diesel::sql_query(
        "UPDATE sync_runs
            SET progress = jsonb_set(COALESCE(progress, '{}'), ARRAY[$3], $4, true),
                checkpoint = jsonb_set(COALESCE(checkpoint, '{}'), ARRAY[$3], $5, true),
                updated_at = now()
          WHERE id = $1 AND status = 'running' AND lease_owner = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<diesel::sql_types::Text, _>(owner)
    .bind::<diesel::sql_types::Text, _>(key)
    .bind::<diesel::sql_types::Jsonb, _>(progress)
    .bind::<diesel::sql_types::Jsonb, _>(checkpoint)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// How a running run ends or pauses.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    Succeeded,
    /// Back to `queued`, due at `at`; the error stays readable meanwhile.
    RetryAt {
        at: DateTime<Utc>,
        code: &'a str,
        message: &'a str,
    },
    Failed {
        code: &'a str,
        message: &'a str,
    },
    /// Given back unfinished (shutdown): queued again now, and the attempt does not count.
    HandedBack,
}

/// Applies `outcome` if `owner` still holds the run. False when it does not.
#[tracing::instrument(skip(conn))]
pub async fn finish(
    conn: &mut Conn,
    id: Uuid,
    owner: &str,
    outcome: Outcome<'_>,
) -> Result<bool, DbError> {
    let (status, attempts_delta, next_at, code, message, finished) = match outcome {
        Outcome::Succeeded => ("succeeded", 0, None, None, None, true),
        Outcome::RetryAt { at, code, message } => {
            ("queued", 0, Some(at), Some(code), Some(message), false)
        }
        Outcome::Failed { code, message } => ("failed", 0, None, Some(code), Some(message), true),
        Outcome::HandedBack => ("queued", -1, Some(Utc::now()), None, None, false),
    };
    let n = diesel::sql_query(
        "UPDATE sync_runs
            SET status = $3,
                attempts = GREATEST(attempts + $4, 0),
                next_attempt_at = COALESCE($5, next_attempt_at),
                error_code = CASE WHEN $3 = 'succeeded' THEN NULL ELSE COALESCE($6, error_code) END,
                error = CASE WHEN $3 = 'succeeded' THEN NULL ELSE COALESCE($7, error) END,
                finished_at = CASE WHEN $8 THEN now() ELSE NULL END,
                lease_owner = NULL, lease_expires_at = NULL,
                enqueued_at = CASE WHEN $3 = 'queued' THEN NULL ELSE enqueued_at END,
                updated_at = now()
          WHERE id = $1 AND status = 'running' AND lease_owner = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(id)
    .bind::<Text, _>(owner)
    .bind::<Text, _>(status)
    .bind::<Integer, _>(attempts_delta)
    .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(next_at)
    .bind::<diesel::sql_types::Nullable<Text>, _>(code)
    .bind::<diesel::sql_types::Nullable<Text>, _>(message)
    .bind::<diesel::sql_types::Bool, _>(finished)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Forgets a claimed enqueue that did not happen (Redis was away), so the next sweep retries.
#[tracing::instrument(skip(conn))]
pub async fn clear_enqueued(conn: &mut Conn, id: Uuid) -> Result<(), DbError> {
    diesel::update(sync_runs::table.find(id))
        .set(sync_runs::enqueued_at.eq(None::<DateTime<Utc>>))
        .execute(conn)
        .await?;
    Ok(())
}

/// A run whose job must be (re)pushed.
#[derive(Debug, Clone, QueryableByName)]
pub struct Stalled {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub integration_id: Uuid,
    #[diesel(sql_type = Text)]
    pub mode: String,
    #[diesel(sql_type = Timestamptz)]
    pub next_attempt_at: DateTime<Utc>,
}

/// The sweeper's query: queued runs that are due and were not pushed (or not taken) within
/// `requeue_after_seconds`, and running runs whose lease lapsed and that were not pushed since.
/// Marks them enqueued in the same statement, so concurrent sweepers split the work.
#[tracing::instrument(skip(conn))]
pub async fn claim_stalled(
    conn: &mut Conn,
    requeue_after_seconds: i32,
    lease_seconds: i32,
    limit: i64,
) -> Result<Vec<Stalled>, DbError> {
    Ok(diesel::sql_query(
        "UPDATE sync_runs r SET enqueued_at = now()
          WHERE r.id IN (
                SELECT id FROM sync_runs
                 WHERE (status = 'queued' AND next_attempt_at <= now()
                        AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => $1)))
                    OR (status = 'running' AND lease_expires_at < now()
                        AND (enqueued_at IS NULL OR enqueued_at < now() - make_interval(secs => $2)))
                 ORDER BY next_attempt_at
                 LIMIT $3
                   FOR UPDATE SKIP LOCKED)
      RETURNING r.id, r.integration_id, r.mode, r.next_attempt_at",
    )
    .bind::<Integer, _>(requeue_after_seconds)
    .bind::<Integer, _>(lease_seconds)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?)
}

/// An organisation's runs in any of `statuses`, newest first.
#[tracing::instrument(skip(conn))]
pub async fn list_for_org(
    conn: &mut Conn,
    organization_id: Uuid,
    statuses: &[&str],
    limit: i64,
) -> Result<Vec<SyncRun>, DbError> {
    Ok(sync_runs::table
        .filter(sync_runs::organization_id.eq(organization_id))
        .filter(sync_runs::status.eq_any(statuses))
        .order((sync_runs::created_at.desc(), sync_runs::id.desc()))
        .limit(limit)
        .select(SyncRun::as_select())
        .load(conn)
        .await?)
}
