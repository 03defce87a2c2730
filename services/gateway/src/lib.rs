//! The BizInsights gateway: the HTTP API, webhooks, OAuth callbacks and the dashboard.

pub mod audit;
pub mod auth;
pub mod domain;
pub mod enqueuer;
pub mod error;
pub mod event_writer;
pub mod extractors;
pub mod openapi;
pub mod rate_limit;
pub mod request_id;
pub mod routes;
pub mod startup;
pub mod state;
pub mod ui;
