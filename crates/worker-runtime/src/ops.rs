//! The worker's small HTTP port for probes and scraping.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};
use biz_core::{db, readiness};

#[derive(Clone)]
pub struct OpsState {
    pub service: &'static str,
    pub pool: db::Pool,
    pub redis: redis::Client,
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
    // The job counters arrive with the job pipeline; until then the process reports it is up.
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(format!(
            "# HELP biz_worker_up Whether the worker process is running.\n# TYPE biz_worker_up gauge\nbiz_worker_up{{service=\"{}\"}} 1\n",
            state.service
        ))
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
