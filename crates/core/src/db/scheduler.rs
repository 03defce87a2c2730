//! Scheduler ticks: a periodic job's slot is claimed by inserting it; the replica whose insert
//! won enqueues the tick, every other replica sees the conflict and does nothing.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use crate::db::schema::scheduler_ticks;
use crate::db::{Conn, DbError};

/// The start of the period of `period_seconds` that contains `now`.
pub fn slot(now: DateTime<Utc>, period_seconds: i64) -> DateTime<Utc> {
    let period = period_seconds.max(1);
    let start = now.timestamp().div_euclid(period) * period;
    DateTime::from_timestamp(start, 0).unwrap_or(now)
}

/// True for exactly one caller per `(job, slot)`.
#[tracing::instrument(skip(conn))]
pub async fn claim_tick(
    conn: &mut Conn,
    job: &str,
    slot: DateTime<Utc>,
    claimed_by: &str,
) -> Result<bool, DbError> {
    let n = diesel::insert_into(scheduler_ticks::table)
        .values((
            scheduler_ticks::job.eq(job),
            scheduler_ticks::slot.eq(slot),
            scheduler_ticks::claimed_by.eq(claimed_by),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Forgets ticks older than `keep`; they only guard against double enqueueing of recent slots.
#[tracing::instrument(skip(conn))]
pub async fn prune(conn: &mut Conn, before: DateTime<Utc>) -> Result<usize, DbError> {
    Ok(
        diesel::delete(scheduler_ticks::table.filter(scheduler_ticks::slot.lt(before)))
            .execute(conn)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_period_starts() {
        let t = DateTime::from_timestamp(1_000_123, 0).unwrap();
        assert_eq!(slot(t, 300).timestamp(), 999_900);
        assert_eq!(slot(t, 1).timestamp(), 1_000_123);
    }
}
