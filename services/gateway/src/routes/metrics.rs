//! Metric series from the daily rollups (never from raw provider data).
//!
//! `GET …/metrics` is the catalog; `GET …/metrics/{key}?from&to&granularity=day|week|month
//! [&currency=]` a series. Weeks are ISO weeks (starting Monday) and months calendar months, both
//! in the organisation's time zone since the days are. A flow metric (revenue, refunds, …) sums
//! its days; a stock metric (MRR, counts) takes the value of the period's last day.

use std::collections::BTreeMap;

use actix_web::{get, web};
use biz_core::db::accounts::Role;
use biz_core::metrics::rollup;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::ListResponse;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(catalog).service(series);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Summed over a period.
    Flow,
    /// Its value at the end of a period.
    Stock,
}

struct Definition {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    description: &'static str,
    dimension: Option<&'static str>,
    kind: Kind,
}

const CATALOG: [Definition; 16] = [
    Definition { key: "stripe_revenue", label: "Revenue", unit: "money", description: "Succeeded charges' amount, by the day they were created.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_net_revenue", label: "Net revenue", unit: "money", description: "Succeeded charges' amount minus what was refunded of them, by the day the charge was created.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_refunds_total", label: "Refunds", unit: "money", description: "Succeeded refunds' amount, by the day they were created.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_payment_intents", label: "Payment intents", unit: "count", description: "Payment intents created, by status.", dimension: Some("status"), kind: Kind::Flow },
    Definition { key: "stripe_mrr", label: "MRR", unit: "money", description: "Monthly recurring revenue at the end of the day, by Stripe Billing's rules (docs/METRICS.md).", dimension: Some("currency"), kind: Kind::Stock },
    Definition { key: "stripe_arr", label: "ARR", unit: "money", description: "Twelve times MRR.", dimension: Some("currency"), kind: Kind::Stock },
    Definition { key: "stripe_arpu", label: "ARPU", unit: "money", description: "MRR per paying customer, at the end of the day.", dimension: Some("currency"), kind: Kind::Stock },
    Definition { key: "stripe_subscriptions_active", label: "Active subscriptions", unit: "count", description: "Subscriptions counted in MRR at the end of the day.", dimension: None, kind: Kind::Stock },
    Definition { key: "stripe_customers_total", label: "Customers", unit: "count", description: "Customers created by the end of the day and not deleted.", dimension: None, kind: Kind::Stock },
    Definition { key: "stripe_paying_customers", label: "Paying customers", unit: "count", description: "Customers with MRR at the end of the day.", dimension: None, kind: Kind::Stock },
    Definition { key: "stripe_customers_churned", label: "Churned customers", unit: "count", description: "Customers who had MRR the day before and none at the end of the day.", dimension: None, kind: Kind::Flow },
    Definition { key: "stripe_mrr_new", label: "New MRR", unit: "money", description: "MRR of customers paying for the first time.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_mrr_expansion", label: "Expansion MRR", unit: "money", description: "MRR added by paying customers.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_mrr_contraction", label: "Contraction MRR", unit: "money", description: "MRR lost by customers who still pay.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_mrr_churned", label: "Churned MRR", unit: "money", description: "MRR of customers who stopped paying.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "stripe_mrr_reactivation", label: "Reactivation MRR", unit: "money", description: "MRR of customers paying again after having stopped.", dimension: Some("currency"), kind: Kind::Flow },
];

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricInfo {
    key: &'static str,
    label: &'static str,
    /// `money` (integer minor units with a currency), `count`.
    unit: &'static str,
    description: &'static str,
    source: &'static str,
    /// What the series is split by, if anything: `currency` or `status`.
    dimension: Option<&'static str>,
}

/// The metrics this organisation's sources provide.
#[utoipa::path(tag = "metrics", responses((status = 200, body = ListResponse<MetricInfo>), (status = 404, body = ErrorBody)))]
#[get("/orgs/{org_id}/metrics")]
async fn catalog(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
) -> Result<web::Json<ListResponse<MetricInfo>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    Ok(web::Json(ListResponse::all(
        CATALOG
            .iter()
            .map(|d| MetricInfo {
                key: d.key,
                label: d.label,
                unit: d.unit,
                description: d.description,
                source: "stripe",
                dimension: d.dimension,
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SeriesQuery {
    /// First day, `YYYY-MM-DD`, in the organisation's time zone. Required.
    from: Option<String>,
    /// Last day, inclusive. Required.
    to: Option<String>,
    /// `day` (default), `week` (ISO, from Monday) or `month`.
    granularity: Option<String>,
    /// Only this currency (money metrics), e.g. `usd`.
    currency: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The period's first day.
    date: NaiveDate,
    /// Money: an integer in minor units of `currency`; counts: an integer.
    value: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    key: &'static str,
    unit: &'static str,
    granularity: String,
    series: Vec<SeriesPoint>,
}

fn parse_day(field: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ApiError::validation(
            "invalid_date",
            format!("{field} must be a date as YYYY-MM-DD"),
        )
    })
}

/// The first day of the period `day` falls in.
fn period_start(day: NaiveDate, granularity: &str) -> NaiveDate {
    match granularity {
        "week" => day - chrono::Duration::days(day.weekday().num_days_from_monday().into()),
        "month" => day.with_day(1).unwrap_or(day),
        _ => day,
    }
}

/// A metric's series.
#[utoipa::path(tag = "metrics", params(SeriesQuery), responses((status = 200, body = Series), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/metrics/{metric_key}")]
async fn series(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<(Uuid, String)>,
    query: web::Query<SeriesQuery>,
) -> Result<web::Json<Series>, ApiError> {
    let (org_id, key) = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let definition = CATALOG.iter().find(|d| d.key == key).ok_or_else(|| {
        ApiError::validation(
            "unknown_metric",
            format!("no metric `{key}`; see GET …/metrics"),
        )
    })?;
    let from = parse_day("from", query.from.as_deref().unwrap_or_default())?;
    let to = parse_day("to", query.to.as_deref().unwrap_or_default())?;
    if to < from {
        return Err(ApiError::validation("invalid_range", "to is before from"));
    }
    if (to - from).num_days() > 5 * 366 {
        return Err(ApiError::validation(
            "range_too_long",
            "a series covers at most five years",
        ));
    }
    let granularity = query.granularity.clone().unwrap_or_else(|| "day".into());
    if !["day", "week", "month"].contains(&granularity.as_str()) {
        return Err(ApiError::validation(
            "invalid_granularity",
            "granularity is day, week or month",
        ));
    }
    let currency = query.currency.as_deref().map(str::to_lowercase);
    let points = rollup::series(&mut conn, org_id, definition.key, from, to).await?;
    // (period, dimension) → value, folding days by the metric's kind.
    let mut folded: BTreeMap<(NaiveDate, String), (NaiveDate, i64)> = BTreeMap::new();
    for p in points {
        if currency
            .as_ref()
            .is_some_and(|c| definition.dimension == Some("currency") && *c != p.dimension)
        {
            continue;
        }
        let value: i64 = p
            .value
            .split('.')
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!(
                    "a rollup value is not an integer: {}",
                    p.value
                ))
            })?;
        let entry = folded
            .entry((period_start(p.day, &granularity), p.dimension.clone()))
            .or_insert((p.day, 0));
        match definition.kind {
            Kind::Flow => entry.1 += value,
            Kind::Stock => {
                if p.day >= entry.0 {
                    *entry = (p.day, value);
                }
            }
        }
    }
    let series = folded
        .into_iter()
        .map(|((date, dimension), (_, value))| SeriesPoint {
            date,
            value,
            currency: (definition.dimension == Some("currency")).then(|| dimension.clone()),
            status: (definition.dimension == Some("status")).then_some(dimension),
        })
        .collect();
    Ok(web::Json(Series {
        key: definition.key,
        unit: definition.unit,
        granularity,
        series,
    }))
}
