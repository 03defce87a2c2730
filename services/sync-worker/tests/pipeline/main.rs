//! The job pipeline end to end: real `sync-worker` processes, real PostgreSQL and Redis, the
//! provider simulator. Each test has its own database, simulator and queue prefix.

mod crash;
mod harness;
mod outage;
mod retries;
mod scheduling;

use provider_sim::config::StripeConfig;
use provider_sim::stripe::Dataset;

/// The customer ids the simulator serves for `customers` customers (seed 42), sorted.
pub fn expected_ids(customers: usize) -> Vec<String> {
    let data = Dataset::generate(
        42,
        &StripeConfig {
            customers,
            api_keys: vec![],
        },
    );
    let mut ids: Vec<String> = data
        .customers
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}
