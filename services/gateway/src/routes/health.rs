use std::time::Duration;

use actix_web::{get, web, HttpResponse};
use biz_core::readiness;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz);
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
