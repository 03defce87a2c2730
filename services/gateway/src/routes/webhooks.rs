//! Provider webhooks in. Each is verified on the raw body before anything is parsed, stored
//! (unique per provider event id) before the provider gets its 2xx, and applied by a worker from
//! the webhook queue. A redelivery is acknowledged and changes nothing. These routes are not
//! rate-limited per user: their signatures are what admits them.

use actix_web::{post, web, HttpRequest, HttpResponse};
use biz_core::crypto::signatures::{verify_stripe, STRIPE_TOLERANCE_SECS};
use biz_core::db::{integrations, Conn};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::error::{ApiError, ErrorBody};
use crate::event_writer::Incoming;
use crate::extractors::read_body;
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(stripe_account)
        .service(stripe_platform)
        .service(shopify);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    received: bool,
    /// True when this event had been received before; nothing changed.
    duplicate: bool,
}

fn signature_error(e: biz_core::crypto::signatures::SignatureError) -> ApiError {
    ApiError::bad_request(e.code(), e.to_string())
}

/// A Stripe event for one connected account, signed with that account's endpoint secret.
#[utoipa::path(tag = "webhooks", request_body(content = String, description = "The event, as Stripe sent it"), responses((status = 200, body = Received), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/webhooks/stripe/{integration_id}")]
async fn stripe_account(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<Uuid>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.settings.gateway.webhook_limit_bytes).await?;
    let id = path.into_inner();
    // The endpoint secret and organisation, from a short-lived cache: a burst of events for one
    // account costs one lookup, not one per event.
    let (organization_id, secret) = match state.webhook_secrets.get(id) {
        Some(hit) => hit,
        None => {
            let mut conn = state.conn().await?;
            let integration = integrations::find_for_job(&mut conn, id)
                .await?
                .filter(|i| i.provider == "stripe" && i.status == "active")
                .ok_or(ApiError::NotFound)?;
            let secret = webhook_secret(&state, &mut conn, &integration).await?;
            state
                .webhook_secrets
                .put(id, integration.organization_id, &secret);
            (integration.organization_id, secret)
        }
    };
    verify(&req, &body, secret.as_bytes())?;
    let event = parse_event(&body)?;
    store(&state, organization_id, id, &event, &body).await
}

/// Stripe Connect (platform) events, signed with `STRIPE_WEBHOOK_SECRET` and routed by the
/// event's `account` to the integration connected to that account.
#[utoipa::path(tag = "webhooks", request_body(content = String, description = "The event, as Stripe sent it"), responses((status = 200, body = Received), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/webhooks/stripe")]
async fn stripe_platform(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.settings.gateway.webhook_limit_bytes).await?;
    let secret = state
        .settings
        .providers
        .stripe_webhook_secret
        .expose_secret()
        .to_owned();
    if secret.is_empty() {
        return Err(ApiError::bad_request(
            "webhook_not_configured",
            "no platform webhook secret is configured (STRIPE_WEBHOOK_SECRET)",
        ));
    }
    verify(&req, &body, secret.as_bytes())?;
    let event = parse_event(&body)?;
    let account = event["account"].as_str().unwrap_or_default();
    let mut conn = state.conn().await?;
    let Some(integration) = integrations::find_by_account(&mut conn, "stripe", account).await?
    else {
        // Verified, but for no account connected here (disconnected since): acknowledged so
        // Stripe stops retrying, and not stored.
        tracing::info!(account, event.id = %event["id"], "platform event for an account not connected; ignored");
        return Ok(HttpResponse::Ok().json(Received {
            received: true,
            duplicate: false,
        }));
    };
    drop(conn);
    store(
        &state,
        integration.organization_id,
        integration.id,
        &event,
        &body,
    )
    .await
}

/// A Shopify webhook, signed with the app's client secret (`X-Shopify-Hmac-Sha256`, base64
/// HMAC-SHA256 of the raw body) and routed by `X-Shopify-Shop-Domain`; deduplicated by
/// `X-Shopify-Webhook-Id`. Topics: orders, refunds, products, customers, `app/uninstalled` and
/// the mandatory privacy topics.
#[utoipa::path(tag = "webhooks", request_body(content = String, description = "The payload, as Shopify sent it"), responses((status = 200, body = Received), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/webhooks/shopify")]
async fn shopify(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&req, payload, state.settings.gateway.webhook_limit_bytes).await?;
    let secret = state
        .settings
        .providers
        .shopify_client_secret
        .expose_secret();
    if secret.is_empty() {
        return Err(ApiError::bad_request(
            "webhook_not_configured",
            "no Shopify app secret is configured (SHOPIFY_CLIENT_SECRET)",
        ));
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|h| h.to_str().unwrap_or("\u{0}").to_owned())
    };
    // Verified before anything in the body or the other headers is believed.
    biz_core::crypto::signatures::verify_body_base64(
        header("X-Shopify-Hmac-Sha256").as_deref(),
        &body,
        secret.as_bytes(),
    )
    .map_err(signature_error)?;
    let (Some(topic), Some(shop), Some(webhook_id)) = (
        header("X-Shopify-Topic"),
        header("X-Shopify-Shop-Domain"),
        header("X-Shopify-Webhook-Id"),
    ) else {
        return Err(ApiError::bad_request(
            "missing_headers",
            "X-Shopify-Topic, X-Shopify-Shop-Domain and X-Shopify-Webhook-Id are required",
        ));
    };
    if !serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object()) {
        return Err(ApiError::bad_request(
            "malformed_json",
            "the body is not a JSON object",
        ));
    }
    let mut conn = state.conn().await?;
    let Some(integration) = integrations::find_shop(&mut conn, &shop).await? else {
        // Verified, but for a shop not installed here: acknowledged so Shopify stops retrying.
        tracing::info!(shop = %shop, topic = %topic, "Shopify webhook for a shop not installed here; ignored");
        return Ok(HttpResponse::Ok().json(Received {
            received: true,
            duplicate: false,
        }));
    };
    drop(conn);
    let payload = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not UTF-8"))?;
    let inserted = state
        .event_writer
        .store(Incoming {
            organization_id: integration.organization_id,
            integration_id: integration.id,
            provider: "shopify",
            external_id: webhook_id,
            event_type: topic,
            payload: payload.to_owned(),
        })
        .await
        .map_err(|why| ApiError::internal(anyhow::anyhow!("storing a webhook event: {why}")))?;
    let Some(row) = inserted else {
        return Ok(HttpResponse::Ok().json(Received {
            received: true,
            duplicate: true,
        }));
    };
    state.webhook_queue.enqueue(&state.pool, row).await;
    Ok(HttpResponse::Ok().json(Received {
        received: true,
        duplicate: false,
    }))
}

async fn webhook_secret(
    state: &AppState,
    conn: &mut Conn,
    integration: &integrations::Integration,
) -> Result<String, ApiError> {
    let not_configured = || {
        ApiError::bad_request(
            "webhook_not_configured",
            "this integration has no webhook endpoint secret",
        )
    };
    let credentials = match integrations::open_credentials(conn, &state.keys, integration).await {
        Ok(c) => c,
        Err(integrations::CredentialsError::Missing) => return Err(not_configured()),
        Err(integrations::CredentialsError::Db(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    credentials["webhook_secret"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(not_configured)
}

fn verify(req: &HttpRequest, body: &[u8], secret: &[u8]) -> Result<(), ApiError> {
    let header = req
        .headers()
        .get("Stripe-Signature")
        .map(|h| h.to_str().unwrap_or("\u{0}"));
    verify_stripe(
        header,
        body,
        secret,
        chrono::Utc::now().timestamp(),
        STRIPE_TOLERANCE_SECS,
    )
    .map_err(signature_error)
}

/// A verified body must still be an event: `{id: "evt_…", type, created, data: {object}}`.
fn parse_event(body: &[u8]) -> Result<Value, ApiError> {
    let event: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("malformed_json", format!("the body is not valid JSON: {e}"))
    })?;
    let ok = event["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("evt_"))
        && event["type"].is_string()
        && event["created"].is_i64()
        && event["data"]["object"].is_object();
    if !ok {
        return Err(ApiError::validation(
            "invalid_event",
            "the body is not a Stripe event (id, type, created, data.object)",
        ));
    }
    Ok(event)
}

async fn store(
    state: &AppState,
    organization_id: Uuid,
    integration_id: Uuid,
    event: &Value,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let payload = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("malformed_json", "the body is not UTF-8"))?;
    let inserted = state
        .event_writer
        .store(Incoming {
            organization_id,
            integration_id,
            provider: "stripe",
            external_id: event["id"].as_str().unwrap_or_default().to_owned(),
            event_type: event["type"].as_str().unwrap_or_default().to_owned(),
            payload: payload.to_owned(),
        })
        .await
        .map_err(|why| ApiError::internal(anyhow::anyhow!("storing a webhook event: {why}")))?;
    let Some(row) = inserted else {
        return Ok(HttpResponse::Ok().json(Received {
            received: true,
            duplicate: true,
        }));
    };
    // Stored: the answer is 200 whatever happens next. Queueing happens off the request path,
    // in batches; if Redis is away the sweeper queues it.
    state.webhook_queue.enqueue(&state.pool, row).await;
    Ok(HttpResponse::Ok().json(Received {
        received: true,
        duplicate: false,
    }))
}
