//! Rate limiting by tier (contract section 7): AUTH per client address on the sign-in routes,
//! WRITE and READ per user or API key on the rest of the API. Webhooks, OAuth callbacks, health
//! and metrics are not limited here: signatures and the network admit them.
//!
//! Both backends implement GCRA (a token bucket without a timer): `limit` requests at once, one
//! more every `60 s / limit`. [`memory`] keeps buckets in this process (governor); [`redis`]
//! keeps them in Redis with one atomic script per check, on Redis's clock, so every gateway
//! instance spends one budget. Every limited response says where the caller stands:
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the budget
//! is whole again), and `Retry-After` on a 429.

pub mod memory;
pub mod redis;

use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use biz_core::settings::{RateLimitBackend, RateLimitSettings};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Auth,
    Write,
    Read,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Auth => "auth",
            Tier::Write => "write",
            Tier::Read => "read",
        }
    }
}

/// Where a caller stands in a tier after one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Until the whole budget is back.
    pub reset: Duration,
    /// Until the next request would be let through (zero when this one was).
    pub retry_after: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("rate-limit backend unavailable: {0}")]
pub struct Unavailable(pub String);

/// The budgets per tier.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    pub auth: u32,
    pub write: u32,
    pub read: u32,
}

impl Budgets {
    pub fn of(&self, tier: Tier) -> u32 {
        match tier {
            Tier::Auth => self.auth,
            Tier::Write => self.write,
            Tier::Read => self.read,
        }
        .max(1)
    }
}

impl From<&RateLimitSettings> for Budgets {
    fn from(s: &RateLimitSettings) -> Self {
        Budgets {
            auth: s.auth_per_minute,
            write: s.write_per_minute,
            read: s.read_per_minute,
        }
    }
}

/// One interface, two backends.
pub enum Limiter {
    Memory(memory::MemoryLimiter),
    Redis(redis::RedisLimiter),
}

impl Limiter {
    pub fn new(settings: &RateLimitSettings, client: ::redis::Client, prefix: &str) -> Self {
        let budgets = Budgets::from(settings);
        match settings.backend {
            RateLimitBackend::Memory => Limiter::Memory(memory::MemoryLimiter::new(budgets)),
            RateLimitBackend::Redis => {
                Limiter::Redis(redis::RedisLimiter::new(client, prefix, budgets))
            }
        }
    }

    pub async fn check(&self, tier: Tier, key: &str) -> Result<Decision, Unavailable> {
        match self {
            Limiter::Memory(m) => Ok(m.check(tier, key)),
            Limiter::Redis(r) => r.check(tier, key).await,
        }
    }

    /// Drops idle buckets (memory backend; Redis expires its own keys).
    pub fn evict_idle(&self) {
        if let Limiter::Memory(m) = self {
            m.evict_idle();
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabel {
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabel {
    tier: String,
    /// `allowed` (failed open) or `refused` (failed closed).
    outcome: String,
}

/// What the limiter did, for `/metrics`.
#[derive(Clone, Default)]
pub struct RateLimitMetrics {
    limited: Family<TierLabel, Counter>,
    fallbacks: Family<FallbackLabel, Counter>,
}

impl RateLimitMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "biz_rate_limited",
            "Requests refused with 429, by tier",
            self.limited.clone(),
        );
        registry.register(
            "biz_rate_limit_fallbacks",
            "Checks the rate-limit backend could not answer, by tier and what was done",
            self.fallbacks.clone(),
        );
    }
}

/// The routes of the AUTH tier: where passwords, reset tokens and second factors are tried.
const AUTH_ROUTES: [&str; 7] = [
    "/api/v1/auth/login",
    "/api/v1/auth/signup",
    "/api/v1/auth/password/forgot",
    "/api/v1/auth/password/reset",
    "/api/v1/auth/password/change",
    "/api/v1/auth/mfa/totp/enable",
    "/api/v1/auth/mfa/totp/disable",
];

/// The client's address: the peer, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_address(req: &ServiceRequest, trusted: &[IpAddr]) -> String {
    let peer = req.peer_addr().map(|a| a.ip());
    let Some(peer) = peer else {
        return "unknown".into();
    };
    if !trusted.contains(&peer) {
        return peer.to_string();
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|a| !trusted.contains(a))
        .unwrap_or(peer)
        .to_string()
}

/// Which tier and bucket a request spends from, if any.
fn classify(req: &ServiceRequest, trusted: &[IpAddr]) -> (Tier, String) {
    if req.method() == Method::POST && AUTH_ROUTES.contains(&req.path()) {
        return (Tier::Auth, format!("ip:{}", client_address(req, trusted)));
    }
    let tier = if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        Tier::Read
    } else {
        Tier::Write
    };
    let who = req
        .extensions()
        .get::<std::rc::Rc<crate::auth::principal::Authenticated>>()
        .and_then(|a| a.0.as_ref().ok().cloned());
    let key = match who {
        Some(p) => match (p.user_id(), p.api_key_id()) {
            (Some(user), _) => format!("user:{user}"),
            (_, Some(key)) => format!("key:{key}"),
            _ => format!("ip:{}", client_address(req, trusted)),
        },
        // Not signed in: the request will be refused, but refusing costs a lookup too.
        None => format!("ip:{}", client_address(req, trusted)),
    };
    (tier, key)
}

fn headers(decision: &Decision) -> [(HeaderName, HeaderValue); 3] {
    let secs = |d: Duration| d.as_millis().div_ceil(1000).to_string();
    [
        (
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from(decision.limit),
        ),
        (
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderValue::from(decision.remaining),
        ),
        (
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderValue::from_str(&secs(decision.reset)).unwrap_or(HeaderValue::from(0)),
        ),
    ]
}

/// Wraps `/api/v1` inside the authentication middleware, so the principal is known.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let (tier, key) = classify(&req, &state.trusted_proxies);
    let decision = match state.limiter.check(tier, &key).await {
        Ok(d) => d,
        Err(e) => {
            let refuse = tier == Tier::Auth && state.settings.rate_limit.auth_fail_closed;
            let outcome = if refuse { "refused" } else { "allowed" };
            tracing::warn!(error = %e, tier = tier.name(), outcome, "rate limiter unavailable");
            state
                .rate_limit_metrics
                .fallbacks
                .get_or_create(&FallbackLabel {
                    tier: tier.name().into(),
                    outcome: outcome.into(),
                })
                .inc();
            if refuse {
                let (http, _) = req.into_parts();
                let mut res = ApiError::Unavailable(e.to_string()).error_response();
                res.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    HeaderValue::from_static("5"),
                );
                return Ok(ServiceResponse::new(http, res).map_into_right_body());
            }
            return next
                .call(req)
                .await
                .map(ServiceResponse::map_into_left_body);
        }
    };
    if !decision.allowed {
        state
            .rate_limit_metrics
            .limited
            .get_or_create(&TierLabel {
                tier: tier.name().into(),
            })
            .inc();
        let retry = decision.retry_after.as_millis().div_ceil(1000).max(1) as u64;
        let (http, _) = req.into_parts();
        let mut res = ApiError::RateLimited {
            retry_after_secs: retry,
        }
        .error_response();
        for (name, value) in headers(&decision) {
            res.headers_mut().insert(name, value);
        }
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            HeaderValue::from(retry),
        );
        return Ok(ServiceResponse::new(http, res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    for (name, value) in headers(&decision) {
        res.headers_mut().insert(name, value);
    }
    Ok(res.map_into_left_body())
}
