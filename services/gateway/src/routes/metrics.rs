//! Metric series from the daily rollups (never from raw provider data).
//!
//! `GET …/metrics` is the catalog; `GET …/metrics/{key}?from&to&granularity=day|week|month
//! [&currency=]` a series. Weeks are ISO weeks (starting Monday) and months calendar months, both
//! in the organisation's time zone since the days are. A flow metric (revenue, refunds, …) sums
//! its days; a stock metric (MRR, counts) takes the value of the period's last day. Churn rates
//! and LTV are derived per period from the days' rollups ([`biz_core::metrics::derived`]).

use std::collections::BTreeMap;

use actix_web::{get, web};
use biz_core::db::accounts::Role;
use biz_core::metrics::derived::{self, Daily};
use biz_core::metrics::rollup;
use chrono::{Datelike, Days, NaiveDate};
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
    /// Derived per period from other metrics' days.
    CustomerChurnRate,
    MrrChurnRate,
    Ltv,
}

struct Definition {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    description: &'static str,
    dimension: Option<&'static str>,
    kind: Kind,
}

const CATALOG: [Definition; 19] = [
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
    Definition { key: "stripe_customer_churn_rate", label: "Customer churn rate", unit: "ratio", description: "Customers who stopped paying in the period ÷ paying customers the day before it.", dimension: None, kind: Kind::CustomerChurnRate },
    Definition { key: "stripe_mrr_churn_rate", label: "MRR churn rate", unit: "ratio", description: "Churned plus contraction MRR in the period ÷ MRR the day before it.", dimension: Some("currency"), kind: Kind::MrrChurnRate },
    Definition { key: "stripe_ltv", label: "Lifetime value", unit: "money", description: "ARPU at the end of the period ÷ the customer churn rate of the 30 days ending then.", dimension: Some("currency"), kind: Kind::Ltv },
];

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricInfo {
    key: &'static str,
    label: &'static str,
    /// `money` (integer minor units with a currency), `count`, `ratio` (a fraction: 0.04 is 4 %).
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
    /// Money: an integer in minor units of `currency`; counts: an integer; ratios: a fraction
    /// rounded half-even to six places. `null` where undefined (a rate with nothing paying at
    /// the start of the period, LTV without churn).
    #[schema(value_type = Option<f64>)]
    value: Option<serde_json::Number>,
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
    if !matches!(definition.kind, Kind::Flow | Kind::Stock) {
        let series = derive(
            &mut conn,
            org_id,
            definition,
            (from, to),
            &granularity,
            currency.as_deref(),
        )
        .await?;
        return Ok(web::Json(Series {
            key: definition.key,
            unit: definition.unit,
            granularity,
            series,
        }));
    }
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
        let value = integer(&p.value)?;
        let entry = folded
            .entry((period_start(p.day, &granularity), p.dimension.clone()))
            .or_insert((p.day, 0));
        match definition.kind {
            Kind::Stock => {
                if p.day >= entry.0 {
                    *entry = (p.day, value);
                }
            }
            _ => entry.1 += value,
        }
    }
    let series = folded
        .into_iter()
        .map(|((date, dimension), (_, value))| SeriesPoint {
            date,
            value: Some(value.into()),
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

/// A stored metric's days as (day, dimension) → value.
async fn daily(
    conn: &mut biz_core::db::Conn,
    org_id: Uuid,
    metric: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Daily, ApiError> {
    rollup::series(conn, org_id, metric, from, to)
        .await?
        .into_iter()
        .map(|p| Ok(((p.day, p.dimension), integer(&p.value)?)))
        .collect()
}

fn integer(value: &str) -> Result<i64, ApiError> {
    value
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::internal(anyhow::anyhow!("a rollup value is not an integer: {value}"))
        })
}

/// A rate or LTV series: one point per period (per currency where it has one), over the days of
/// the period inside `from..=to` that have rollups.
async fn derive(
    conn: &mut biz_core::db::Conn,
    org_id: Uuid,
    definition: &Definition,
    (from, to): (NaiveDate, NaiveDate),
    granularity: &str,
    currency: Option<&str>,
) -> Result<Vec<SeriesPoint>, ApiError> {
    // LTV looks 30 days back from a period's end, rates one day back from its start.
    let lookback = from
        .checked_sub_days(Days::new(derived::LTV_WINDOW_DAYS + 1))
        .unwrap_or(from);
    let paying = daily(conn, org_id, "stripe_paying_customers", lookback, to).await?;
    let churned = daily(conn, org_id, "stripe_customers_churned", lookback, to).await?;
    let Some(last) = paying.keys().map(|(d, _)| *d).max().map(|d| d.min(to)) else {
        return Ok(Vec::new());
    };
    // (first, last) covered day of each period.
    let mut periods: BTreeMap<NaiveDate, (NaiveDate, NaiveDate)> = BTreeMap::new();
    let mut day = from;
    while day <= last {
        periods
            .entry(period_start(day, granularity))
            .and_modify(|p| p.1 = day)
            .or_insert((day, day));
        day = match day.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    let rate = |r: Option<biz_core::metrics::mrr::Amount>| {
        r.map(derived::rate_value)
            .and_then(serde_json::Number::from_f64)
    };
    let point = |date, value, currency: Option<&str>| SeriesPoint {
        date,
        value,
        currency: currency.map(str::to_owned),
        status: None,
    };
    let currencies = |stock: &Daily| -> std::collections::BTreeSet<String> {
        stock
            .keys()
            .map(|(_, c)| c.clone())
            .filter(|c| currency.is_none_or(|only| only == c))
            .collect()
    };
    let mut points = Vec::new();
    match definition.kind {
        Kind::CustomerChurnRate => {
            for (date, (a, b)) in periods {
                let r = derived::customer_churn_rate(&churned, &paying, a, b);
                points.push(point(date, rate(r), None));
            }
        }
        Kind::MrrChurnRate => {
            let mrr = daily(conn, org_id, "stripe_mrr", lookback, to).await?;
            let lost = daily(conn, org_id, "stripe_mrr_churned", lookback, to).await?;
            let contraction = daily(conn, org_id, "stripe_mrr_contraction", lookback, to).await?;
            for (date, (a, b)) in periods {
                for c in currencies(&mrr) {
                    let r = derived::mrr_churn_rate(&lost, &contraction, &mrr, &c, a, b);
                    points.push(point(date, rate(r), Some(&c)));
                }
            }
        }
        Kind::Ltv => {
            let arpu = daily(conn, org_id, "stripe_arpu", lookback, to).await?;
            for (date, (_, b)) in periods {
                for c in currencies(&arpu) {
                    let v = derived::ltv(&arpu, &churned, &paying, &c, b)
                        .and_then(|v| i64::try_from(v).ok())
                        .map(serde_json::Number::from);
                    points.push(point(date, v, Some(&c)));
                }
            }
        }
        Kind::Flow | Kind::Stock => {}
    }
    Ok(points)
}
