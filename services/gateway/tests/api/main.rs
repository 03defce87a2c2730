//! The gateway's HTTP tests: one binary of modules, each test on its own database.

mod accounts;
mod audit;
mod connect;
mod dump;
mod errors;
mod fx;
mod hardening;
mod health;
mod helpers;
mod integrations;
mod isolation;
mod mfa;
mod rate_limits;
mod redaction;
mod rotation;
mod shopify_install;
mod team;
mod webhooks;
