//! Metric definitions and the rules behind them (contract section 5; docs/METRICS.md).

pub mod commerce;
pub mod derived;
pub mod fx;
pub mod mrr;
pub mod rollup;
