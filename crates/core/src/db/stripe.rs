//! Stripe objects as synced, upserted by Stripe id per integration: a page written twice leaves
//! the same rows as once.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::stripe_customers;
use crate::db::{Conn, DbError};

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = stripe_customers)]
pub struct StripeCustomer {
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub stripe_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub currency: Option<String>,
    pub delinquent: bool,
    pub created: DateTime<Utc>,
    pub deleted: bool,
    pub raw: Value,
    pub synced_at: DateTime<Utc>,
}

impl StripeCustomer {
    /// Reads a Stripe customer object (`object: "customer"`, or a deleted stub). `None` when it
    /// lacks an id.
    pub fn from_api(organization_id: Uuid, integration_id: Uuid, object: &Value) -> Option<Self> {
        let text = |k: &str| object[k].as_str().map(str::to_owned);
        Some(StripeCustomer {
            organization_id,
            integration_id,
            stripe_id: text("id")?,
            email: text("email"),
            name: text("name"),
            currency: text("currency"),
            delinquent: object["delinquent"].as_bool().unwrap_or(false),
            created: DateTime::from_timestamp(object["created"].as_i64().unwrap_or(0), 0)
                .unwrap_or_default(),
            deleted: object["deleted"].as_bool().unwrap_or(false),
            raw: object.clone(),
            synced_at: Utc::now(),
        })
    }
}

/// Inserts or updates each customer by `(integration_id, stripe_id)`. Returns rows written.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn upsert_customers(conn: &mut Conn, rows: &[StripeCustomer]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    Ok(diesel::insert_into(stripe_customers::table)
        .values(rows)
        .on_conflict((
            stripe_customers::integration_id,
            stripe_customers::stripe_id,
        ))
        .do_update()
        .set((
            stripe_customers::email.eq(excluded(stripe_customers::email)),
            stripe_customers::name.eq(excluded(stripe_customers::name)),
            stripe_customers::currency.eq(excluded(stripe_customers::currency)),
            stripe_customers::delinquent.eq(excluded(stripe_customers::delinquent)),
            stripe_customers::created.eq(excluded(stripe_customers::created)),
            stripe_customers::deleted.eq(excluded(stripe_customers::deleted)),
            stripe_customers::raw.eq(excluded(stripe_customers::raw)),
            stripe_customers::synced_at.eq(excluded(stripe_customers::synced_at)),
        ))
        .execute(conn)
        .await?)
}

/// The integration's customer ids, sorted: what tests compare between runs.
#[tracing::instrument(skip(conn))]
pub async fn customer_ids(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
) -> Result<Vec<String>, DbError> {
    Ok(stripe_customers::table
        .filter(stripe_customers::organization_id.eq(organization_id))
        .filter(stripe_customers::integration_id.eq(integration_id))
        .order(stripe_customers::stripe_id)
        .select(stripe_customers::stripe_id)
        .load(conn)
        .await?)
}
