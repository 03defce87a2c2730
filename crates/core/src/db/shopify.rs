//! Shopify objects as synced (`shopify_objects`), one row per order, product or customer,
//! upserted by Shopify id per integration. A write whose `updated_at` is older than the row's
//! is ignored, so an overlapping page or a late webhook never rolls an object back. Every
//! write marks the organisation's metrics dirty from the first day it can change.

use chrono::{DateTime, Days, Utc};
use diesel::sql_types::{Array, BigInt, Jsonb, Nullable, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::{Conn, DbError};
use crate::metrics::commerce::instant;
use crate::metrics::rollup;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Order,
    Product,
    Customer,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::Product => "product",
            Kind::Customer => "customer",
        }
    }
}

/// One object ready to store.
#[derive(Debug, Clone)]
pub struct ShopifyObject {
    pub kind: Kind,
    pub shopify_id: i64,
    pub updated_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    pub customer_id: Option<i64>,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub raw: Value,
}

impl ShopifyObject {
    /// Reads an object of the REST Admin API. `None` without an id; an object without
    /// `updated_at` (a delete payload) is dated by `created_at`, else now.
    pub fn from_api(kind: Kind, raw: Value) -> Option<Self> {
        let shopify_id = raw["id"].as_i64()?;
        let updated_at = instant(&raw["updated_at"])
            .or_else(|| instant(&raw["created_at"]))
            .unwrap_or_else(Utc::now);
        let (processed_at, customer_id, last_activity_at) = if kind == Kind::Order {
            let processed = instant(&raw["processed_at"]).or_else(|| instant(&raw["created_at"]));
            // The latest instant that books anything: the sale, a refund or its transactions,
            // the cancellation.
            let mut last = processed;
            let mut see = |t: Option<DateTime<Utc>>| {
                if t > last {
                    last = t;
                }
            };
            see(instant(&raw["cancelled_at"]));
            for refund in raw["refunds"].as_array().into_iter().flatten() {
                see(instant(&refund["processed_at"]));
                see(instant(&refund["created_at"]));
                for t in refund["transactions"].as_array().into_iter().flatten() {
                    see(instant(&t["processed_at"]));
                    see(instant(&t["created_at"]));
                }
            }
            (processed, raw["customer"]["id"].as_i64(), last)
        } else {
            (None, None, None)
        };
        Some(ShopifyObject {
            kind,
            shopify_id,
            updated_at,
            processed_at,
            customer_id,
            last_activity_at,
            raw,
        })
    }
}

#[derive(QueryableByName)]
struct Earliest {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first: Option<DateTime<Utc>>,
}

/// Whether a write marks the rollups dirty itself (webhooks, incremental pages) or leaves it to
/// its caller, as a backfill does once at its end instead of after every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollups {
    MarkDirty,
    Later,
}

/// Upserts `rows` for the integration (newer `updated_at` wins; equal rewrites) and, with
/// [`Rollups::MarkDirty`], marks the organisation's metrics dirty from the earliest order day
/// they touch, old or new version. Returns rows written.
pub async fn upsert(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    rows: &[ShopifyObject],
    rollups: Rollups,
) -> Result<usize, DbError> {
    if rows.is_empty() {
        return Ok(0);
    }
    // One statement cannot touch a row twice: keep each object's newest version.
    let mut newest: std::collections::HashMap<(&str, i64), &ShopifyObject> =
        std::collections::HashMap::new();
    for row in rows {
        let key = (row.kind.as_str(), row.shopify_id);
        match newest.get(&key) {
            Some(kept) if kept.updated_at > row.updated_at => {}
            _ => {
                newest.insert(key, row);
            }
        }
    }
    let rows: Vec<&ShopifyObject> = newest.into_values().collect();
    let orders: Vec<i64> = rows
        .iter()
        .filter(|r| r.kind == Kind::Order)
        .map(|r| r.shopify_id)
        .collect();
    let earliest_new = rows.iter().filter_map(|r| r.processed_at).min();
    let earliest_old: Earliest = if rollups == Rollups::MarkDirty {
        diesel::sql_query(
            "SELECT min(processed_at) AS first FROM shopify_objects
              WHERE integration_id = $1 AND kind = 'order' AND shopify_id = ANY($2)",
        )
        .bind::<diesel::sql_types::Uuid, _>(integration_id)
        .bind::<Array<BigInt>, _>(&orders)
        .get_result(conn)
        .await?
    } else {
        Earliest { first: None }
    };
    let written = diesel::sql_query(
        "INSERT INTO shopify_objects
            (organization_id, integration_id, kind, shopify_id, updated_at, processed_at, customer_id, last_activity_at, raw)
         SELECT $1, $2, k, i, u, p, c, l, r
           FROM UNNEST($3::text[], $4::bigint[], $5::timestamptz[], $6::timestamptz[], $7::bigint[], $8::timestamptz[], $9::jsonb[])
             AS t(k, i, u, p, c, l, r)
         ON CONFLICT (integration_id, kind, shopify_id) DO UPDATE SET
            updated_at = EXCLUDED.updated_at, processed_at = EXCLUDED.processed_at,
            customer_id = EXCLUDED.customer_id, last_activity_at = EXCLUDED.last_activity_at,
            -- A redacted customer stays a bare id, and a redacted order stays redacted, when
            -- Shopify sends them again (a later refund, an update, the next full sync).
            raw = CASE WHEN shopify_objects.redacted AND shopify_objects.kind = 'customer'
                       THEN jsonb_build_object('id', EXCLUDED.shopify_id)
                       WHEN shopify_objects.redacted
                       THEN (EXCLUDED.raw - $10::text[]) || jsonb_build_object('customer', jsonb_build_object('id', EXCLUDED.customer_id))
                       ELSE EXCLUDED.raw END,
            synced_at = now()
          WHERE shopify_objects.updated_at <= EXCLUDED.updated_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.shopify_id).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.processed_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.customer_id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.last_activity_at).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(rows.iter().map(|r| r.raw.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(ORDER_PERSONAL.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    // Seen now, even where the stored version is newer than this one (a webhook came first):
    // a full walk's reconciliation removes only what no page showed. Only needed when some
    // row was skipped; a written row has its `synced_at` already.
    if written < rows.len() {
        diesel::sql_query(
            "UPDATE shopify_objects SET synced_at = now()
              WHERE integration_id = $1 AND kind = ANY($2) AND shopify_id = ANY($3)
                AND synced_at < now()",
        )
        .bind::<diesel::sql_types::Uuid, _>(integration_id)
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(rows.iter().map(|r| r.shopify_id).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    let earliest = [earliest_new, earliest_old.first]
        .into_iter()
        .flatten()
        .min();
    if let (Some(first), Rollups::MarkDirty) = (earliest, rollups) {
        mark_dirty_from(conn, organization_id, first).await?;
    }
    Ok(written)
}

/// Marks the organisation's rollups dirty from the day before `first` (in UTC, which covers
/// every time zone's local day of that instant).
async fn mark_dirty_from(
    conn: &mut Conn,
    organization_id: Uuid,
    first: DateTime<Utc>,
) -> Result<(), DbError> {
    let day = first
        .date_naive()
        .checked_sub_days(Days::new(1))
        .unwrap_or(first.date_naive());
    rollup::mark_dirty(conn, organization_id, day).await
}

/// Marks the organisation's rollups dirty from the day before the integration's first order:
/// the end of a backfill.
pub async fn mark_all_orders_dirty(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
) -> Result<(), DbError> {
    let first: Earliest = diesel::sql_query(
        "SELECT min(processed_at) AS first FROM shopify_objects WHERE integration_id = $1 AND kind = 'order'",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .get_result(conn)
    .await?;
    if let Some(first) = first.first {
        mark_dirty_from(conn, organization_id, first).await?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Removed {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    processed_at: Option<DateTime<Utc>>,
}

/// Marks the rollups dirty from the day before the earliest removed order (none for products
/// and customers, whose removal changes no metric). Returns rows removed.
async fn removed(
    conn: &mut Conn,
    organization_id: Uuid,
    rows: Vec<Removed>,
) -> Result<usize, DbError> {
    if let Some(first) = rows.iter().filter_map(|r| r.processed_at).min() {
        mark_dirty_from(conn, organization_id, first).await?;
    }
    Ok(rows.len())
}

/// Removes deleted objects (`products/delete`, `customers/delete`, `orders/delete`: Shopify
/// deletes only orders no payment gateway captured, and drops them from its reports, so the
/// metrics are recomputed without them). Returns rows removed.
pub async fn remove(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    kind: Kind,
    ids: &[i64],
) -> Result<usize, DbError> {
    let rows: Vec<Removed> = diesel::sql_query(
        "DELETE FROM shopify_objects WHERE integration_id = $1 AND kind = $2 AND shopify_id = ANY($3)
         RETURNING processed_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<Text, _>(kind.as_str())
    .bind::<Array<BigInt>, _>(ids)
    .load(conn)
    .await?;
    removed(conn, organization_id, rows).await
}

/// After a full walk of `kind` that began at `walk_started`: removes the objects the walk did
/// not see (deleted at Shopify while no webhook reached us). Returns rows removed.
pub async fn reconcile(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    kind: Kind,
    walk_started: DateTime<Utc>,
) -> Result<usize, DbError> {
    let rows: Vec<Removed> = diesel::sql_query(
        "DELETE FROM shopify_objects WHERE integration_id = $1 AND kind = $2 AND synced_at < $3
         RETURNING processed_at",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<Text, _>(kind.as_str())
    .bind::<Timestamptz, _>(walk_started)
    .load(conn)
    .await?;
    removed(conn, organization_id, rows).await
}

/// Personal fields of orders and customers, erased by `customers/redact`.
const ORDER_PERSONAL: [&str; 9] = [
    "email",
    "contact_email",
    "phone",
    "browser_ip",
    "note",
    "billing_address",
    "shipping_address",
    "client_details",
    "customer",
];

/// Erases one customer's personal data: the customer row is reduced to its id and marked
/// redacted (a tombstone, so a later sync or `customers/update` cannot bring the data back:
/// see [`upsert`]), and their orders keep only amounts, lines and dates, with the customer
/// reduced to its id (so first-order and returning counts stay right). Returns orders redacted.
pub async fn redact_customer(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    customer_id: i64,
    order_ids: &[i64],
) -> Result<usize, DbError> {
    diesel::sql_query(
        "INSERT INTO shopify_objects (organization_id, integration_id, kind, shopify_id, updated_at, redacted, raw)
         VALUES ($1, $2, 'customer', $3, now(), true, jsonb_build_object('id', $3))
         ON CONFLICT (integration_id, kind, shopify_id) DO UPDATE
            SET raw = EXCLUDED.raw, redacted = true",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(customer_id)
    .execute(conn)
    .await?;
    let keys: Vec<String> = ORDER_PERSONAL.iter().map(|s| s.to_string()).collect();
    Ok(diesel::sql_query(
        "UPDATE shopify_objects
            SET raw = (raw - $4::text[]) || jsonb_build_object('customer', jsonb_build_object('id', customer_id)),
                redacted = true
          WHERE integration_id = $1 AND kind = 'order' AND (customer_id = $2 OR shopify_id = ANY($3))",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(customer_id)
    .bind::<Array<BigInt>, _>(order_ids)
    .bind::<Array<Text>, _>(keys)
    .execute(conn)
    .await?)
}

/// The rest of `customers/redact`: exports made for that customer are deleted, and the stored
/// webhook payloads that carry their data (processed ones, and `current`, the redact event
/// itself) are replaced by a marker. Returns payloads scrubbed.
pub async fn scrub_customer_traces(
    conn: &mut Conn,
    integration_id: Uuid,
    customer_id: i64,
    current: Uuid,
) -> Result<usize, DbError> {
    diesel::sql_query(
        "DELETE FROM shopify_data_requests WHERE integration_id = $1 AND shopify_customer_id = $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(customer_id)
    .execute(conn)
    .await?;
    Ok(diesel::sql_query(
        "UPDATE webhook_events SET payload = '{\"redacted\": true}'
          WHERE integration_id = $1 AND provider = 'shopify' AND (status = 'processed' OR id = $3)
            AND (payload::jsonb #>> '{customer,id}' = $2::text
                 OR (event_type LIKE 'customers/%' AND payload::jsonb ->> 'id' = $2::text))",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(customer_id)
    .bind::<diesel::sql_types::Uuid, _>(current)
    .execute(conn)
    .await?)
}

/// An event applied after its order or customer was redacted (an order update, a refund, a
/// customer update): the row stays redacted (see [`upsert`]), and this replaces the event's
/// stored payload, which still carries the personal data, by the same marker. Returns whether
/// it did.
pub async fn scrub_event_if_redacted(
    conn: &mut Conn,
    integration_id: Uuid,
    kind: Kind,
    shopify_id: i64,
    event_id: Uuid,
) -> Result<bool, DbError> {
    Ok(diesel::sql_query(
        "UPDATE webhook_events SET payload = '{\"redacted\": true}'
          WHERE id = $3
            AND EXISTS (SELECT 1 FROM shopify_objects
                         WHERE integration_id = $1 AND kind = $4 AND shopify_id = $2
                           AND redacted)",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(shopify_id)
    .bind::<diesel::sql_types::Uuid, _>(event_id)
    .bind::<Text, _>(kind.as_str())
    .execute(conn)
    .await?
        == 1)
}

/// Everything held about one customer of the shop, for `customers/data_request`.
pub async fn export_customer(
    conn: &mut Conn,
    integration_id: Uuid,
    customer_id: i64,
    order_ids: &[i64],
) -> Result<Value, DbError> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        kind: String,
        #[diesel(sql_type = Jsonb)]
        raw: Value,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT kind, raw FROM shopify_objects
          WHERE integration_id = $1 AND ((kind = 'customer' AND shopify_id = $2)
             OR (kind = 'order' AND (customer_id = $2 OR shopify_id = ANY($3))))
          ORDER BY kind, shopify_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<BigInt, _>(customer_id)
    .bind::<Array<BigInt>, _>(order_ids)
    .load(conn)
    .await?;
    let customer = rows
        .iter()
        .find(|r| r.kind == "customer")
        .map(|r| r.raw.clone());
    let orders: Vec<Value> = rows
        .into_iter()
        .filter(|r| r.kind == "order")
        .map(|r| r.raw)
        .collect();
    Ok(json!({ "customer_id": customer_id, "customer": customer, "orders": orders }))
}

/// Stores a data-request export; returns its id.
pub async fn save_data_request(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
    request_id: Option<i64>,
    customer_id: i64,
    export: &Value,
) -> Result<Uuid, DbError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: Uuid,
    }
    let row: Id = diesel::sql_query(
        "INSERT INTO shopify_data_requests (organization_id, integration_id, shopify_request_id, shopify_customer_id, export)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .bind::<Nullable<BigInt>, _>(request_id)
    .bind::<BigInt, _>(customer_id)
    .bind::<Jsonb, _>(export)
    .get_result(conn)
    .await?;
    Ok(row.id)
}

/// `shop/redact`: deletes everything synced from the shop, and its exports; marks the
/// organisation's metrics dirty from the shop's first order so they no longer include it.
pub async fn delete_shop_data(
    conn: &mut Conn,
    organization_id: Uuid,
    integration_id: Uuid,
) -> Result<usize, DbError> {
    let first: Earliest = diesel::sql_query(
        "SELECT min(processed_at) AS first FROM shopify_objects WHERE integration_id = $1 AND kind = 'order'",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration_id)
    .get_result(conn)
    .await?;
    let removed = diesel::sql_query("DELETE FROM shopify_objects WHERE integration_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(integration_id)
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM shopify_data_requests WHERE integration_id = $1")
        .bind::<diesel::sql_types::Uuid, _>(integration_id)
        .execute(conn)
        .await?;
    if let Some(first) = first.first {
        mark_dirty_from(conn, organization_id, first).await?;
    }
    Ok(removed)
}
