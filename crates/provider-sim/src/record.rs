//! The request log: every provider request served, with when and how it was answered, so tests can
//! count pages fetched and check the spacing of retries.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use serde::Serialize;

use crate::Sim;

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub seq: u64,
    /// Milliseconds since the simulator started, when the request arrived.
    pub at_ms: u64,
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let sim = req.app_data::<web::Data<Sim>>().cloned();
    let path = req.path().to_owned();
    let control = path.starts_with("/_sim/");
    let method = req.method().to_string();
    let query = req.query_string().to_owned();
    let at_ms = sim.as_ref().map(|s| s.now_ms()).unwrap_or(0);
    let res = next.call(req).await?;
    if let (Some(sim), false) = (sim, control) {
        let mut state = sim.state();
        let seq = state.log.len() as u64 + 1;
        state.log.push(RequestRecord {
            seq,
            at_ms,
            method,
            path,
            query,
            status: res.status().as_u16(),
        });
    }
    Ok(res)
}
