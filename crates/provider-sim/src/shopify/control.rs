//! Test controls for the simulated shops (not part of Shopify's API):
//!
//! - `GET /_sim/shopify/{shop}/store`: the store's products, customers and orders, for tests to
//!   compute expected figures from, independently of our sync.
//! - `POST /_sim/shopify/{shop}/advance {orders, refunds, cancellations, product_updates,
//!   product_deletes, customer_deletes, order_deletes}`: changes the store an hour apart on its clock, as a
//!   merchant's day would, and delivers the webhooks Shopify would send for each change to the
//!   subscriptions registered for the shop (unless `deliver: false`). Answers with what was
//!   sent.
//! - `POST /_sim/shopify/{shop}/webhooks/send {topic, payload?, webhook_id?}`: delivers one
//!   webhook (payloads of the privacy topics and `app/uninstalled` are made from the store);
//!   passing an earlier `webhook_id` is a redelivery.
//!
//! Deliveries are signed as Shopify signs them: `X-Shopify-Hmac-Sha256` is the base64
//! HMAC-SHA256 of the raw body under the app's client secret, with `X-Shopify-Topic`,
//! `X-Shopify-Shop-Domain`, `X-Shopify-Webhook-Id`, `X-Shopify-Event-Id`,
//! `X-Shopify-Triggered-At` and `X-Shopify-API-Version`.

use actix_web::{web, HttpResponse};
use base64::Engine;
use ring::hmac;
use serde::Deserialize;
use serde_json::{json, Value};

use super::data::{self, Presentment, ShopProfile, Store};
use crate::Sim;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/shopify/{shop}/store", web::get().to(store))
        .route("/_sim/shopify/{shop}/advance", web::post().to(advance))
        .route("/_sim/shopify/{shop}/webhooks/send", web::post().to(send));
}

async fn store(sim: web::Data<Sim>, shop: web::Path<String>) -> HttpResponse {
    let mut state = sim.state();
    let s = state.shopify_store(&shop);
    HttpResponse::Ok().json(json!({
        "shop_id": s.shop_id, "orders": s.orders, "products": s.products, "customers": s.customers,
        "deleted_products": s.deleted_products, "deleted_customers": s.deleted_customers,
        "deleted_orders": s.deleted_orders
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Advance {
    /// Send the webhooks for the changes (default); false stands for deliveries that never
    /// arrived, which only a sync can make up for.
    deliver: Option<bool>,
    orders: usize,
    refunds: usize,
    cancellations: usize,
    product_updates: usize,
    product_deletes: usize,
    customer_deletes: usize,
    order_deletes: usize,
}

/// The base64 HMAC-SHA256 of `body` under `secret`, as in `X-Shopify-Hmac-Sha256`.
pub fn body_hmac(body: &[u8], secret: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, body).as_ref())
}

/// The store's variants as new orders pick them: (product, variant, title, price, sku), the
/// price in minor units (the store writes every price with its currency's decimals).
fn variants(store: &Store) -> Vec<(i64, i64, String, i64, String)> {
    store
        .products
        .iter()
        .flat_map(|p| {
            p["variants"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |v| {
                    let minor = v["price"]
                        .as_str()
                        .unwrap_or("0")
                        .replace('.', "")
                        .parse::<i64>()
                        .unwrap_or(0);
                    (
                        p["id"].as_i64().unwrap_or(0),
                        v["id"].as_i64().unwrap_or(0),
                        format!(
                            "{} - {}",
                            p["title"].as_str().unwrap_or(""),
                            v["title"].as_str().unwrap_or("")
                        ),
                        minor,
                        v["sku"].as_str().unwrap_or("").to_owned(),
                    )
                })
        })
        .collect()
}

/// Moves the store's clock to the next change: now (the real clock, as a live shop's changes
/// are), and always after the previous change.
fn tick(store: &mut Store) {
    let now = chrono::Utc::now().timestamp();
    store.clock = (store.clock + 1).max(now);
}

/// Applies the changes and returns the (topic, payload) pairs Shopify would deliver.
fn apply(store: &mut Store, shop: &str, seed: u64, a: &Advance) -> Vec<(String, Value)> {
    let p = ShopProfile::for_shop(shop);
    let pm = Presentment {
        currency: p.currency,
        exponent: p.exponent,
        rate_bp: 10_000,
    };
    let mut rng = fastrand::Rng::with_seed(seed ^ store.clock as u64);
    let mut out = Vec::new();
    let mut next_id = store.next_id;
    let mut id = || {
        next_id += 3;
        next_id
    };
    let vs = variants(store);
    for _ in 0..a.orders {
        tick(store);
        let buyer = store
            .customers
            .get(rng.usize(..store.customers.len().max(1)))
            .cloned();
        let number = 1000 + store.orders.len() as i64;
        let oid = id();
        let order = data::build_order(
            &p,
            &pm,
            oid,
            number,
            store.clock,
            store.clock,
            buyer.as_ref(),
            &vs,
            &mut rng,
            &mut id,
        );
        store.orders.push(order.clone());
        out.push(("orders/create".to_owned(), order));
    }
    let paid: Vec<usize> = (0..store.orders.len())
        .rev()
        .filter(|i| {
            store.orders[*i]["financial_status"] == "paid"
                && store.orders[*i]["cancelled_at"].is_null()
        })
        .collect();
    let mut picks = paid.into_iter();
    for _ in 0..a.refunds {
        let Some(i) = picks.next() else { break };
        tick(store);
        let at = store.clock;
        data::refund_units(&mut store.orders[i], &p, &pm, at, false, &mut id);
        let order = store.orders[i].clone();
        let refund = order["refunds"]
            .as_array()
            .and_then(|r| r.last())
            .cloned()
            .unwrap_or_default();
        out.push(("refunds/create".to_owned(), refund));
        out.push(("orders/updated".to_owned(), order));
    }
    for _ in 0..a.cancellations {
        let Some(i) = picks.next() else { break };
        tick(store);
        let at = store.clock;
        data::cancel(&mut store.orders[i], &p, &pm, at, true, &mut id);
        let order = store.orders[i].clone();
        out.push(("orders/cancelled".to_owned(), order.clone()));
        out.push(("orders/updated".to_owned(), order));
    }
    for k in 0..a.product_updates.min(store.products.len()) {
        tick(store);
        let product = &mut store.products[k];
        product["title"] = json!(format!("{} (new)", product["title"].as_str().unwrap_or("")));
        product["updated_at"] = json!(data::timestamp(store.clock, &p));
        out.push(("products/update".to_owned(), product.clone()));
    }
    for _ in 0..a.product_deletes {
        let Some(product) = store.products.pop() else {
            break;
        };
        tick(store);
        let pid = product["id"].as_i64().unwrap_or(0);
        store.deleted_products.push(pid);
        out.push(("products/delete".to_owned(), json!({ "id": pid })));
    }
    for _ in 0..a.customer_deletes {
        // Shopify deletes only customers without orders.
        let ordered: std::collections::HashSet<i64> = store
            .orders
            .iter()
            .filter_map(|o| o["customer"]["id"].as_i64())
            .collect();
        let Some(at) = store
            .customers
            .iter()
            .rposition(|c| c["id"].as_i64().is_some_and(|id| !ordered.contains(&id)))
        else {
            break;
        };
        let customer = store.customers.remove(at);
        tick(store);
        let cid = customer["id"].as_i64().unwrap_or(0);
        store.deleted_customers.push(cid);
        out.push(("customers/delete".to_owned(), json!({ "id": cid })));
    }
    for _ in 0..a.order_deletes {
        // Shopify deletes only orders no payment gateway captured: pending or cancelled ones.
        let Some(at) = store
            .orders
            .iter()
            .rposition(|o| o["financial_status"] == "pending" || !o["cancelled_at"].is_null())
        else {
            break;
        };
        let order = store.orders.remove(at);
        tick(store);
        let oid = order["id"].as_i64().unwrap_or(0);
        store.deleted_orders.push(oid);
        out.push(("orders/delete".to_owned(), json!({ "id": oid })));
    }
    store.next_id = next_id + 10;
    out
}

async fn advance(
    sim: web::Data<Sim>,
    shop: web::Path<String>,
    body: web::Json<Advance>,
) -> HttpResponse {
    let shop = shop.into_inner();
    let changes = {
        let mut state = sim.state();
        let seed = state.seed;
        let store = state.shopify_store(&shop);
        apply(store, &shop, seed, &body)
    };
    let mut sent = Vec::new();
    for (topic, payload) in changes {
        if body.deliver == Some(false) {
            sent.push(json!({ "topic": topic, "deliveries": [] }));
        } else {
            sent.push(deliver(&sim, &shop, &topic, &payload, None).await);
        }
    }
    HttpResponse::Ok().json(json!({ "sent": sent }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Send {
    topic: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    webhook_id: Option<String>,
    /// For `customers/*` privacy topics: whose data (default: the first customer with orders).
    #[serde(default)]
    customer_id: Option<i64>,
}

fn privacy_payload(store: &Store, shop: &str, topic: &str, customer_id: Option<i64>) -> Value {
    let customer_id = customer_id.or_else(|| {
        store
            .orders
            .iter()
            .find_map(|o| o["customer"]["id"].as_i64())
    });
    let customer = store
        .customers
        .iter()
        .find(|c| c["id"].as_i64() == customer_id)
        .cloned()
        .unwrap_or(json!({ "id": customer_id }));
    let orders: Vec<i64> = store
        .orders
        .iter()
        .filter(|o| o["customer"]["id"].as_i64() == customer_id)
        .filter_map(|o| o["id"].as_i64())
        .collect();
    let who =
        json!({ "id": customer["id"], "email": customer["email"], "phone": customer["phone"] });
    match topic {
        "customers/data_request" => json!({
            "shop_id": store.shop_id, "shop_domain": shop, "orders_requested": orders,
            "customer": who, "data_request": { "id": 9_000 + store.clock % 1000 }
        }),
        "customers/redact" => json!({
            "shop_id": store.shop_id, "shop_domain": shop, "customer": who, "orders_to_redact": orders
        }),
        "shop/redact" => json!({ "shop_id": store.shop_id, "shop_domain": shop }),
        _ => {
            json!({ "id": store.shop_id, "name": shop.trim_end_matches(".myshopify.com"), "domain": shop, "myshopify_domain": shop })
        }
    }
}

async fn send(sim: web::Data<Sim>, shop: web::Path<String>, body: web::Json<Send>) -> HttpResponse {
    let shop = shop.into_inner();
    let payload = match &body.payload {
        Some(p) => p.clone(),
        None => {
            let mut state = sim.state();
            let store = state.shopify_store(&shop);
            privacy_payload(store, &shop, &body.topic, body.customer_id)
        }
    };
    let result = deliver(&sim, &shop, &body.topic, &payload, body.webhook_id.clone()).await;
    HttpResponse::Ok().json(result)
}

/// Sends `payload` for `topic` to every subscription of `shop` (the mandatory privacy topics
/// go to every subscription's address, as apps declare one address for them). Returns the
/// webhook id and each delivery's HTTP status.
async fn deliver(
    sim: &Sim,
    shop: &str,
    topic: &str,
    payload: &Value,
    webhook_id: Option<String>,
) -> Value {
    let (secret, addresses, version) = {
        let state = sim.state();
        let subs: Vec<&Value> = state
            .shopify_webhooks
            .iter()
            .filter(|w| w["shop"] == shop)
            .collect();
        let mandatory = matches!(
            topic,
            "customers/data_request" | "customers/redact" | "shop/redact"
        );
        let mut addresses: Vec<String> = subs
            .iter()
            .filter(|w| mandatory || w["topic"] == topic)
            .filter_map(|w| w["address"].as_str().map(str::to_owned))
            .collect();
        addresses.dedup();
        let version = subs
            .first()
            .and_then(|w| w["api_version"].as_str())
            .unwrap_or("2024-10")
            .to_owned();
        (
            state.config.shopify.client_secret.clone(),
            addresses,
            version,
        )
    };
    let webhook_id = webhook_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let body = serde_json::to_vec(payload).unwrap_or_default();
    let signature = body_hmac(&body, &secret);
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for address in &addresses {
        let status = http
            .post(address)
            .header("content-type", "application/json")
            .header("X-Shopify-Topic", topic)
            .header("X-Shopify-Hmac-Sha256", &signature)
            .header("X-Shopify-Shop-Domain", shop)
            .header("X-Shopify-Webhook-Id", &webhook_id)
            .header("X-Shopify-Event-Id", uuid::Uuid::new_v4().to_string())
            .header("X-Shopify-Triggered-At", chrono::Utc::now().to_rfc3339())
            .header("X-Shopify-API-Version", &version)
            .body(body.clone())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        statuses.push(json!({ "address": address, "status": status }));
    }
    json!({ "topic": topic, "webhook_id": webhook_id, "deliveries": statuses })
}
