//! Wiring: state, middleware, routes, and the server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use biz_core::crypto::KeyRing;
use biz_core::settings::Settings;
use biz_core::{cache, db, jobs};
use utoipa_actix_web::{scope, AppExt};

use crate::state::AppState;
use crate::{auth, extractors, openapi, request_id, routes};

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the listener and builds the server; nothing runs until [`Application::run`].
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = db::pool(&settings.database)?;
        let redis = cache::client(&settings.redis)?;
        let keys = KeyRing::from_settings(&settings.security);
        let queue = jobs::redis_connection(&settings.redis)?;
        let producer = jobs::Producer::new(queue, &settings.redis, &settings.jobs);
        let listener = TcpListener::bind(&settings.gateway.addr)?;
        let port = listener.local_addr()?.port();
        let webhook_queue = crate::enqueuer::Enqueuer::start(producer.clone(), pool.clone());
        let limiter = Arc::new(crate::rate_limit::Limiter::new(
            &settings.rate_limit,
            redis.clone(),
            &settings.redis.key_prefix,
        ));
        {
            // Idle in-memory buckets go once a minute (the Redis backend's keys expire).
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    every.tick().await;
                    limiter.evict_idle();
                }
            });
        }
        let trusted_proxies = Arc::new(
            settings
                .rate_limit
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        );
        let state = AppState {
            limiter,
            rate_limit_metrics: Default::default(),
            trusted_proxies,
            webhook_queue,
            event_writer: crate::event_writer::EventWriter::start(pool.clone()),
            producer,
            metrics: jobs::JobMetrics::default(),
            http: connectors::http_client(std::time::Duration::from_secs(20)),
            webhook_secrets: Arc::new(crate::state::SecretCache::default()),
            settings: Arc::new(settings),
            pool,
            redis,
            keys: Arc::new(keys),
        };
        let server = serve(listener, state)?;
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The application's routes and middleware, also used by tests that need the OpenAPI document.
pub fn app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let json_limit = state.settings.gateway.json_limit_bytes;
    let headers = security_headers(state.settings.gateway.public_url.starts_with("https://"));
    App::new()
        .into_utoipa_app()
        .app_data(web::Data::new(state))
        .app_data(extractors::json_config(json_limit))
        .app_data(extractors::path_config())
        .app_data(extractors::query_config())
        .configure(routes::health::configure)
        .configure(routes::webhooks::configure)
        .configure(routes::oauth::configure)
        .route("/api/v1/openapi.json", web::get().to(openapi::serve))
        .map(|app| app.configure(crate::ui::configure))
        .service(
            scope::scope("/api/v1")
                // Inner: the limiter needs the principal the outer one finds.
                .wrap(from_fn(crate::rate_limit::middleware))
                .wrap(from_fn(auth::principal::middleware))
                .configure(routes::api_v1),
        )
        .default_service(web::to(extractors::not_found))
        .into_app()
        .wrap(Compress::default())
        .wrap(headers)
        .wrap(from_fn(request_id::middleware))
}

/// What the dashboard may load: its own scripts, styles, images and API, nothing inline, and it
/// may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Headers on every response (a handler's own value wins). HSTS only where the public URL is
/// https: sent over plain http it would be ignored, and on localhost it would pin a developer's
/// browser to https.
fn security_headers(tls: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "strict-origin-when-cross-origin"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Content-Security-Policy", CONTENT_SECURITY_POLICY));
    if tls {
        headers.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    } else {
        headers
    }
}

fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || app(state.clone()))
        .listen(listener)?
        .shutdown_timeout(30)
        .run())
}
