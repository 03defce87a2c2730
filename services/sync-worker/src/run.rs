//! One sync job: claim the run, do the provider's sync from the run's checkpoint, and settle the
//! run (succeeded, retry later with backoff, failed, or handed back at shutdown).
//!
//! The job itself always ends `Ok` once the run is settled: retries are scheduled by us, from
//! PostgreSQL, with backoff, because apalis-redis would otherwise retry on its own schedule and
//! without a persisted attempt count (apalis #372, #497, #554).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{BoxDynError, Data};
use biz_core::db::{self, integrations, sync_runs, DbError};
use biz_core::jobs::{backoff_delay, Job, SyncIntegration};
use chrono::Utc;
use connectors::ProviderError;
use secrecy::SecretString;
use tracing::Instrument;

use crate::context::SyncContext;
use crate::lease::LeaseKeeper;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// Shutdown or a lost lease stopped the work between pages.
    #[error("interrupted")]
    Interrupted,
    #[error("the run was taken over by another worker")]
    LeaseLost,
    #[error("the integration is not connected")]
    NotConnected,
    #[error("the stored credentials cannot be read")]
    Credentials,
    #[error("syncing {0} is not supported yet")]
    Unsupported(String),
}

impl SyncError {
    fn retryable(&self) -> bool {
        match self {
            SyncError::Provider(e) => e.is_retryable(),
            SyncError::Db(_) => true,
            _ => false,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SyncError::Provider(e) => e.code(),
            SyncError::Db(_) => "database_unavailable",
            SyncError::Interrupted => "interrupted",
            SyncError::LeaseLost => "lease_lost",
            SyncError::NotConnected => "integration_not_connected",
            SyncError::Credentials => "credentials_unreadable",
            SyncError::Unsupported(_) => "provider_not_supported",
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Provider(ProviderError::RateLimited { retry_after }) => *retry_after,
            _ => None,
        }
    }
}

/// The apalis handler for `sync_integration.v1`.
pub async fn handle(job: SyncIntegration, ctx: Data<Arc<SyncContext>>) -> Result<(), BoxDynError> {
    let ctx: Arc<SyncContext> = (*ctx).clone();
    let started = Instant::now();
    let mut conn = db::conn(&ctx.pool).await?;
    let claimed = sync_runs::claim(
        &mut conn,
        job.sync_run_id,
        &ctx.worker_id,
        ctx.lease_seconds(),
    )
    .await?;
    let Some(run) = claimed else {
        not_claimed(&ctx, &mut conn, &job).await?;
        return Ok(());
    };
    drop(conn);
    ctx.metrics.started(SyncIntegration::NAME);
    let span = tracing::info_span!(
        "sync_run",
        sync_run.id = %run.id,
        integration.id = %run.integration_id,
        organization.id = %run.organization_id,
        attempt = run.attempts,
    );
    async {
        tracing::info!(mode = %run.mode, "sync run started");
        let keeper = LeaseKeeper::start(&ctx, run.id);
        let result = if run.attempts > run.max_attempts {
            // Claimed more times than allowed: earlier attempts died without settling (a job
            // that kills its worker). Stop here rather than loop forever.
            Err(SyncError::Provider(ProviderError::Transient(
                "attempts exhausted by workers that stopped mid-run".into(),
            )))
        } else {
            execute(&ctx, &run, &keeper).await
        };
        let lost = keeper.lost();
        drop(keeper);
        settle(&ctx, &job, &run, result, lost, started).await
    }
    .instrument(span)
    .await?;
    Ok(())
}

/// The job named a run we could not take. Usually a duplicate delivery (the run is done, or a
/// live worker holds it); but a job that arrived before its run's backoff ended is pushed again
/// for the remaining time, so it is not left to the sweeper.
async fn not_claimed(
    ctx: &SyncContext,
    conn: &mut db::Conn,
    job: &SyncIntegration,
) -> Result<(), DbError> {
    let Some(run) = sync_runs::find_for_job(conn, job.sync_run_id).await? else {
        tracing::warn!(sync_run.id = %job.sync_run_id, "job for a run that does not exist; dropped");
        return Ok(());
    };
    let wait = run.next_attempt_at - Utc::now();
    if run.status == "queued" && wait > chrono::Duration::zero() {
        let delay = wait.to_std().unwrap_or_default();
        if ctx.producer.push_after(job.clone(), delay).await.is_ok() {
            sync_runs::mark_enqueued(conn, run.id, run.next_attempt_at).await?;
        }
    } else {
        tracing::debug!(sync_run.id = %run.id, status = %run.status, "duplicate job for a run that is taken or done");
    }
    Ok(())
}

async fn execute(
    ctx: &Arc<SyncContext>,
    run: &sync_runs::SyncRun,
    keeper: &LeaseKeeper,
) -> Result<(), SyncError> {
    let (integration, credentials) = {
        let mut conn = db::conn(&ctx.pool).await?;
        let integration = integrations::find_for_job(&mut conn, run.integration_id)
            .await?
            .filter(|i| i.status == "active")
            .ok_or(SyncError::NotConnected)?;
        let credentials = integrations::open_credentials(&mut conn, &ctx.keys, &integration)
            .await
            .map_err(|e| match e {
                integrations::CredentialsError::Missing => SyncError::NotConnected,
                integrations::CredentialsError::Db(e) => SyncError::Db(e),
                _ => SyncError::Credentials,
            })?;
        (integration, credentials)
    };
    match integration.provider.as_str() {
        "stripe" => {
            let api_key = credential(&credentials, "api_key")?;
            crate::stripe::sync(ctx, run, &integration, api_key, keeper).await
        }
        "shopify" => {
            let token = credential(&credentials, "access_token")?;
            crate::shopify::sync(ctx, run, &integration, token, keeper).await
        }
        other => Err(SyncError::Unsupported(other.to_owned())),
    }
}

fn credential(credentials: &serde_json::Value, key: &str) -> Result<SecretString, SyncError> {
    credentials[key]
        .as_str()
        .map(|s| SecretString::from(s.to_owned()))
        .ok_or(SyncError::Credentials)
}

async fn settle(
    ctx: &SyncContext,
    job: &SyncIntegration,
    run: &sync_runs::SyncRun,
    result: Result<(), SyncError>,
    lost: bool,
    started: Instant,
) -> Result<(), DbError> {
    let name = SyncIntegration::NAME;
    let owner = ctx.worker_id.as_str();
    let mut conn = db::conn(&ctx.pool).await?;
    match result {
        Ok(()) => {
            if sync_runs::finish(&mut conn, run.id, owner, sync_runs::Outcome::Succeeded).await? {
                integrations::mark_synced(&mut conn, run.integration_id, Utc::now()).await?;
                ctx.metrics.succeeded(name, started.elapsed());
                tracing::info!(
                    took_ms = started.elapsed().as_millis() as u64,
                    "sync run succeeded"
                );
            }
        }
        Err(SyncError::Interrupted | SyncError::LeaseLost) if lost => {
            tracing::info!("sync run stopped: another worker holds it now");
        }
        Err(SyncError::LeaseLost) => tracing::info!("sync run stopped: its lease was lost"),
        Err(SyncError::Interrupted) => {
            if sync_runs::finish(&mut conn, run.id, owner, sync_runs::Outcome::HandedBack).await? {
                ctx.metrics.handed_back(name);
                requeue(ctx, &mut conn, job, Duration::ZERO).await?;
                tracing::info!("shutting down: sync run handed back at its checkpoint");
            }
        }
        Err(e) if e.retryable() && run.attempts < run.max_attempts => {
            let mut rng = fastrand::Rng::new();
            let delay = backoff_delay(
                ctx.backoff(),
                run.attempts as u32,
                e.retry_after(),
                &mut rng,
            );
            let at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            let message = e.to_string();
            let outcome = sync_runs::Outcome::RetryAt {
                at,
                code: e.code(),
                message: &message,
            };
            if sync_runs::finish(&mut conn, run.id, owner, outcome).await? {
                ctx.metrics.retried(name);
                requeue(ctx, &mut conn, job, delay).await?;
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "sync attempt failed; retrying");
            }
        }
        Err(e) => {
            let message = e.to_string();
            let outcome = sync_runs::Outcome::Failed {
                code: e.code(),
                message: &message,
            };
            if sync_runs::finish(&mut conn, run.id, owner, outcome).await? {
                ctx.metrics.failed(name, started.elapsed());
                tracing::error!(error = %e, code = e.code(), "sync run failed");
            }
        }
    }
    Ok(())
}

/// Pushes the run's job again after `delay`. If Redis is away, the run stays queued with no
/// enqueue time and the sweeper pushes it once Redis is back.
async fn requeue(
    ctx: &SyncContext,
    conn: &mut db::Conn,
    job: &SyncIntegration,
    delay: Duration,
) -> Result<(), DbError> {
    match ctx.producer.push_after(job.clone(), delay).await {
        Ok(()) => {
            let due = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            sync_runs::mark_enqueued(conn, job.sync_run_id, due).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not queue the run again; the sweeper will");
            Ok(())
        }
    }
}
