//! The OpenAPI document. Paths and schemas are collected by `utoipa_actix_web` from the handlers
//! as they are registered, so the document cannot list a route that does not exist or miss one
//! registered through `service(...)`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
