//! The provider simulator: the providers' public APIs in their real wire formats (paths,
//! pagination, auth headers, error bodies, rate-limit answers), served from a data set generated
//! from a seed, so every run sees the same customers in the same order.
//!
//! Tests, `make run` and `make bench` point the real client code at it through the
//! `BIZ__PROVIDERS__*` base URLs. Control endpoints under `/_sim/` set latency, rate limits and
//! injected faults, and report every request served (see docs/SIMULATOR.md).

// Handlers here return a ready HTTP answer as their error: its size does not matter in a test
// server, and boxing every one would only add noise.
#![allow(clippy::result_large_err)]
// The simulated Shopify order is one large `json!` literal, as the API reference shows it.
#![recursion_limit = "256"]

pub mod config;
mod control;
mod record;
pub mod resend;
pub mod shopify;
pub mod stripe;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};

pub use config::{FaultConfig, FaultKind, RateLimit, SimConfig};
pub use record::RequestRecord;

/// Shared simulator state. One lock: the simulator serves tests, not production traffic.
#[derive(Clone)]
pub struct Sim {
    inner: Arc<Mutex<SimState>>,
    started: Instant,
}

pub(crate) struct SimState {
    pub seed: u64,
    pub config: SimConfig,
    fault_rng: fastrand::Rng,
    fault_hits: u64,
    buckets: HashMap<String, Bucket>,
    pub log: Vec<RequestRecord>,
    pub stripe: stripe::Dataset,
    /// Webhook endpoints registered through `POST /v1/webhook_endpoints`, with their secrets.
    pub stripe_endpoints: Vec<serde_json::Value>,
    /// The account's clock for changes made by `/_sim/stripe/advance` (Unix seconds).
    pub stripe_clock: i64,
    /// Events made by `/_sim/stripe/advance`, oldest first: what `replay` delivers again.
    pub stripe_changes: Vec<serde_json::Value>,
    /// Connect OAuth codes handed out and not yet exchanged.
    pub stripe_oauth_codes: Vec<String>,
    /// Where each Stripe object sits in its list; cleared whenever the lists change.
    pub(crate) stripe_positions: stripe::Positions,
    /// Emails accepted by the Resend API, oldest first.
    pub resend_emails: Vec<serde_json::Value>,
    /// Shopify OAuth codes not yet exchanged: (shop, code, scope).
    pub shopify_codes: Vec<(String, String, String)>,
    /// Shopify access tokens handed out: (shop, token).
    pub shopify_tokens: Vec<(String, String)>,
    /// Webhook subscriptions registered through the Admin API.
    pub shopify_webhooks: Vec<serde_json::Value>,
    /// Each shop's store, generated on first use.
    pub shopify_stores: HashMap<String, shopify::data::Store>,
    /// The REST leaky bucket per shop and token.
    pub(crate) shopify_buckets: HashMap<String, shopify::rest::LeakyBucket>,
    /// Admin API calls served (not counting 429s).
    pub shopify_calls: u64,
}

impl SimState {
    /// The shop's store, generated from the seed on first use.
    pub fn shopify_store(&mut self, shop: &str) -> &mut shopify::data::Store {
        let (seed, orders) = (self.seed, self.config.shopify.orders);
        self.shopify_stores
            .entry(shop.to_owned())
            .or_insert_with(|| shopify::data::Store::generate(seed, shop, orders))
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the gate decided for one request, before the provider's handler answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Serve,
    /// Over the provider's rate limit: answer 429, with `Retry-After` when configured.
    RateLimited {
        retry_after: Option<u64>,
    },
    Fault(FaultKind),
}

impl Sim {
    pub fn new(seed: u64) -> Self {
        // Webhook delivery uses reqwest over rustls, which needs a process-wide crypto provider;
        // installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = SimConfig::default();
        let stripe = stripe::Dataset::generate(seed, &config.stripe);
        Sim {
            inner: Arc::new(Mutex::new(SimState {
                seed,
                fault_rng: fastrand::Rng::with_seed(0),
                fault_hits: 0,
                buckets: HashMap::new(),
                log: Vec::new(),
                stripe_endpoints: Vec::new(),
                stripe_clock: stripe.latest(),
                stripe_changes: Vec::new(),
                stripe_oauth_codes: Vec::new(),
                stripe_positions: stripe::Positions::default(),
                resend_emails: Vec::new(),
                shopify_codes: Vec::new(),
                shopify_tokens: Vec::new(),
                shopify_webhooks: Vec::new(),
                shopify_stores: HashMap::new(),
                shopify_buckets: HashMap::new(),
                shopify_calls: 0,
                stripe,
                config,
            })),
            started: Instant::now(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, SimState> {
        // A handler that panicked while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since the simulator started; request records use this clock.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Replaces the configuration; regenerates data sets whose parameters changed.
    pub fn configure(&self, config: SimConfig) {
        let mut state = self.state();
        if config.stripe != state.config.stripe {
            state.stripe = stripe::Dataset::generate(state.seed, &config.stripe);
            state.stripe_clock = state.stripe.latest();
            state.stripe_changes.clear();
            state.stripe_positions.clear();
        }
        if config.shopify.orders != state.config.shopify.orders {
            state.shopify_stores.clear();
        }
        state.shopify_buckets.clear();
        let fault_seed = config.faults.as_ref().map(|f| f.seed).unwrap_or(0);
        state.fault_rng = fastrand::Rng::with_seed(fault_seed);
        state.fault_hits = 0;
        state.buckets.clear();
        state.config = config;
    }

    /// Back to the defaults, with an empty request log.
    pub fn reset(&self) {
        self.configure(SimConfig::default());
        self.state().log.clear();
    }

    /// The latency to add, and whether this request is rate-limited or faulted. `provider` names
    /// the rate-limit table entry; `credential` separates budgets per account, as providers do.
    pub fn gate(&self, provider: &str, credential: &str, path: &str) -> (Duration, Verdict) {
        let mut state = self.state();
        let latency = Duration::from_millis(state.config.latency_ms);
        if let Some(limit) = state.config.rate_limits.get(provider).cloned() {
            let key = format!("{provider}:{credential}");
            let capacity = limit.burst.unwrap_or(limit.per_second).max(1.0);
            let now = Instant::now();
            let bucket = state.buckets.entry(key).or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
            let refill = now.duration_since(bucket.at).as_secs_f64() * limit.per_second;
            bucket.tokens = (bucket.tokens + refill).min(capacity);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                return (
                    latency,
                    Verdict::RateLimited {
                        retry_after: limit.retry_after_seconds,
                    },
                );
            }
            bucket.tokens -= 1.0;
        }
        let Some(faults) = state.config.faults.clone() else {
            return (latency, Verdict::Serve);
        };
        let applies = faults
            .path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
            && faults.max.is_none_or(|max| state.fault_hits < max)
            && !faults.kinds.is_empty();
        if !applies {
            return (latency, Verdict::Serve);
        }
        // Draw for every matching request, hit or not, so a seed gives one fixed sequence.
        let draw = state.fault_rng.f64();
        let pick = state.fault_rng.usize(..faults.kinds.len());
        if draw < faults.rate {
            state.fault_hits += 1;
            (latency, Verdict::Fault(faults.kinds[pick]))
        } else {
            (latency, Verdict::Serve)
        }
    }

    pub fn fault_config(&self) -> Option<FaultConfig> {
        self.state().config.faults.clone()
    }
}

/// The simulator's routes: every provider, and the control endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    control::configure(cfg);
    stripe::configure(cfg);
    resend::configure(cfg);
    shopify::configure(cfg);
}

/// Serves the simulator on `listener` until the server is stopped.
pub fn serve(listener: TcpListener, seed: u64) -> std::io::Result<Server> {
    let sim = Sim::new(seed);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(sim.clone()))
            .wrap(from_fn(record::middleware))
            .configure(configure)
    })
    .workers(2)
    .listen(listener)?
    .run())
}

/// Starts the simulator on a free local port inside the current runtime: for tests.
pub fn spawn(seed: u64) -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = serve(listener, seed)?;
    tokio::spawn(server);
    Ok(format!("http://127.0.0.1:{port}"))
}
