//! `/_sim/…`: configure the simulator and read what it served.
//!
//! - `GET /_sim/config`, `POST /_sim/config` (a whole [`SimConfig`]; omitted fields take defaults)
//! - `POST /_sim/reset` (defaults, empty log)
//! - `GET /_sim/requests?path_prefix=/v1/customers` → `{total, data: [RequestRecord]}`

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::{Sim, SimConfig};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/config", web::get().to(get_config))
        .route("/_sim/config", web::post().to(set_config))
        .route("/_sim/reset", web::post().to(reset))
        .route("/_sim/requests", web::get().to(requests));
}

async fn get_config(sim: web::Data<Sim>) -> HttpResponse {
    HttpResponse::Ok().json(&sim.state().config)
}

async fn set_config(sim: web::Data<Sim>, body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<SimConfig>(&body) {
        Ok(config) => {
            sim.configure(config);
            HttpResponse::Ok().json(&sim.state().config)
        }
        Err(e) => HttpResponse::BadRequest().json(serde_json::json!({ "error": e.to_string() })),
    }
}

async fn reset(sim: web::Data<Sim>) -> HttpResponse {
    sim.reset();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct RequestsQuery {
    path_prefix: Option<String>,
}

async fn requests(sim: web::Data<Sim>, q: web::Query<RequestsQuery>) -> HttpResponse {
    let state = sim.state();
    let data: Vec<_> = state
        .log
        .iter()
        .filter(|r| {
            q.path_prefix
                .as_deref()
                .is_none_or(|p| r.path.starts_with(p))
        })
        .collect();
    HttpResponse::Ok().json(serde_json::json!({ "total": data.len(), "data": data }))
}
