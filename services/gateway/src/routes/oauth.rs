//! OAuth callbacks (outside `/api/v1`: the provider redirects the browser here). The one-time
//! `state` issued when the flow started is the credential: it names the organisation and the
//! user, works once, and expires after 10 minutes. Every refusal is a 400 with a clear code and
//! stores nothing.

use actix_web::{get, web, HttpResponse};
use biz_core::crypto::tokens;
use biz_core::db::oauth_states::{self, StateRefusal};
use biz_core::db::{integrations, sync_runs};
use biz_core::jobs::{SyncIntegration, SyncMode};
use chrono::Utc;
use connectors::stripe::exchange_connect_code;
use connectors::ProviderError;
use diesel_async::AsyncConnection;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(stripe_callback).service(shopify_callback);
}

/// How far a Shopify callback's `timestamp` may be from our clock.
const SHOPIFY_TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// The topics subscribed at install (the privacy topics `customers/data_request`,
/// `customers/redact` and `shop/redact` are set in the app's configuration, not through the API).
pub const SHOPIFY_TOPICS: [&str; 12] = [
    "orders/create",
    "orders/updated",
    "orders/cancelled",
    "orders/delete",
    "refunds/create",
    "products/create",
    "products/update",
    "products/delete",
    "customers/create",
    "customers/update",
    "customers/delete",
    "app/uninstalled",
];

/// A failed code exchange: the provider's refusal is the caller's 400; anything else is the
/// provider being unavailable.
fn exchange_refused(provider: &str, e: ProviderError) -> ApiError {
    match e {
        ProviderError::Rejected { message, .. } | ProviderError::Unauthorized(message) => {
            ApiError::bad_request(
                "token_exchange_failed",
                format!("{provider} refused the code: {message}"),
            )
        }
        other => ApiError::Dependency {
            code: "provider_unavailable",
            message: format!(
                "{provider} could not exchange the code just now ({other}); start again"
            ),
        },
    }
}

fn refusal(refused: StateRefusal) -> ApiError {
    match refused {
        StateRefusal::Unknown => {
            ApiError::bad_request("invalid_state", "this state was not issued here")
        }
        StateRefusal::Used => ApiError::bad_request(
            "state_used",
            "this state was already used; start connecting again",
        ),
        StateRefusal::Expired => ApiError::bad_request(
            "state_expired",
            "this state expired; start connecting again",
        ),
    }
}

/// Shopify's redirect after the merchant approved the app. Checked in this order, each failure a
/// 400 that stores nothing: the `hmac` over the other parameters (constant time), the shop's
/// name, the `timestamp` (±5 minutes), the one-time `state`, that it was issued for this shop and,
/// when the browser is signed in, to this user.
/// Then the code is exchanged, the token stored sealed, and the webhooks registered.
#[utoipa::path(tag = "oauth", responses((status = 302, description = "Installed; to the dashboard's integrations page"), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/oauth/shopify/callback")]
async fn shopify_callback(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let params = query.into_inner();
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let providers = &state.settings.providers;
    biz_core::crypto::signatures::verify_shopify_query(
        &params,
        providers.shopify_client_secret.expose_secret().as_bytes(),
    )
    .map_err(|e| ApiError::bad_request("invalid_hmac", format!("the callback's hmac: {e}")))?;
    let shop = get("shop").unwrap_or_default();
    if !super::integrations::valid_shop(&shop) {
        return Err(ApiError::bad_request(
            "invalid_shop",
            "shop is not a myshopify domain",
        ));
    }
    let timestamp: i64 = get("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request("invalid_timestamp", "the callback has no timestamp")
        })?;
    if (Utc::now().timestamp() - timestamp).abs() > SHOPIFY_TIMESTAMP_TOLERANCE_SECS {
        return Err(ApiError::bad_request(
            "stale_timestamp",
            "the callback's timestamp is not recent; start installing again",
        ));
    }
    let raw_state = get("state")
        .ok_or_else(|| ApiError::bad_request("missing_state", "the callback has no state"))?;
    let mut conn = state.conn().await?;
    let issued = oauth_states::consume(&mut conn, &tokens::hash(&raw_state), "shopify")
        .await?
        .map_err(refusal)?;
    if issued.context["shop"] != shop.as_str() {
        return Err(ApiError::bad_request(
            "shop_mismatch",
            "the callback is for another shop than the install was started for",
        ));
    }
    check_state_owner(&req, &issued).await?;
    let code = get("code")
        .ok_or_else(|| ApiError::bad_request("missing_code", "the callback has no code"))?;
    let base = connectors::shopify::shop_base(&providers.shopify_api_base, &shop);
    let grant = connectors::shopify::exchange_code(
        &state.http,
        &base,
        &providers.shopify_client_id,
        &providers.shopify_client_secret,
        &code,
    )
    .await
    .map_err(|e| exchange_refused("Shopify", e))?;

    let id = Uuid::new_v4();
    let credentials = json!({ "access_token": grant.access_token, "scope": grant.scope });
    let sealed = state
        .keys
        .encrypt(
            &credentials.to_string(),
            &integrations::credentials_context(id),
        )
        .map_err(ApiError::internal)?;
    let org = issued.organization_id;
    let interval = state.settings.jobs.default_sync_interval_seconds;
    let actor = Actor {
        user_id: issued.user_id,
        api_key_id: None,
        ip: None,
        user_agent: None,
    };
    let settings = json!({ "api_version": providers.shopify_api_version, "scope": grant.scope });
    let max_attempts = state.settings.jobs.max_attempts;
    let run = conn
        .transaction::<_, ApiError, _>(async |conn| {
            integrations::insert(
                conn,
                &integrations::NewIntegration {
                    id,
                    organization_id: org,
                    provider: "shopify",
                    display_name: &shop,
                    external_account_id: Some(&shop),
                    credentials: Some(&sealed),
                    settings: &settings,
                    sync_interval_seconds: interval,
                    next_sync_at: Some(Utc::now() + chrono::Duration::seconds(interval.into())),
                    created_by: issued.user_id,
                },
            )
            .await?;
            // The backfill starts with the install; it is queued once the webhooks are subscribed.
            let (run, _) = sync_runs::create_or_existing(
                conn,
                org,
                id,
                SyncMode::Full.as_str(),
                "connect",
                max_attempts,
            )
            .await?;
            audit::record(
                conn,
                &actor,
                Some(org),
                "integration.connect",
                Some(("integration", id.to_string())),
                json!({ "provider": "shopify", "via": "oauth_install", "shop": shop }),
            )
            .await?;
            Ok(run)
        })
        .await?;
    // Subscriptions: a failure leaves the shop connected, synced on schedule only.
    let token = secrecy::SecretString::from(grant.access_token.clone());
    let address = format!(
        "{}/webhooks/shopify",
        state.settings.gateway.public_url.trim_end_matches('/')
    );
    for topic in SHOPIFY_TOPICS {
        if let Err(e) = connectors::shopify::create_webhook(
            &state.http,
            &base,
            &providers.shopify_api_version,
            &token,
            topic,
            &address,
        )
        .await
        {
            tracing::warn!(error = %e, topic, integration.id = %id, "could not subscribe a Shopify webhook");
        }
    }
    super::integrations::enqueue(&state, &mut conn, &run, SyncMode::Full).await;
    Ok(HttpResponse::Found()
        .insert_header((
            "Location",
            format!("/#/integrations?connected=shopify&integration_id={id}"),
        ))
        .finish())
}

/// The provider sends the user's browser back with its session cookie (SameSite=Lax allows a
/// top-level GET): a state issued to someone else is refused, so a link carrying another
/// user's state cannot connect that user's organisation from this browser. (Without a session
/// the unguessable, single-use state is what binds the callback to its flow.)
async fn check_state_owner(
    req: &actix_web::HttpRequest,
    issued: &oauth_states::OauthState,
) -> Result<(), ApiError> {
    match crate::auth::principal::signed_in_user(req).await {
        Some(user) if issued.user_id != Some(user) => Err(ApiError::bad_request(
            "state_not_yours",
            "this connection was started by another user",
        )),
        _ => Ok(()),
    }
}

/// How long a `state` stays valid.
pub const STATE_TTL_MINUTES: i64 = 10;

#[derive(Debug, Deserialize, IntoParams)]
pub struct StripeCallback {
    code: Option<String>,
    state: Option<String>,
    scope: Option<String>,
    /// Set instead of `code` when the user declined.
    error: Option<String>,
    error_description: Option<String>,
}

/// Stripe Connect's redirect after the user approved (or declined) read-only access.
#[utoipa::path(tag = "oauth", params(StripeCallback), responses((status = 302, description = "Connected; to the dashboard's integrations page"), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[get("/oauth/stripe/callback")]
async fn stripe_callback(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<StripeCallback>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let raw_state = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_state", "the callback has no state"))?;
    let mut conn = state.conn().await?;
    let issued = oauth_states::consume(&mut conn, &tokens::hash(raw_state), "stripe")
        .await?
        .map_err(refusal)?;
    check_state_owner(&req, &issued).await?;
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return Err(ApiError::bad_request(
            "oauth_denied",
            format!("Stripe did not grant access ({error}): {detail}"),
        ));
    }
    let code = q
        .code
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_code", "the callback has no code"))?;
    if q.scope.as_deref().is_some_and(|s| s != "read_only") {
        return Err(ApiError::bad_request(
            "unexpected_scope",
            "Stripe granted a scope other than read_only",
        ));
    }
    let providers = &state.settings.providers;
    let grant = exchange_connect_code(
        &state.http,
        &providers.stripe_connect_base,
        &providers.stripe_secret_key,
        &code,
    )
    .await
    .map_err(|e| exchange_refused("Stripe", e))?;

    let id = Uuid::new_v4();
    let mut credentials = json!({ "api_key": grant.access_token, "connect": true });
    if let Some(refresh) = &grant.refresh_token {
        credentials["refresh_token"] = json!(refresh);
    }
    let sealed = state
        .keys
        .encrypt(
            &credentials.to_string(),
            &integrations::credentials_context(id),
        )
        .map_err(ApiError::internal)?;
    let org = issued.organization_id;
    let interval = state.settings.jobs.default_sync_interval_seconds;
    let actor = Actor {
        user_id: issued.user_id,
        api_key_id: None,
        ip: None,
        user_agent: None,
    };
    let max_attempts = state.settings.jobs.max_attempts;
    let account = grant.stripe_user_id.clone();
    let run = conn
        .transaction::<_, ApiError, _>(async |conn| {
            integrations::insert(
                conn,
                &integrations::NewIntegration {
                    id,
                    organization_id: org,
                    provider: "stripe",
                    display_name: "Stripe (Connect)",
                    external_account_id: Some(&account),
                    credentials: Some(&sealed),
                    settings: &json!({ "connect": true, "livemode": grant.livemode }),
                    sync_interval_seconds: interval,
                    next_sync_at: Some(Utc::now() + chrono::Duration::seconds(interval.into())),
                    created_by: issued.user_id,
                },
            )
            .await?;
            let (run, _) = sync_runs::create_or_existing(
                conn,
                org,
                id,
                SyncMode::Full.as_str(),
                "connect",
                max_attempts,
            )
            .await?;
            audit::record(
                conn,
                &actor,
                Some(org),
                "integration.connect",
                Some(("integration", id.to_string())),
                json!({ "provider": "stripe", "via": "connect_oauth", "account": account }),
            )
            .await?;
            Ok(run)
        })
        .await?;
    let job = SyncIntegration {
        integration_id: id,
        mode: SyncMode::Full,
        sync_run_id: run.id,
    };
    if state.producer.push(job).await.is_ok() {
        let _ = sync_runs::mark_enqueued(&mut conn, run.id, Utc::now()).await;
    }
    Ok(HttpResponse::Found()
        .insert_header((
            "Location",
            format!("/#/integrations?connected=stripe&integration_id={id}"),
        ))
        .finish())
}

/// Issues a one-time state for `provider`, bound to the organisation and user.
pub async fn issue_state(
    conn: &mut biz_core::db::Conn,
    provider: &str,
    organization_id: Uuid,
    user_id: Option<Uuid>,
    context: serde_json::Value,
) -> Result<String, ApiError> {
    let raw = tokens::generate("bos_");
    oauth_states::insert(
        conn,
        &tokens::hash(&raw),
        provider,
        organization_id,
        user_id,
        &context,
        Utc::now() + chrono::Duration::minutes(STATE_TTL_MINUTES),
    )
    .await?;
    Ok(raw)
}
