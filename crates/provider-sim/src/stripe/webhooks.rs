//! Stripe webhook endpoints, changes to the account, and signed event delivery.
//!
//! - `POST /v1/webhook_endpoints` (form: `url`, `enabled_events[]`, …) → the endpoint with its
//!   `secret` (shown only here, as Stripe does); `GET /v1/webhook_endpoints`;
//!   `DELETE /v1/webhook_endpoints/{id}`.
//! - `POST /_sim/stripe/advance` `{changes, seed, deliver, shuffle, duplicate_every}`: makes
//!   `changes` changes to the account (cancellations, scheduled cancellations, quantity changes,
//!   refunds, new subscribers, customer updates and deletions), each with the events Stripe would
//!   emit, then delivers those events to every endpoint, signed as Stripe signs them
//!   (`Stripe-Signature: t=…,v1=hex(HMAC-SHA256(secret, "{t}.{body}"))`), optionally out of
//!   order and with some delivered twice.
//! - `POST /_sim/stripe/replay`: delivers every event made so far again, in order.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use ring::hmac;
use serde::Deserialize;
use serde_json::{json, Value};

use super::data::{event, id};
use super::{admit, error, respond, serve};
use crate::Sim;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/webhook_endpoints", web::post().to(create_endpoint))
        .route("/v1/webhook_endpoints", web::get().to(list_endpoints))
        .route(
            "/v1/webhook_endpoints/{id}",
            web::delete().to(delete_endpoint),
        )
        .route("/_sim/stripe/advance", web::post().to(advance))
        .route("/_sim/stripe/replay", web::post().to(replay))
        .route(
            "/_sim/stripe/endpoints",
            web::get().to(endpoints_with_secrets),
        );
}

/// For tests: the registered endpoints with their secrets.
async fn endpoints_with_secrets(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "data": sim.state().stripe_endpoints }))
}

async fn create_endpoint(
    sim: web::Data<Sim>,
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
) -> HttpResponse {
    let (latency, fault) = match admit(&sim, &req) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let form = super::array_keys(form.into_inner());
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let Some(url) = get("url") else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: url.",
            Some("url"),
        );
    };
    let events: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "enabled_events[]")
        .map(|(_, v)| v.clone())
        .collect();
    if events.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: enabled_events.",
            Some("enabled_events"),
        );
    }
    let endpoint = {
        let mut state = sim.state();
        let mut rng = fastrand::Rng::new();
        let endpoint = json!({
            "id": id("we", &mut rng), "object": "webhook_endpoint", "api_version": get("api_version"),
            "application": null, "created": state.stripe_clock, "description": get("description"),
            "enabled_events": events, "livemode": false, "metadata": {},
            "secret": format!("whsec_{}", &id("x", &mut rng)[2..]), "status": "enabled", "url": url
        });
        state.stripe_endpoints.push(endpoint.clone());
        endpoint
    };
    serve(&sim, latency, fault, endpoint).await
}

async fn list_endpoints(sim: web::Data<Sim>, req: HttpRequest) -> HttpResponse {
    if let Err(response) = admit(&sim, &req) {
        return response;
    }
    let data: Vec<Value> = sim
        .state()
        .stripe_endpoints
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Some(m) = e.as_object_mut() {
                m.remove("secret");
            }
            e
        })
        .collect();
    respond(StatusCode::OK).json(json!({ "object": "list", "url": "/v1/webhook_endpoints", "has_more": false, "data": data }))
}

async fn delete_endpoint(
    sim: web::Data<Sim>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Err(response) = admit(&sim, &req) {
        return response;
    }
    let id = path.into_inner();
    let removed = {
        let mut state = sim.state();
        let before = state.stripe_endpoints.len();
        state.stripe_endpoints.retain(|e| e["id"] != id.as_str());
        before != state.stripe_endpoints.len()
    };
    if removed {
        respond(StatusCode::OK)
            .json(json!({ "id": id, "object": "webhook_endpoint", "deleted": true }))
    } else {
        error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such webhook endpoint: '{id}'"),
            Some("id"),
        )
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Advance {
    changes: usize,
    seed: u64,
    deliver: bool,
    /// Deliver in a shuffled order instead of the order the events happened.
    shuffle: bool,
    /// Deliver every n-th event twice (0: never).
    duplicate_every: usize,
}

impl Default for Advance {
    fn default() -> Self {
        Advance {
            changes: 10,
            seed: 1,
            deliver: true,
            shuffle: false,
            duplicate_every: 0,
        }
    }
}

async fn advance(sim: web::Data<Sim>, body: web::Json<Advance>) -> HttpResponse {
    let events = {
        let mut state = sim.state();
        let mut rng = fastrand::Rng::with_seed(body.seed);
        let mut made = Vec::new();
        for _ in 0..body.changes {
            state.stripe_clock += 60;
            let clock = state.stripe_clock;
            made.extend(change(&mut state.stripe, &mut rng, clock));
        }
        // Delivered as Stripe delivers them: objects unexpanded.
        let made: Vec<Value> = made
            .iter()
            .map(|e| super::shape(e, &super::Params(Vec::new())))
            .collect();
        for e in &made {
            state.stripe.events.insert(0, e.clone());
        }
        state.stripe_changes.extend(made.iter().cloned());
        state.stripe_positions.clear();
        made
    };
    let mut order = events.clone();
    if body.shuffle {
        fastrand::Rng::with_seed(body.seed ^ 0x5348).shuffle(&mut order);
    }
    if body.duplicate_every > 0 {
        let twice: Vec<Value> = order
            .iter()
            .step_by(body.duplicate_every)
            .cloned()
            .collect();
        order.extend(twice);
    }
    let delivered = if body.deliver {
        deliver(&sim, &order).await
    } else {
        Delivered::default()
    };
    HttpResponse::Ok().json(json!({
        "events": events.iter().map(|e| json!({ "id": e["id"], "type": e["type"] })).collect::<Vec<_>>(),
        "deliveries": delivered.attempts,
        "failed_deliveries": delivered.failed,
        "errors": delivered.errors,
    }))
}

async fn replay(sim: web::Data<Sim>) -> HttpResponse {
    let events = sim.state().stripe_changes.clone();
    let delivered = deliver(&sim, &events).await;
    HttpResponse::Ok()
        .json(json!({ "deliveries": delivered.attempts, "failed_deliveries": delivered.failed }))
}

#[derive(Default)]
struct Delivered {
    attempts: usize,
    failed: usize,
    /// The first few failures, for whoever debugs the receiver.
    errors: Vec<String>,
}

/// POSTs each event to every registered endpoint, signed with that endpoint's secret and the
/// current time, one after the other.
async fn deliver(sim: &Sim, events: &[Value]) -> Delivered {
    let endpoints = sim.state().stripe_endpoints.clone();
    let client = reqwest::Client::new();
    let mut out = Delivered::default();
    for e in events {
        let body = e.to_string();
        for endpoint in &endpoints {
            let (Some(url), Some(secret)) = (endpoint["url"].as_str(), endpoint["secret"].as_str())
            else {
                continue;
            };
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            out.attempts += 1;
            let sent = client
                .post(url)
                .header("Content-Type", "application/json; charset=utf-8")
                .header("Stripe-Signature", signature(&body, secret, t))
                .body(body.clone())
                .send()
                .await;
            let failure = match sent {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => Some(format!(
                    "{} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => Some(e.to_string()),
            };
            if let Some(f) = failure {
                out.failed += 1;
                if out.errors.len() < 3 {
                    out.errors.push(f);
                }
            }
        }
    }
    out
}

/// Stripe's scheme: `t={t},v1={hex HMAC-SHA256(secret, "{t}.{body}")}`.
pub fn signature(body: &str, secret: &str, t: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// One change to the account at `clock`, and the events it emits.
fn change(d: &mut super::Dataset, rng: &mut fastrand::Rng, clock: i64) -> Vec<Value> {
    let pick = |n: usize, rng: &mut fastrand::Rng| if n == 0 { None } else { Some(rng.usize(..n)) };
    match rng.u8(..7) {
        // Cancel now.
        0 => {
            let active: Vec<usize> = (0..d.subscriptions.len())
                .filter(|i| d.subscriptions[*i]["status"] == "active")
                .collect();
            let Some(i) = pick(active.len(), rng).map(|k| active[k]) else {
                return vec![];
            };
            let s = &mut d.subscriptions[i];
            s["status"] = json!("canceled");
            s["canceled_at"] = json!(clock);
            s["ended_at"] = json!(clock);
            vec![event(rng, "customer.subscription.deleted", s, clock)]
        }
        // Cancel at period end.
        1 => {
            let open: Vec<usize> = (0..d.subscriptions.len())
                .filter(|i| {
                    d.subscriptions[*i]["status"] == "active"
                        && d.subscriptions[*i]["cancel_at_period_end"] == false
                })
                .collect();
            let Some(i) = pick(open.len(), rng).map(|k| open[k]) else {
                return vec![];
            };
            let s = &mut d.subscriptions[i];
            s["cancel_at_period_end"] = json!(true);
            s["canceled_at"] = json!(clock);
            let mut e = event(rng, "customer.subscription.updated", s, clock);
            e["data"]["previous_attributes"] =
                json!({ "cancel_at_period_end": false, "canceled_at": null });
            vec![e]
        }
        // Quantity change on a licensed first item.
        2 => {
            let licensed: Vec<usize> = (0..d.subscriptions.len())
                .filter(|i| {
                    let s = &d.subscriptions[*i];
                    matches!(s["status"].as_str(), Some("active" | "past_due"))
                        && s["items"]["data"][0]["quantity"].is_i64()
                })
                .collect();
            let Some(i) = pick(licensed.len(), rng).map(|k| licensed[k]) else {
                return vec![];
            };
            let s = &mut d.subscriptions[i];
            let before = s["items"]["data"][0]["quantity"].as_i64().unwrap_or(1);
            let after = (before + rng.i64(-1..=3)).max(1);
            s["items"]["data"][0]["quantity"] = json!(after);
            let mut e = event(rng, "customer.subscription.updated", s, clock);
            e["data"]["previous_attributes"] =
                json!({ "items": { "data": [{ "quantity": before }] } });
            vec![e]
        }
        // A refund, partial or full, of what is left on a succeeded charge.
        3 => {
            let refundable: Vec<usize> = (0..d.charges.len())
                .filter(|i| {
                    d.charges[*i]["status"] == "succeeded" && d.charges[*i]["refunded"] == false
                })
                .collect();
            let Some(i) = pick(refundable.len(), rng).map(|k| refundable[k]) else {
                return vec![];
            };
            let c = &mut d.charges[i];
            let left =
                c["amount"].as_i64().unwrap_or(0) - c["amount_refunded"].as_i64().unwrap_or(0);
            let amount = if rng.bool() { left } else { (left / 3).max(1) };
            c["amount_refunded"] = json!(c["amount_refunded"].as_i64().unwrap_or(0) + amount);
            c["refunded"] = json!(c["amount_refunded"] == c["amount"]);
            let refund = json!({
                "id": id("re", rng), "object": "refund", "amount": amount, "balance_transaction": null,
                "charge": c["id"], "created": clock, "currency": c["currency"], "metadata": {},
                "payment_intent": c["payment_intent"], "reason": "requested_by_customer",
                "receipt_number": null, "source_transfer_reversal": null, "status": "succeeded",
                "transfer_reversal": null
            });
            let charge_event = event(rng, "charge.refunded", c, clock);
            d.refunds.insert(0, refund.clone());
            vec![charge_event, event(rng, "refund.created", &refund, clock)]
        }
        // A customer's email changes.
        4 => {
            let Some(i) = pick(d.customers.len(), rng) else {
                return vec![];
            };
            let c = &mut d.customers[i];
            c["email"] = json!(format!("changed{}@example.com", clock));
            vec![event(rng, "customer.updated", c, clock)]
        }
        // A customer without subscriptions is deleted.
        5 => {
            let subscribed: std::collections::HashSet<&str> = d
                .subscriptions
                .iter()
                .filter_map(|s| s["customer"].as_str())
                .collect();
            let idle: Vec<usize> = (0..d.customers.len())
                .filter(|i| {
                    !subscribed.contains(d.customers[*i]["id"].as_str().unwrap_or_default())
                })
                .collect();
            let Some(i) = pick(idle.len(), rng).map(|k| idle[k]) else {
                return vec![];
            };
            let c = d.customers.remove(i);
            vec![event(rng, "customer.deleted", &c, clock)]
        }
        // A new subscriber: customer, subscription (a copy of an active one's plan), first
        // invoice and payment.
        _ => {
            let active: Vec<usize> = (0..d.subscriptions.len())
                .filter(|i| d.subscriptions[*i]["status"] == "active")
                .collect();
            let Some(template) =
                pick(active.len(), rng).map(|k| d.subscriptions[active[k]].clone())
            else {
                return vec![];
            };
            let customer_id = id("cus", rng);
            let currency = template["currency"].clone();
            let customer = json!({
                "id": customer_id, "object": "customer", "address": null, "balance": 0, "created": clock,
                "currency": currency, "default_source": null, "delinquent": false, "description": null,
                "discount": null, "email": format!("new{}@example.com", clock), "invoice_prefix": "NEW00001",
                "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
                "livemode": false, "metadata": {}, "name": "New Subscriber", "phone": null,
                "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null
            });
            let sub_id = id("sub", rng);
            let mut sub = template.clone();
            sub["id"] = json!(sub_id);
            sub["customer"] = json!(customer_id);
            for key in [
                "created",
                "start_date",
                "billing_cycle_anchor",
                "current_period_start",
            ] {
                sub[key] = json!(clock);
            }
            sub["current_period_end"] = json!(clock + 30 * 86_400);
            for key in [
                "canceled_at",
                "ended_at",
                "cancel_at",
                "trial_end",
                "trial_start",
            ] {
                sub[key] = Value::Null;
            }
            sub["cancel_at_period_end"] = json!(false);
            sub["pause_collection"] = Value::Null;
            sub["discount"] = Value::Null;
            sub["discounts"] = json!([]);
            for item in sub["items"]["data"].as_array_mut().into_iter().flatten() {
                item["id"] = json!(id("si", rng));
                item["subscription"] = json!(sub_id);
            }
            d.customers.insert(0, customer.clone());
            d.subscriptions.insert(0, sub.clone());
            vec![
                event(rng, "customer.created", &customer, clock),
                event(rng, "customer.subscription.created", &sub, clock),
            ]
        }
    }
}
