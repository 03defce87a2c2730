//! The job pipeline end to end: real `sync-worker` processes, real PostgreSQL and Redis, the
//! provider simulator. Each test has its own database, simulator and queue prefix.

mod browser;
mod crash;
mod harness;
mod metrics;
mod outage;
mod retries;
mod scheduling;
mod shopify;
mod webhooks;

use std::collections::BTreeMap;

use provider_sim::config::StripeConfig;
use provider_sim::stripe::Dataset;
use serde_json::Value;

/// What the simulator serves for `customers` customers (seed 42).
pub struct Expected {
    /// Sorted ids per object type (`customer`, `subscription`, …).
    pub ids: BTreeMap<&'static str, Vec<String>>,
    /// List requests an uninterrupted backfill makes: one for the newest event, then every
    /// page of every resource.
    pub requests: usize,
}

pub fn expected(customers: usize) -> Expected {
    let d = Dataset::generate(
        42,
        &StripeConfig {
            customers,
            api_keys: vec![],
        },
    );
    let mut ids = BTreeMap::new();
    let mut requests = 1;
    for (kind, list) in [
        ("customer", &d.customers),
        ("price", &d.prices),
        ("subscription", &d.subscriptions),
        ("invoice", &d.invoices),
        ("charge", &d.charges),
        ("payment_intent", &d.payment_intents),
        ("refund", &d.refunds),
    ] {
        let mut v: Vec<String> = list
            .iter()
            .map(|o: &Value| o["id"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        requests += v.len().div_ceil(100).max(1);
        ids.insert(kind, v);
    }
    Expected { ids, requests }
}

/// Just the customer ids, sorted.
pub fn expected_ids(customers: usize) -> Vec<String> {
    expected(customers).ids["customer"].clone()
}
