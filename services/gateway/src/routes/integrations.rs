//! Integrations (connected provider accounts) and their sync runs.
//!
//! Connecting checks the credentials with one live call, stores them encrypted (bound to the
//! integration's id), and queues a full backfill. A sync request returns the integration's
//! queued or running run if it has one: one sync per integration at a time.

use actix_web::{delete, get, post, web, HttpRequest, HttpResponse};
use biz_core::db::accounts::Role;
use biz_core::db::{integrations, sync_runs};
use biz_core::jobs::{SyncIntegration, SyncMode};
use chrono::{DateTime, Utc};
use connectors::stripe::StripeClient;
use connectors::ProviderError;
use diesel_async::AsyncConnection;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(stripe_connect)
        .service(shopify_install)
        .service(create)
        .service(show)
        .service(disconnect)
        .service(start_sync)
        .service(list_runs)
        .service(show_run);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Stripe,
    Shopify,
    Woocommerce,
    GoogleAnalytics,
    FacebookAds,
}

impl Provider {
    fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Shopify => "shopify",
            Provider::Woocommerce => "woocommerce",
            Provider::GoogleAnalytics => "google_analytics",
            Provider::FacebookAds => "facebook_ads",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationView {
    id: Uuid,
    provider: String,
    /// `active`, `disconnected` or `error`.
    status: String,
    display_name: String,
    /// The provider's id for the connected account, when known.
    external_account_id: Option<String>,
    sync_interval_seconds: i32,
    next_sync_at: Option<DateTime<Utc>>,
    last_synced_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl From<&integrations::Integration> for IntegrationView {
    fn from(i: &integrations::Integration) -> Self {
        IntegrationView {
            id: i.id,
            provider: i.provider.clone(),
            status: i.status.clone(),
            display_name: i.display_name.clone(),
            external_account_id: i.external_account_id.clone(),
            sync_interval_seconds: i.sync_interval_seconds,
            next_sync_at: i.next_sync_at,
            last_synced_at: i.last_synced_at,
            created_at: i.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectIntegration {
    provider: Provider,
    /// Per provider: `stripe` {api_key}. Stored encrypted; never returned.
    #[schema(value_type = Object)]
    credentials: Value,
    #[schema(value_type = Option<Object>)]
    settings: Option<Value>,
    display_name: Option<String>,
    /// Seconds between scheduled incremental syncs (60 to 86400; default from the settings).
    sync_interval_seconds: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedIntegration {
    #[serde(flatten)]
    integration: IntegrationView,
    /// The backfill queued on connect.
    sync_run_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunView {
    id: Uuid,
    integration_id: Uuid,
    /// `full` or `incremental`.
    mode: String,
    /// `manual`, `schedule` or `connect`.
    trigger: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    status: String,
    /// Per resource: `{fetched, stored}`, updated after every stored page.
    #[schema(value_type = Object)]
    progress: Value,
    /// The resources a backfill walks and which are finished: what a progress bar shows.
    /// Providers do not say how many objects a list holds, so progress is counted in whole
    /// resources; `percent` is 100 once the run has succeeded.
    resources: Vec<ResourceProgress>,
    percent: u8,
    attempts: i32,
    max_attempts: i32,
    /// When a queued run is next tried (after a backoff).
    next_attempt_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    /// The last error: why the run failed, or why the last attempt did (while it retries).
    error: Option<String>,
    error_code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceProgress {
    name: String,
    fetched: u64,
    stored: u64,
    done: bool,
}

/// The resources a backfill walks, per provider, in the order runs report them.
const STRIPE_RESOURCES: [&str; 7] = [
    "customers",
    "prices",
    "subscriptions",
    "invoices",
    "charges",
    "payment_intents",
    "refunds",
];
const SHOPIFY_RESOURCES: [&str; 3] = ["customers", "products", "orders"];

fn resources(r: &sync_runs::SyncRun) -> (Vec<ResourceProgress>, u8) {
    let finished = r.status == "succeeded";
    // A run's provider shows in what it walks: Shopify's runs write all three of theirs when
    // they start; a run not started yet lists nothing.
    let shopify = r.progress.get("orders").is_some() || r.progress.get("products").is_some();
    let known: &[&str] = if shopify {
        &SHOPIFY_RESOURCES
    } else {
        &STRIPE_RESOURCES
    };
    let started = r.progress.as_object().is_some_and(|p| !p.is_empty());
    let walked: Vec<ResourceProgress> = known
        .iter()
        .filter(|name| (r.mode == "full" && started) || r.progress.get(**name).is_some())
        .map(|name| ResourceProgress {
            name: (*name).to_owned(),
            fetched: r.progress[*name]["fetched"].as_u64().unwrap_or(0),
            stored: r.progress[*name]["stored"].as_u64().unwrap_or(0),
            done: finished || r.checkpoint[*name]["done"] == true,
        })
        .collect();
    let percent = if finished {
        100
    } else if walked.is_empty() {
        0
    } else {
        (walked.iter().filter(|p| p.done).count() * 100 / walked.len()) as u8
    };
    (walked, percent)
}

impl From<&sync_runs::SyncRun> for SyncRunView {
    fn from(r: &sync_runs::SyncRun) -> Self {
        let (resources, percent) = resources(r);
        SyncRunView {
            resources,
            percent,
            id: r.id,
            integration_id: r.integration_id,
            mode: r.mode.clone(),
            trigger: r.trigger.clone(),
            status: r.status.clone(),
            progress: r.progress.clone(),
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            next_attempt_at: (r.status == "queued").then_some(r.next_attempt_at),
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            error: r.error.clone(),
            error_code: r.error_code.clone(),
        }
    }
}

/// The organisation's integrations, newest first.
#[utoipa::path(tag = "integrations", responses((status = 200, body = ListResponse<IntegrationView>), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/integrations")]
async fn list(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<ListResponse<IntegrationView>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let rows = integrations::list(&mut conn, org_id).await?;
    Ok(web::Json(ListResponse::all(
        rows.iter().map(IntegrationView::from).collect(),
    )))
}

/// Connects a provider account with credentials (admins). The credentials are checked with one
/// live call, stored encrypted, and a full backfill is queued. Shopify connects through its
/// install flow instead.
#[utoipa::path(tag = "integrations", request_body = ConnectIntegration, responses((status = 201, body = ConnectedIntegration), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
#[post("/orgs/{org_id}/integrations")]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    body: web::Json<ConnectIntegration>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let body = body.into_inner();
    let access = {
        let mut conn = state.conn().await?;
        who.require(&mut conn, org_id, Role::Admin).await?
    };
    let interval = match body.sync_interval_seconds {
        None => state.settings.jobs.default_sync_interval_seconds,
        Some(s @ 60..=86_400) => s,
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_sync_interval",
                "sync_interval_seconds must be between 60 and 86400",
            ))
        }
    };
    let settings = match body.settings {
        None | Some(Value::Null) => json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_settings",
                "settings must be an object",
            ))
        }
    };
    let credentials = match body.provider {
        Provider::Stripe => stripe_credentials(&state, &body.credentials).await?,
        Provider::Shopify => {
            return Err(ApiError::validation(
                "use_oauth_install",
                "Shopify connects through GET …/integrations/shopify/install?shop=…",
            ))
        }
        other => {
            return Err(ApiError::validation(
                "provider_not_supported",
                format!("connecting {} is not available yet", other.as_str()),
            ))
        }
    };
    let id = Uuid::new_v4();
    let mut credentials = credentials;
    if body.provider == Provider::Stripe {
        register_stripe_webhook(&state, id, &mut credentials).await;
    }
    let sealed = state
        .keys
        .encrypt(
            &credentials.to_string(),
            &integrations::credentials_context(id),
        )
        .map_err(ApiError::internal)?;
    let display_name = body
        .display_name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| default_name(body.provider).to_owned());
    if display_name.chars().count() > 100 {
        return Err(ApiError::validation(
            "invalid_display_name",
            "display_name is at most 100 characters",
        ));
    }
    let actor = Actor::of(&req, &access);
    let mut conn = state.conn().await?;
    let (integration, run) = conn
        .transaction::<_, ApiError, _>(async |conn| {
            let integration = integrations::insert(
                conn,
                &integrations::NewIntegration {
                    id,
                    organization_id: org_id,
                    provider: body.provider.as_str(),
                    display_name: &display_name,
                    external_account_id: None,
                    credentials: Some(&sealed),
                    settings: &settings,
                    sync_interval_seconds: interval,
                    next_sync_at: Some(Utc::now() + chrono::Duration::seconds(interval.into())),
                    created_by: access.user_id,
                },
            )
            .await?;
            let (run, _) = sync_runs::create_or_existing(
                conn,
                org_id,
                id,
                SyncMode::Full.as_str(),
                "connect",
                state.settings.jobs.max_attempts,
            )
            .await?;
            audit::record(
                conn,
                &actor,
                Some(org_id),
                "integration.connect",
                Some(("integration", id.to_string())),
                json!({ "provider": body.provider.as_str() }),
            )
            .await?;
            Ok((integration, run))
        })
        .await?;
    enqueue(&state, &mut conn, &run, SyncMode::Full).await;
    Ok(HttpResponse::Created().json(ConnectedIntegration {
        integration: IntegrationView::from(&integration),
        sync_run_id: run.id,
    }))
}

fn default_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Stripe => "Stripe",
        Provider::Shopify => "Shopify",
        Provider::Woocommerce => "WooCommerce",
        Provider::GoogleAnalytics => "Google Analytics 4",
        Provider::FacebookAds => "Facebook Ads",
    }
}

/// Validates Stripe credentials and proves them with one call. Returns what is stored.
async fn stripe_credentials(state: &AppState, credentials: &Value) -> Result<Value, ApiError> {
    let key = credentials
        .get("api_key")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let well_formed = ["sk_live_", "sk_test_", "rk_live_", "rk_test_"]
        .iter()
        .any(|p| key.starts_with(p));
    if !well_formed {
        return Err(ApiError::validation(
            "invalid_credentials",
            "credentials.api_key must be a Stripe secret (sk_) or restricted (rk_) key",
        ));
    }
    let client = StripeClient::new(
        state.http.clone(),
        &state.settings.providers.stripe_api_base,
        SecretString::from(key.to_owned()),
    );
    match client.check_credentials().await {
        Ok(()) => Ok(json!({ "api_key": key })),
        Err(ProviderError::Unauthorized(_)) => Err(ApiError::validation(
            "invalid_credentials",
            "Stripe refused this API key (it is wrong, revoked, or cannot read customers)",
        )),
        Err(ProviderError::Rejected { status, .. }) => Err(ApiError::validation(
            "invalid_credentials",
            format!("Stripe rejected the check with this key (HTTP {status})"),
        )),
        Err(e @ (ProviderError::RateLimited { .. } | ProviderError::Transient(_))) => {
            Err(ApiError::Dependency {
                code: "provider_unavailable",
                message: format!("Stripe could not check the key just now ({e}); try again"),
            })
        }
    }
}

/// Registers `…/webhooks/stripe/{id}` with the account and keeps the endpoint's id and secret
/// with the credentials. A key that may not manage webhooks (a restricted key without that
/// permission) still connects; its data then arrives through scheduled syncs only.
async fn register_stripe_webhook(state: &AppState, id: Uuid, credentials: &mut Value) {
    let key = credentials["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = StripeClient::new(
        state.http.clone(),
        &state.settings.providers.stripe_api_base,
        SecretString::from(key),
    );
    let url = format!(
        "{}/webhooks/stripe/{id}",
        state.settings.gateway.public_url.trim_end_matches('/')
    );
    match client.create_webhook_endpoint(&url).await {
        Ok((endpoint, secret)) => {
            credentials["webhook_endpoint_id"] = json!(endpoint);
            credentials["webhook_secret"] = json!(secret);
        }
        Err(e) => {
            tracing::warn!(error = %e, integration.id = %id, "could not register the Stripe webhook endpoint; syncs only")
        }
    }
}

/// Pushes the run's job. If Redis is away the run stays queued and a worker's sweeper pushes it
/// once Redis is back, so the request still succeeds.
pub(crate) async fn enqueue(
    state: &AppState,
    conn: &mut biz_core::db::Conn,
    run: &sync_runs::SyncRun,
    mode: SyncMode,
) {
    let job = SyncIntegration {
        integration_id: run.integration_id,
        mode,
        sync_run_id: run.id,
    };
    match state.producer.push(job).await {
        Ok(()) => {
            if let Err(e) = sync_runs::mark_enqueued(conn, run.id, Utc::now()).await {
                tracing::warn!(error = %e, sync_run.id = %run.id, "could not record the enqueue");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, sync_run.id = %run.id, "queue unavailable; the sweeper will push the run")
        }
    }
}

/// Starts Stripe Connect (admins): a redirect to Stripe's authorization page asking for
/// read-only access, with a one-time `state` (10 minutes) bound to this organisation and user.
/// Stripe sends the user back to `GET /oauth/stripe/callback`.
#[utoipa::path(tag = "integrations", responses((status = 302, description = "To connect.stripe.com/oauth/authorize"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/integrations/stripe/connect")]
async fn stripe_connect(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let providers = &state.settings.providers;
    if providers.stripe_client_id.is_empty()
        || providers.stripe_secret_key.expose_secret().is_empty()
    {
        return Err(ApiError::validation(
            "stripe_connect_not_configured",
            "Stripe Connect needs STRIPE_CLIENT_ID and STRIPE_SECRET_KEY; connect with an API key instead",
        ));
    }
    let raw =
        super::oauth::issue_state(&mut conn, "stripe", org_id, access.user_id, json!({})).await?;
    let redirect_uri = format!(
        "{}/oauth/stripe/callback",
        state.settings.gateway.public_url.trim_end_matches('/')
    );
    let url = reqwest::Url::parse_with_params(
        &format!(
            "{}/oauth/authorize",
            providers.stripe_connect_base.trim_end_matches('/')
        ),
        &[
            ("response_type", "code"),
            ("client_id", providers.stripe_client_id.as_str()),
            ("scope", "read_only"),
            ("state", raw.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
        ],
    )
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .finish())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ShopifyInstall {
    /// The shop's myshopify domain, such as `acme.myshopify.com`.
    shop: Option<String>,
}

/// A shop's myshopify domain, as the contract allows it.
pub fn valid_shop(shop: &str) -> bool {
    shop.strip_suffix(".myshopify.com").is_some_and(|name| {
        name.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    })
}

/// Starts installing the Shopify app on a shop (admins): a redirect to the shop's authorization
/// page with the configured scopes and a one-time `state` (10 minutes) bound to this
/// organisation, this user and this shop. Shopify sends the merchant back to
/// `GET /oauth/shopify/callback`.
#[utoipa::path(tag = "integrations", params(ShopifyInstall), responses((status = 302, description = "To {shop}/admin/oauth/authorize"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/integrations/shopify/install")]
async fn shopify_install(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    query: web::Query<ShopifyInstall>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    let shop = query
        .shop
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !valid_shop(&shop) {
        return Err(ApiError::validation(
            "invalid_shop",
            "shop must be the store's myshopify domain, such as acme.myshopify.com",
        ));
    }
    let providers = &state.settings.providers;
    if providers.shopify_client_id.is_empty()
        || providers.shopify_client_secret.expose_secret().is_empty()
    {
        return Err(ApiError::validation(
            "shopify_not_configured",
            "installing the Shopify app needs SHOPIFY_CLIENT_ID and SHOPIFY_CLIENT_SECRET",
        ));
    }
    let raw = super::oauth::issue_state(
        &mut conn,
        "shopify",
        org_id,
        access.user_id,
        json!({ "shop": shop }),
    )
    .await?;
    let redirect_uri = format!(
        "{}/oauth/shopify/callback",
        state.settings.gateway.public_url.trim_end_matches('/')
    );
    let url = reqwest::Url::parse_with_params(
        &format!(
            "{}/admin/oauth/authorize",
            connectors::shopify::shop_base(&providers.shopify_api_base, &shop)
        ),
        &[
            ("client_id", providers.shopify_client_id.as_str()),
            ("scope", providers.shopify_scopes.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("state", raw.as_str()),
        ],
    )
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Found()
        .insert_header(("Location", url.to_string()))
        .finish())
}

/// One integration.
#[utoipa::path(tag = "integrations", responses((status = 200, body = IntegrationView), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/integrations/{integration_id}")]
async fn show(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<IntegrationView>, ApiError> {
    let (org_id, id) = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let row = integrations::find(&mut conn, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(IntegrationView::from(&row)))
}

/// Disconnects (admins): deletes the stored credentials and stops scheduled syncs. Synced data
/// stays.
#[utoipa::path(tag = "integrations", responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[delete("/orgs/{org_id}/integrations/{integration_id}")]
async fn disconnect(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, id) = path.into_inner();
    let mut conn = state.conn().await?;
    let access = who.require(&mut conn, org_id, Role::Admin).await?;
    if let Some(integration) = integrations::find(&mut conn, org_id, id).await? {
        remove_stripe_webhook(&state, &integration).await;
    }
    state.webhook_secrets.forget(id);
    if !integrations::disconnect(&mut conn, org_id, id).await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut conn,
        &Actor::of(&req, &access),
        Some(org_id),
        "integration.disconnect",
        Some(("integration", id.to_string())),
        json!({}),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Best effort: removes the integration's webhook endpoint at Stripe before its credentials go.
async fn remove_stripe_webhook(state: &AppState, integration: &integrations::Integration) {
    let Some(sealed) = integration
        .credentials
        .as_deref()
        .filter(|_| integration.provider == "stripe")
    else {
        return;
    };
    let Ok(opened) = state
        .keys
        .decrypt(sealed, &integrations::credentials_context(integration.id))
    else {
        return;
    };
    let credentials: Value =
        serde_json::from_str(opened.secret().expose_secret()).unwrap_or_default();
    let (Some(key), Some(endpoint)) = (
        credentials["api_key"].as_str(),
        credentials["webhook_endpoint_id"].as_str(),
    ) else {
        return;
    };
    let client = StripeClient::new(
        state.http.clone(),
        &state.settings.providers.stripe_api_base,
        SecretString::from(key.to_owned()),
    );
    if let Err(e) = client.delete_webhook_endpoint(endpoint).await {
        tracing::warn!(error = %e, integration.id = %integration.id, "could not remove the Stripe webhook endpoint");
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSync {
    /// `full` or `incremental` (default).
    mode: Option<SyncMode>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    sync_run_id: Uuid,
    status: String,
    /// False when the integration already had a queued or running run, which is returned.
    created: bool,
}

/// Starts a sync (members). 202 with the run's id; if a run is already queued or running, that
/// run is returned instead of starting another.
#[utoipa::path(tag = "integrations", request_body(content = Option<StartSync>), responses((status = 202, body = SyncStarted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/orgs/{org_id}/integrations/{integration_id}/sync")]
async fn start_sync(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (org_id, id) = path.into_inner();
    let mode = crate::extractors::optional_json::<StartSync>(&body)?
        .and_then(|b| b.mode)
        .unwrap_or(SyncMode::Incremental);
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Member).await?;
    let integration = integrations::find(&mut conn, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if integration.status != "active" || integration.credentials.is_none() {
        return Err(ApiError::conflict(
            "integration_not_connected",
            "this integration is disconnected; connect it again to sync",
        ));
    }
    let (run, created) = sync_runs::create_or_existing(
        &mut conn,
        org_id,
        id,
        mode.as_str(),
        "manual",
        state.settings.jobs.max_attempts,
    )
    .await?;
    if created {
        enqueue(&state, &mut conn, &run, mode).await;
    }
    Ok(HttpResponse::Accepted().json(SyncStarted {
        sync_run_id: run.id,
        status: run.status,
        created,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<i64>,
}

/// An integration's sync runs, newest first.
#[utoipa::path(tag = "integrations", params(RunsQuery), responses((status = 200, body = ListResponse<SyncRunView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/integrations/{integration_id}/sync-runs")]
async fn list_runs(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<RunsQuery>,
) -> Result<web::Json<ListResponse<SyncRunView>>, ApiError> {
    let (org_id, id) = path.into_inner();
    let limit = match query.limit {
        None => 20,
        Some(n @ 1..=100) => n,
        Some(_) => {
            return Err(ApiError::validation(
                "invalid_limit",
                "limit must be between 1 and 100",
            ))
        }
    };
    let before = query.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    integrations::find(&mut conn, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let runs = sync_runs::list_for_integration(&mut conn, org_id, id, before, limit + 1).await?;
    let has_more = runs.len() as i64 > limit;
    let page: Vec<_> = runs.into_iter().take(limit as usize).collect();
    let next_cursor = has_more
        .then(|| {
            page.last()
                .map(|r| format!("{}_{}", r.created_at.timestamp_micros(), r.id))
        })
        .flatten();
    Ok(web::Json(ListResponse {
        data: page.iter().map(SyncRunView::from).collect(),
        next_cursor,
    }))
}

fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || ApiError::validation("invalid_cursor", "cursor is not one this API gave out");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, id.parse().map_err(|_| bad())?))
}

/// One sync run: status, per-resource progress, timings and the last error.
#[utoipa::path(tag = "integrations", responses((status = 200, body = SyncRunView), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/sync-runs/{sync_run_id}")]
async fn show_run(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<SyncRunView>, ApiError> {
    let (org_id, id) = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let run = sync_runs::find(&mut conn, org_id, id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(web::Json(SyncRunView::from(&run)))
}
