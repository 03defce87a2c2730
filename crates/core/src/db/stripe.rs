//! Stripe objects as synced, one row per object, upserted by Stripe id per integration: a page
//! or an event written twice leaves the same rows as once, and a write carrying older
//! information than the row (`version`) is ignored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use crate::db::schema::stripe_objects;
use crate::db::{Conn, DbError};

/// The object types synced, by their Stripe `object` name.
pub const OBJECT_TYPES: [&str; 7] = [
    "customer",
    "price",
    "subscription",
    "invoice",
    "charge",
    "payment_intent",
    "refund",
];

#[derive(Debug, Clone, Insertable, Queryable, Selectable)]
#[diesel(table_name = stripe_objects)]
pub struct StripeObject {
    pub organization_id: Uuid,
    pub integration_id: Uuid,
    pub object_type: String,
    pub stripe_id: String,
    pub customer: Option<String>,
    pub status: Option<String>,
    pub currency: Option<String>,
    pub amount: Option<i64>,
    pub created: DateTime<Utc>,
    pub deleted: bool,
    pub raw: Value,
    pub version: i64,
    pub synced_at: DateTime<Utc>,
}

impl StripeObject {
    /// Reads a Stripe object of a synced type; `version` is when it was true (Unix seconds).
    /// `None` for anything else (an object type we do not keep, or one without an id).
    pub fn from_api(
        organization_id: Uuid,
        integration_id: Uuid,
        object: &Value,
        version: i64,
    ) -> Option<Self> {
        let object_type = object["object"].as_str()?;
        if !OBJECT_TYPES.contains(&object_type) {
            return None;
        }
        let text = |k: &str| object[k].as_str().map(str::to_owned);
        let amount = match object_type {
            "invoice" => object["amount_due"].as_i64(),
            _ => object["amount"].as_i64(),
        };
        Some(StripeObject {
            organization_id,
            integration_id,
            object_type: object_type.to_owned(),
            stripe_id: text("id")?,
            customer: match object_type {
                "customer" => None,
                _ => text("customer"),
            },
            status: text("status"),
            currency: text("currency").map(|c| c.to_lowercase()),
            amount,
            created: DateTime::from_timestamp(object["created"].as_i64().unwrap_or(0), 0)
                .unwrap_or_default(),
            deleted: object["deleted"].as_bool().unwrap_or(false),
            raw: object.clone(),
            version,
            synced_at: Utc::now(),
        })
    }
}

/// Inserts or updates each object by `(integration_id, object_type, stripe_id)`, unless the row
/// holds newer information. Returns rows written.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn upsert(conn: &mut Conn, rows: &[StripeObject]) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    use diesel::query_dsl::methods::FilterDsl;
    use stripe_objects as t;
    Ok(diesel::insert_into(t::table)
        .values(rows)
        .on_conflict((t::integration_id, t::object_type, t::stripe_id))
        .do_update()
        .set((
            t::customer.eq(excluded(t::customer)),
            t::status.eq(excluded(t::status)),
            t::currency.eq(excluded(t::currency)),
            t::amount.eq(excluded(t::amount)),
            t::created.eq(excluded(t::created)),
            t::deleted.eq(excluded(t::deleted)),
            t::raw.eq(excluded(t::raw)),
            t::version.eq(excluded(t::version)),
            t::synced_at.eq(excluded(t::synced_at)),
        ))
        .filter(t::version.le(excluded(t::version)))
        .execute(conn)
        .await?)
}

/// The integration's ids of one object type, sorted: what tests compare between runs.
#[tracing::instrument(skip(conn))]
pub async fn ids(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    object_type: &str,
) -> Result<Vec<String>, DbError> {
    use stripe_objects as t;
    Ok(t::table
        .filter(t::organization_id.eq(organization_id))
        .filter(t::integration_id.eq(integration_id))
        .filter(t::object_type.eq(object_type))
        .order(t::stripe_id)
        .select(t::stripe_id)
        .load(conn)
        .await?)
}

/// The row an event's `data.object` becomes, if it is of a synced type. Its version is the
/// event's `created`; `customer.deleted` marks the customer deleted.
pub fn object_from_event(
    organization_id: Uuid,
    integration_id: Uuid,
    event: &Value,
) -> Option<StripeObject> {
    let version = event["created"].as_i64()?;
    let mut row = StripeObject::from_api(
        organization_id,
        integration_id,
        &event["data"]["object"],
        version,
    )?;
    if event["type"] == "customer.deleted" {
        row.deleted = true;
    }
    Some(row)
}

/// When the integration's oldest stored object was created: where its metrics begin.
pub async fn earliest_created(
    conn: &mut Conn,
    integration_id: Uuid,
) -> Result<Option<DateTime<Utc>>, DbError> {
    use stripe_objects as t;
    Ok(t::table
        .filter(t::integration_id.eq(integration_id))
        .select(diesel::dsl::min(t::created))
        .first(conn)
        .await?)
}
