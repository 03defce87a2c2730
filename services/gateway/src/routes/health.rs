use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use biz_core::readiness;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz).service(metrics);
}

#[derive(Serialize, ToSchema)]
struct Health {
    status: &'static str,
}

#[derive(Serialize, ToSchema)]
struct Ready {
    status: &'static str,
    database: &'static str,
    redis: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(tag = "ops", responses((status = 200, body = Health)))]
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: PostgreSQL and Redis both answer; 503 when either does not.
#[utoipa::path(tag = "ops", responses((status = 200, body = Ready), (status = 503, body = Ready)))]
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let r = readiness::check(&state.pool, &state.redis, Duration::from_secs(2)).await;
    let body = Ready {
        status: if r.ok() { "ok" } else { "unavailable" },
        database: r.database,
        redis: r.redis,
    };
    if r.ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus figures: queue depths and this process's job counters.
#[utoipa::path(tag = "ops", responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text")))]
#[get("/metrics")]
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = state
        .metrics
        .render_with("gateway", &state.producer, |r| {
            state.rate_limit_metrics.register(r)
        })
        .await;
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}
