//! One module per resource. Each registers its handlers through `utoipa_actix_web`, so the
//! OpenAPI document lists exactly the routes that exist.

pub mod api_keys;
pub mod audit_log;
pub mod auth;
pub mod dashboard;
pub mod fx_rates;
pub mod health;
pub mod integrations;
pub mod invitations;
pub mod jobs;
pub mod members;
pub mod metrics;
pub mod mfa;
pub mod oauth;
pub mod organizations;
pub mod webhooks;

use utoipa_actix_web::service_config::ServiceConfig;

/// Everything under `/api/v1`.
pub fn api_v1(cfg: &mut ServiceConfig) {
    auth::configure(cfg);
    mfa::configure(cfg);
    organizations::configure(cfg);
    members::configure(cfg);
    invitations::configure(cfg);
    api_keys::configure(cfg);
    audit_log::configure(cfg);
    integrations::configure(cfg);
    jobs::configure(cfg);
    metrics::configure(cfg);
    fx_rates::configure(cfg);
    dashboard::configure(cfg);
}

/// A list response: `{"data": [...], "next_cursor": ...}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ListResponse<T: utoipa::ToSchema> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T: utoipa::ToSchema> ListResponse<T> {
    pub fn all(data: Vec<T>) -> Self {
        ListResponse {
            data,
            next_cursor: None,
        }
    }
}
