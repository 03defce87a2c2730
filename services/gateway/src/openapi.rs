//! The OpenAPI document. Paths and schemas are collected by `utoipa_actix_web` from the handlers
//! as they are registered, so the document cannot list a route that does not exist or miss one
//! registered through `service(...)`. It is collected once, from a route table built the same
//! way the served application's is, because actix matches the `/api/v1` scope before any route
//! registered after it.

use std::sync::OnceLock;

use actix_web::{App, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::{scope, AppExt};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "BizInsights API", version = "1", description = "Analytics for e-commerce and subscription businesses. See docs/API.md."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from login, or an organisation API key (bik_...)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, built on first use.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, api) = App::new()
            .into_utoipa_app()
            .openapi(ApiDoc::openapi())
            .configure(routes::health::configure)
            .configure(routes::webhooks::configure)
            .configure(routes::oauth::configure)
            .service(scope::scope("/api/v1").configure(routes::api_v1))
            .split_for_parts();
        api.to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// `GET /api/v1/openapi.json`
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
