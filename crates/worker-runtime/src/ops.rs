//! The worker's small HTTP port for probes and scraping.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use biz_core::jobs::{JobMetrics, Producer};
use biz_core::{db, readiness};

#[derive(Clone)]
pub struct OpsState {
    pub service: &'static str,
    pub pool: db::Pool,
    pub redis: redis::Client,
    pub producer: Producer,
    pub metrics: JobMetrics,
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let r = readiness::check(&state.pool, &state.redis, Duration::from_secs(2)).await;
    let body = serde_json::json!({
        "status": if r.ok() { "ok" } else { "unavailable" },
        "database": r.database,
        "redis": r.redis,
    });
    if r.ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    let body = state.metrics.render(state.service, &state.producer).await;
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(body)
}

pub fn serve(listener: TcpListener, state: OpsState) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
