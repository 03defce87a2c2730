//! Applying stored Shopify webhooks. Each topic's effect and the event's `processed` mark
//! commit together; objects go through the same upsert as the sync (newer `updated_at` wins), so
//! a redelivered or late webhook changes nothing.
//!
//! - `orders/*`, `products/create|update`, `customers/create|update`: upsert the object.
//! - `refunds/create`: the refund joins its order's `refunds` (if the order is here; otherwise
//!   the next sync brings the order with it).
//! - `products/delete`, `customers/delete`: the row is removed.
//! - `app/uninstalled`: the integration is disconnected, its token deleted, its schedule stopped.
//! - `customers/data_request`: an export of what we hold on that customer is stored for the
//!   merchant; `customers/redact`: that customer's personal data is erased, amounts kept;
//!   `shop/redact`: everything from the shop is deleted.

use biz_core::db::shopify::{self as store, Kind, ShopifyObject};
use biz_core::db::webhook_events::{self, WebhookEvent};
use biz_core::db::{self, integrations};
use diesel::sql_types::{BigInt, Jsonb};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::{AsyncConnection, RunQueryDsl};
use serde_json::Value;

use crate::webhook::ApplyError;

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect()
}

pub async fn apply(conn: &mut db::Conn, event: &WebhookEvent) -> Result<(), ApplyError> {
    let payload: Value =
        serde_json::from_str(&event.payload).map_err(|e| ApplyError::Payload(e.to_string()))?;
    let (org, integration, id) = (event.organization_id, event.integration_id, event.id);
    let topic = event.event_type.as_str();
    conn.transaction::<_, ApplyError, _>(async move |conn| {
        // The order or customer the event touches, whose redaction outlives this payload.
        let mut touched = None;
        match topic {
            "orders/create" | "orders/updated" | "orders/cancelled" | "orders/paid"
            | "orders/fulfilled" | "orders/partially_fulfilled" | "orders/edited" => {
                touched = payload["id"].as_i64().map(|id| (Kind::Order, id));
                upsert(conn, org, integration, Kind::Order, payload).await?;
            }
            "products/create" | "products/update" => {
                upsert(conn, org, integration, Kind::Product, payload).await?;
            }
            "customers/create" | "customers/update" | "customers/enable"
            | "customers/disable" => {
                touched = payload["id"].as_i64().map(|id| (Kind::Customer, id));
                upsert(conn, org, integration, Kind::Customer, payload).await?;
            }
            "products/delete" => remove(conn, org, integration, Kind::Product, &payload).await?,
            "customers/delete" => remove(conn, org, integration, Kind::Customer, &payload).await?,
            "orders/delete" => remove(conn, org, integration, Kind::Order, &payload).await?,
            "refunds/create" => {
                touched = payload["order_id"].as_i64().map(|id| (Kind::Order, id));
                add_refund(conn, org, integration, payload).await?;
            }
            "app/uninstalled" => {
                integrations::disconnect(conn, org, integration).await?;
                tracing::info!(integration.id = %integration, "Shopify app uninstalled: disconnected");
            }
            "customers/data_request" => {
                let customer = payload["customer"]["id"]
                    .as_i64()
                    .ok_or_else(|| ApplyError::Payload("no customer.id".into()))?;
                let orders = ids(&payload["orders_requested"]);
                let export = store::export_customer(conn, integration, customer, &orders).await?;
                let request = payload["data_request"]["id"].as_i64();
                store::save_data_request(conn, org, integration, request, customer, &export)
                    .await?;
            }
            "customers/redact" => {
                let customer = payload["customer"]["id"]
                    .as_i64()
                    .ok_or_else(|| ApplyError::Payload("no customer.id".into()))?;
                let orders = ids(&payload["orders_to_redact"]);
                let n = store::redact_customer(conn, org, integration, customer, &orders).await?;
                let events = store::scrub_customer_traces(conn, integration, customer, id).await?;
                tracing::info!(orders = n, events, "Shopify customer redacted");
            }
            "shop/redact" => {
                let n = store::delete_shop_data(conn, org, integration).await?;
                tracing::info!(rows = n, "Shopify shop data deleted");
            }
            other => tracing::debug!(topic = other, "Shopify topic without an effect here"),
        }
        webhook_events::mark_processed(conn, id).await?;
        if let Some((kind, object)) = touched {
            store::scrub_event_if_redacted(conn, integration, kind, object, id).await?;
        }
        Ok(())
    })
    .await
}

/// A `*/delete` topic: its payload is `{"id": …}`.
async fn remove(
    conn: &mut db::Conn,
    org: uuid::Uuid,
    integration: uuid::Uuid,
    kind: Kind,
    payload: &Value,
) -> Result<(), ApplyError> {
    let id = payload["id"]
        .as_i64()
        .ok_or_else(|| ApplyError::Payload("a deletion without an id".into()))?;
    store::remove(conn, org, integration, kind, &[id]).await?;
    Ok(())
}

async fn upsert(
    conn: &mut db::Conn,
    org: uuid::Uuid,
    integration: uuid::Uuid,
    kind: Kind,
    payload: Value,
) -> Result<(), ApplyError> {
    let row = ShopifyObject::from_api(kind, payload)
        .ok_or_else(|| ApplyError::Payload("an object without an id".into()))?;
    store::upsert(
        conn,
        org,
        integration,
        std::slice::from_ref(&row),
        store::Rollups::MarkDirty,
    )
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct StoredOrder {
    #[diesel(sql_type = Jsonb)]
    raw: Value,
}

/// A refund joins its order (replacing an earlier copy of itself), and the order is stored
/// again dated no earlier than the refund.
async fn add_refund(
    conn: &mut db::Conn,
    org: uuid::Uuid,
    integration: uuid::Uuid,
    refund: Value,
) -> Result<(), ApplyError> {
    let order_id = refund["order_id"]
        .as_i64()
        .ok_or_else(|| ApplyError::Payload("a refund without order_id".into()))?;
    let stored: Option<StoredOrder> = diesel::sql_query(
        "SELECT raw FROM shopify_objects WHERE integration_id = $1 AND kind = 'order' AND shopify_id = $2 FOR UPDATE",
    )
    .bind::<diesel::sql_types::Uuid, _>(integration)
    .bind::<BigInt, _>(order_id)
    .get_result(conn)
    .await
    .optional()?;
    let Some(StoredOrder { raw: mut order }) = stored else {
        tracing::info!(
            order.id = order_id,
            "refund for an order not synced yet; the next sync brings both"
        );
        return Ok(());
    };
    let mut refunds: Vec<Value> = order["refunds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["id"] != refund["id"])
        .collect();
    let at = refund["processed_at"].clone();
    refunds.push(refund);
    order["refunds"] = Value::Array(refunds);
    // Dated by the later of the order's own time and the refund's, so the row is replaced.
    let newer = match (
        biz_core::metrics::commerce::instant(&order["updated_at"]),
        biz_core::metrics::commerce::instant(&at),
    ) {
        (Some(a), Some(b)) if b > a => at,
        _ => order["updated_at"].clone(),
    };
    order["updated_at"] = newer;
    upsert(conn, org, integration, Kind::Order, order).await
}
