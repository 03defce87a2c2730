//! Stripe objects as synced, one row per object, upserted by Stripe id per integration: a page
//! or an event written twice leaves the same rows as once, and a write carrying older
//! information than the row (`version`) is ignored.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
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
        Self::from_owned(organization_id, integration_id, object.clone(), version)
    }

    /// [`Self::from_api`] taking the object, so a page's objects move into their rows.
    pub fn from_owned(
        organization_id: Uuid,
        integration_id: Uuid,
        object: Value,
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
            raw: object,
            version,
            synced_at: Utc::now(),
        })
    }
}

/// Inserts or updates each object by `(integration_id, object_type, stripe_id)`, unless the row
/// holds newer information. Returns rows written.
///
/// One statement over arrays (`unnest`), whatever the number of rows: its text never changes,
/// so PostgreSQL prepares it once per connection instead of planning a new 1,300-parameter
/// `VALUES` list for every page. Rows for the same object within one call (an events page may
/// change an object twice) are reduced to the newest first, since one statement cannot update
/// a row twice.
#[tracing::instrument(skip_all, fields(rows = rows.len()))]
pub async fn upsert(conn: &mut Conn, rows: &[StripeObject]) -> Result<usize, DbError> {
    use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
    if rows.is_empty() {
        return Ok(0);
    }
    // Last wins among equal versions: callers pass rows oldest first.
    let mut newest: std::collections::HashMap<(Uuid, &str, &str), &StripeObject> =
        std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let key = (
            row.integration_id,
            row.object_type.as_str(),
            row.stripe_id.as_str(),
        );
        match newest.get(&key) {
            Some(kept) if kept.version > row.version => {}
            _ => {
                newest.insert(key, row);
            }
        }
    }
    let rows: Vec<&StripeObject> = rows
        .iter()
        .filter(|r| {
            newest
                .get(&(
                    r.integration_id,
                    r.object_type.as_str(),
                    r.stripe_id.as_str(),
                ))
                .is_some_and(|kept| std::ptr::eq(*kept, *r))
        })
        .collect();
    Ok(diesel::sql_query(
        "INSERT INTO stripe_objects (organization_id, integration_id, object_type, stripe_id, customer,
                                     status, currency, amount, created, deleted, raw, version, synced_at)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::int8[], $9::timestamptz[], $10::bool[], $11::jsonb[],
                              $12::int8[], $13::timestamptz[])
         ON CONFLICT (integration_id, object_type, stripe_id) DO UPDATE SET
             customer = EXCLUDED.customer, status = EXCLUDED.status, currency = EXCLUDED.currency,
             amount = EXCLUDED.amount, created = EXCLUDED.created, deleted = EXCLUDED.deleted,
             raw = EXCLUDED.raw, version = EXCLUDED.version, synced_at = EXCLUDED.synced_at
         WHERE stripe_objects.version <= EXCLUDED.version",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(rows.iter().map(|r| r.organization_id).collect::<Vec<_>>())
    .bind::<Array<diesel::sql_types::Uuid>, _>(rows.iter().map(|r| r.integration_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.object_type.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.stripe_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.customer.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.currency.as_deref()).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.amount).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.created).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|r| r.deleted).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| &r.raw).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.version).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.synced_at).collect::<Vec<_>>())
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
