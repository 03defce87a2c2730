//! The web dashboard: one HTML page, one script and one stylesheet, compiled into the binary and
//! served at `/`. The script uses only the public JSON API (docs/ARCHITECTURE.md, "Dashboard"),
//! so there is no server-side templating and no build step; the Content-Security-Policy allows
//! exactly these same-origin files.

use actix_web::http::header::{CacheControl, CacheDirective, ContentType};
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../static/index.html");
const SCRIPT: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/app.css");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/assets/app.js", web::get().to(script))
        .route("/assets/app.css", web::get().to(style));
}

fn file(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Small and versioned with the binary: revalidate rather than cache across deploys.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

async fn index() -> HttpResponse {
    file(ContentType::html().to_string().as_str(), INDEX)
}

async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", STYLE)
}
