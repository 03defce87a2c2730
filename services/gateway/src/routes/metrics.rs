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
use biz_core::metrics::fx::RateBook;
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
    cfg.service(catalog).service(top_products).service(series);
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TopProductsQuery {
    /// First day, `YYYY-MM-DD`, in the organisation's time zone. Required.
    from: Option<String>,
    /// Last day, inclusive. Required.
    to: Option<String>,
    /// Only sales in this currency, e.g. `usd`.
    currency: Option<String>,
    /// How many products (1–100, default 10).
    limit: Option<i64>,
}

/// One product's sales over the range, in minor units of `currency`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopProduct {
    product_id: String,
    title: String,
    currency: String,
    units_sold: i64,
    units_returned: i64,
    gross: i64,
    discounts: i64,
    returns: i64,
    /// Gross − discounts − returns: what the list is ordered by.
    net: i64,
}

/// Shopify's products by net sales over a range of days, best first (from the daily product
/// rollup; the same definitions as `shopify_revenue_net`).
#[utoipa::path(tag = "metrics", params(TopProductsQuery), responses((status = 200, body = ListResponse<TopProduct>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/metrics/shopify/top-products")]
async fn top_products(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    query: web::Query<TopProductsQuery>,
) -> Result<web::Json<ListResponse<TopProduct>>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let (from, to) = parse_range(query.from.as_deref(), query.to.as_deref())?;
    let limit = query.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(
            "invalid_limit",
            "limit is between 1 and 100",
        ));
    }
    let currency = query.currency.as_deref().map(str::to_lowercase);
    let rows = biz_core::metrics::commerce::top_products(
        &mut conn,
        org_id,
        from,
        to,
        currency.as_deref(),
        limit,
    )
    .await?;
    Ok(web::Json(ListResponse::all(
        rows.into_iter()
            .map(|p| TopProduct {
                product_id: p.product_id,
                title: p.title,
                currency: p.currency,
                units_sold: p.units_sold,
                units_returned: p.units_returned,
                gross: p.gross,
                discounts: p.discounts,
                returns: p.returns,
                net: p.net,
            })
            .collect(),
    )))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Summed over a period.
    Flow,
    /// Its value at the end of a period.
    Stock,
    /// Derived per period from other metrics' days.
    CustomerChurnRate,
    MrrChurnRate,
    Ltv,
    /// A stored sum over a stored count, per currency and period, rounded half-even.
    Average {
        sum: &'static str,
        count: &'static str,
    },
}

pub struct Definition {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    description: &'static str,
    dimension: Option<&'static str>,
    kind: Kind,
}

const CATALOG: [Definition; 30] = [
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
    Definition { key: "shopify_orders", label: "Orders", unit: "count", description: "Orders (not test orders; cancelled, pending and refunded ones included) by the local day of processed_at.", dimension: None, kind: Kind::Flow },
    Definition { key: "shopify_revenue_gross", label: "Gross sales", unit: "money", description: "Σ line price × quantity before discounts, shipping and taxes (tax taken out where prices include it), on the order's day.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "shopify_discounts", label: "Discounts", unit: "money", description: "Σ the lines' discount allocations (order-level discounts included), on the order's day.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "shopify_returns", label: "Returns", unit: "money", description: "Σ refunded lines' subtotal (tax out where included) on the refund's day; a cancellation returns what refunds have not.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "shopify_revenue_net", label: "Net sales", unit: "money", description: "Gross sales − discounts − returns, per day (negative on a day of returns).", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "shopify_aov", label: "Average order value", unit: "money", description: "(Gross sales − discounts) of the period's orders ÷ their count, rounded half-even; later returns do not change it.", dimension: Some("currency"), kind: Kind::Average { sum: "shopify_aov_sales", count: "shopify_aov_orders" } },
    Definition { key: "shopify_refunds", label: "Refunds", unit: "money", description: "Money given back: successful refund transactions, on their day, in the shop's currency.", dimension: Some("currency"), kind: Kind::Flow },
    Definition { key: "shopify_customers_new", label: "New customers", unit: "count", description: "Customers whose first order (over all history, per shop) is on that day; guests are not counted.", dimension: None, kind: Kind::Flow },
    Definition { key: "shopify_customers_returning", label: "Returning customers", unit: "count", description: "Customers ordering on a day after the day of their first order; once per day; guests are not counted.", dimension: None, kind: Kind::Flow },
    Definition { key: "shopify_units_sold", label: "Units sold", unit: "count", description: "Σ line quantities, on the order's day.", dimension: None, kind: Kind::Flow },
    Definition { key: "shopify_units_returned", label: "Units returned", unit: "count", description: "Σ refunded line quantities on the refund's day, and a cancellation's remaining units on its day.", dimension: None, kind: Kind::Flow },
];

impl Definition {
    /// A ratio of two stored sums (AOV): never converted day by day.
    pub fn is_average(&self) -> bool {
        matches!(self.kind, Kind::Average { .. })
    }
}

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
                source: d.key.split('_').next().unwrap_or_default(),
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
    /// `previous_period` (the same stretch just before; whole calendar months compare with the
    /// same number of whole months before) or `previous_year` (the same dates a year earlier).
    compare: Option<String>,
    /// Money flows and stocks as one series in the organisation's reporting currency, each
    /// day's amounts converted at that day's rate (see `…/fx-rates`).
    in_reporting_currency: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The period's first day.
    pub date: NaiveDate,
    /// Money: an integer in minor units of `currency`; counts: an integer; ratios: a fraction
    /// rounded half-even to six places. `null` where undefined (a rate with nothing paying at
    /// the start of the period, LTV without churn).
    #[schema(value_type = Option<f64>)]
    pub value: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    key: &'static str,
    unit: &'static str,
    granularity: String,
    series: Vec<SeriesPoint>,
    /// With `compare`: the other range, its series, and the change of the whole range.
    #[serde(skip_serializing_if = "Option::is_none")]
    compare: Option<Comparison>,
    /// With `in_reporting_currency`: the currencies and days without a rate (at most 100). A
    /// period that needs one of them has a `null` value rather than a guess.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_rates: Vec<MissingRate>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct MissingRate {
    pub currency: String,
    pub date: NaiveDate,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// `previous_period` or `previous_year`.
    kind: String,
    from: NaiveDate,
    to: NaiveDate,
    series: Vec<SeriesPoint>,
    /// Per dimension: the whole range's value (flows summed, stocks at the end, rates over the
    /// range) now and then, and the change.
    totals: Vec<Change>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Change {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[schema(value_type = Option<f64>)]
    pub current: Option<serde_json::Number>,
    #[schema(value_type = Option<f64>)]
    pub previous: Option<serde_json::Number>,
    /// (current − previous) ÷ previous, six places; `null` when previous is 0 or unknown.
    #[schema(value_type = Option<f64>)]
    pub change: Option<serde_json::Number>,
}

fn parse_day(field: &str, raw: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        ApiError::validation(
            "invalid_date",
            format!("{field} must be a date as YYYY-MM-DD"),
        )
    })
}

/// The first day of the period `day` falls in; `total` folds the whole range into one point
/// dated `from`.
fn period_start(day: NaiveDate, granularity: &str, from: NaiveDate) -> NaiveDate {
    match granularity {
        "week" => day - chrono::Duration::days(day.weekday().num_days_from_monday().into()),
        "month" => day.with_day(1).unwrap_or(day),
        "total" => from,
        _ => day,
    }
}

fn last_of_month(day: NaiveDate) -> NaiveDate {
    let first_next = if day.month() == 12 {
        NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
    };
    first_next.and_then(|d| d.pred_opt()).unwrap_or(day)
}

/// The same date `years` earlier; 29 February becomes the 28th.
fn years_before(day: NaiveDate, years: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(day.year() - years, day.month(), day.day())
        .or_else(|| NaiveDate::from_ymd_opt(day.year() - years, day.month(), 28))
        .unwrap_or(day)
}

/// The range a comparison looks at.
pub fn comparison_range(from: NaiveDate, to: NaiveDate, kind: &str) -> (NaiveDate, NaiveDate) {
    match kind {
        "previous_year" => (years_before(from, 1), years_before(to, 1)),
        _ => {
            // Whole calendar months compare with as many whole months just before them
            // (March with February, Q2 with Q1), not with the same count of days.
            if from.day() == 1 && to == last_of_month(to) {
                let months =
                    (to.year() - from.year()) * 12 + to.month() as i32 - from.month() as i32 + 1;
                let start = from
                    .checked_sub_months(chrono::Months::new(months as u32))
                    .unwrap_or(from);
                (start, from.pred_opt().unwrap_or(from))
            } else {
                let len = (to - from).num_days() + 1;
                let end = from.pred_opt().unwrap_or(from);
                (end - chrono::Duration::days(len - 1), end)
            }
        }
    }
}

/// A metric's points over `from..=to` at `granularity` (`day`, `week`, `month` or `total`).
pub async fn points(
    conn: &mut biz_core::db::Conn,
    org_id: Uuid,
    definition: &Definition,
    (from, to): (NaiveDate, NaiveDate),
    granularity: &str,
    currency: Option<&str>,
) -> Result<Vec<SeriesPoint>, ApiError> {
    if let Kind::Average { sum, count } = definition.kind {
        return average(
            conn,
            org_id,
            (sum, count),
            (from, to),
            granularity,
            currency,
        )
        .await;
    }
    if !matches!(definition.kind, Kind::Flow | Kind::Stock) {
        return derive(conn, org_id, definition, (from, to), granularity, currency).await;
    }
    let rows = rollup::series(conn, org_id, definition.key, from, to).await?;
    // (period, dimension) → value, folding days by the metric's kind.
    let mut folded: BTreeMap<(NaiveDate, String), (NaiveDate, i64)> = BTreeMap::new();
    for p in rows {
        if currency.is_some_and(|c| definition.dimension == Some("currency") && c != p.dimension) {
            continue;
        }
        let value = integer(&p.value)?;
        let entry = folded
            .entry((period_start(p.day, granularity, from), p.dimension.clone()))
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
    Ok(folded
        .into_iter()
        .map(|((date, dimension), (_, value))| SeriesPoint {
            date,
            value: Some(value.into()),
            currency: (definition.dimension == Some("currency")).then(|| dimension.clone()),
            status: (definition.dimension == Some("status")).then_some(dimension),
        })
        .collect())
}

/// A stored sum over a stored count per period and currency (AOV).
async fn average(
    conn: &mut biz_core::db::Conn,
    org_id: Uuid,
    (sum, count): (&str, &str),
    (from, to): (NaiveDate, NaiveDate),
    granularity: &str,
    currency: Option<&str>,
) -> Result<Vec<SeriesPoint>, ApiError> {
    let mut folded: BTreeMap<(NaiveDate, String), (i64, i64)> = BTreeMap::new();
    for (metric, slot) in [(sum, 0), (count, 1)] {
        for p in rollup::series(conn, org_id, metric, from, to).await? {
            if currency.is_some_and(|c| c != p.dimension) {
                continue;
            }
            let value = integer(&p.value)?;
            let entry = folded
                .entry((period_start(p.day, granularity, from), p.dimension))
                .or_default();
            if slot == 0 {
                entry.0 += value;
            } else {
                entry.1 += value;
            }
        }
    }
    Ok(folded
        .into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|((date, dimension), (total, n))| {
            let value = biz_core::metrics::mrr::round_half_even(
                biz_core::metrics::mrr::Amount::new(total.into(), n.into()),
            ) as i64;
            SeriesPoint {
                date,
                value: Some(value.into()),
                currency: Some(dimension),
                status: None,
            }
        })
        .collect())
}

fn number(n: &Option<serde_json::Number>) -> Option<f64> {
    n.as_ref().and_then(serde_json::Number::as_f64)
}

/// Pairs the whole-range values of now and then by dimension.
pub fn changes(current: &[SeriesPoint], previous: &[SeriesPoint]) -> Vec<Change> {
    let key = |p: &SeriesPoint| (p.currency.clone(), p.status.clone());
    let mut dims: Vec<(Option<String>, Option<String>)> =
        current.iter().chain(previous).map(key).collect();
    dims.sort();
    dims.dedup();
    dims.into_iter()
        .map(|(currency, status)| {
            let find = |ps: &[SeriesPoint]| {
                ps.iter()
                    .find(|p| p.currency == currency && p.status == status)
                    .and_then(|p| p.value.clone())
            };
            let (now, then) = (find(current), find(previous));
            let change = match (number(&now), number(&then)) {
                (Some(n), Some(t)) if t != 0.0 => {
                    serde_json::Number::from_f64(((n - t) / t * 1e6).round() / 1e6)
                }
                _ => None,
            };
            Change {
                currency,
                status,
                current: now,
                previous: then,
                change,
            }
        })
        .collect()
}

pub fn find_definition(key: &str) -> Result<&'static Definition, ApiError> {
    CATALOG.iter().find(|d| d.key == key).ok_or_else(|| {
        ApiError::validation(
            "unknown_metric",
            format!("no metric `{key}`; see GET …/metrics"),
        )
    })
}

/// `from` and `to`, checked: both dates, in order, at most five years apart.
pub fn parse_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let from = parse_day("from", from.unwrap_or_default())?;
    let to = parse_day("to", to.unwrap_or_default())?;
    if to < from {
        return Err(ApiError::validation("invalid_range", "to is before from"));
    }
    if (to - from).num_days() > 5 * 366 {
        return Err(ApiError::validation(
            "range_too_long",
            "a series covers at most five years",
        ));
    }
    Ok((from, to))
}

/// A metric's series, optionally with a comparison.
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
    let definition = find_definition(&key)?;
    let (from, to) = parse_range(query.from.as_deref(), query.to.as_deref())?;
    let granularity = query.granularity.clone().unwrap_or_else(|| "day".into());
    if !["day", "week", "month"].contains(&granularity.as_str()) {
        return Err(ApiError::validation(
            "invalid_granularity",
            "granularity is day, week or month",
        ));
    }
    if let Some(kind) = query.compare.as_deref() {
        if !["previous_period", "previous_year"].contains(&kind) {
            return Err(ApiError::validation(
                "invalid_compare",
                "compare is previous_period or previous_year",
            ));
        }
    }
    if query.in_reporting_currency == Some(true) {
        let org = biz_core::db::accounts::organizations::find(&mut conn, org_id)
            .await?
            .ok_or(ApiError::NotFound)?;
        let book = RateBook::load(&mut conn, org_id, &org.reporting_currency, from, to).await?;
        let (series, missing_rates) = in_reporting_currency(
            &mut conn,
            org_id,
            &book,
            definition,
            (from, to),
            &granularity,
        )
        .await?;
        return Ok(web::Json(Series {
            key: definition.key,
            unit: definition.unit,
            granularity,
            series,
            compare: None,
            missing_rates,
        }));
    }
    let currency = query.currency.as_deref().map(str::to_lowercase);
    let currency = currency.as_deref();
    let series = points(
        &mut conn,
        org_id,
        definition,
        (from, to),
        &granularity,
        currency,
    )
    .await?;
    let compare = match query.compare.as_deref() {
        None => None,
        Some(kind) => {
            let (pf, pt) = comparison_range(from, to, kind);
            let previous = points(
                &mut conn,
                org_id,
                definition,
                (pf, pt),
                &granularity,
                currency,
            )
            .await?;
            let now = points(&mut conn, org_id, definition, (from, to), "total", currency).await?;
            let then = points(&mut conn, org_id, definition, (pf, pt), "total", currency).await?;
            Some(Comparison {
                kind: kind.to_owned(),
                from: pf,
                to: pt,
                series: previous,
                totals: changes(&now, &then),
            })
        }
    };
    Ok(web::Json(Series {
        key: definition.key,
        unit: definition.unit,
        granularity,
        series,
        compare,
        missing_rates: Vec::new(),
    }))
}

/// A money metric in the reporting currency: flows convert every day's amount at its day's
/// rate and sum them; stocks convert the period's last day. Exact until each period's value is
/// rounded half to even.
pub async fn in_reporting_currency(
    conn: &mut biz_core::db::Conn,
    org_id: Uuid,
    book: &RateBook,
    definition: &Definition,
    (from, to): (NaiveDate, NaiveDate),
    granularity: &str,
) -> Result<(Vec<SeriesPoint>, Vec<MissingRate>), ApiError> {
    use biz_core::metrics::mrr::{round_half_even, Amount};
    if definition.unit != "money" || !matches!(definition.kind, Kind::Flow | Kind::Stock) {
        return Err(ApiError::validation(
            "not_convertible",
            format!(
                "{} is not a money total; in_reporting_currency does not apply",
                definition.key
            ),
        ));
    }
    let reporting = book.reporting().to_lowercase();
    let rows = rollup::series(conn, org_id, definition.key, from, to).await?;
    // Period → the days that count (all of them for flows, the last for stocks).
    let mut periods: BTreeMap<NaiveDate, Vec<(NaiveDate, String, i64)>> = BTreeMap::new();
    for p in rows {
        let value = integer(&p.value)?;
        periods
            .entry(period_start(p.day, granularity, from))
            .or_default()
            .push((p.day, p.dimension, value));
    }
    let mut missing = std::collections::BTreeSet::new();
    let mut converted = Vec::new();
    for (date, mut days) in periods {
        if definition.kind == Kind::Stock {
            let last = days.iter().map(|(d, _, _)| *d).max();
            days.retain(|(d, _, _)| Some(*d) == last);
        }
        let mut total = Amount::from_integer(0);
        let mut complete = true;
        for (day, currency, value) in days {
            match book.convert(value, &currency, day) {
                Some(v) => total += v,
                None => {
                    complete = false;
                    missing.insert(MissingRate {
                        currency: currency.clone(),
                        date: day,
                    });
                }
            }
        }
        let value = complete
            .then(|| i64::try_from(round_half_even(total)).ok())
            .flatten()
            .map(serde_json::Number::from);
        converted.push(SeriesPoint {
            date,
            value,
            currency: Some(reporting.clone()),
            status: None,
        });
    }
    Ok((converted, missing.into_iter().take(100).collect()))
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
            .entry(period_start(day, granularity, from))
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
        Kind::Flow | Kind::Stock | Kind::Average { .. } => {}
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn previous_period_of_whole_months_is_whole_months() {
        // March (31 days) compares with February (28), not with 29 Jan – 28 Feb.
        assert_eq!(
            comparison_range(d("2026-03-01"), d("2026-03-31"), "previous_period"),
            (d("2026-02-01"), d("2026-02-28"))
        );
        // Across a year boundary.
        assert_eq!(
            comparison_range(d("2026-01-01"), d("2026-01-31"), "previous_period"),
            (d("2025-12-01"), d("2025-12-31"))
        );
        // A quarter with the quarter before; a whole year with the year before.
        assert_eq!(
            comparison_range(d("2026-04-01"), d("2026-06-30"), "previous_period"),
            (d("2026-01-01"), d("2026-03-31"))
        );
        assert_eq!(
            comparison_range(d("2025-01-01"), d("2025-12-31"), "previous_period"),
            (d("2024-01-01"), d("2024-12-31"))
        );
    }

    #[test]
    fn previous_period_of_other_ranges_is_as_many_days_before() {
        assert_eq!(
            comparison_range(d("2026-03-10"), d("2026-03-16"), "previous_period"),
            (d("2026-03-03"), d("2026-03-09"))
        );
        // Part of a month is not a whole month.
        assert_eq!(
            comparison_range(d("2026-03-01"), d("2026-03-15"), "previous_period"),
            (d("2026-02-14"), d("2026-02-28"))
        );
    }

    #[test]
    fn previous_year_is_the_same_dates_a_year_earlier() {
        assert_eq!(
            comparison_range(d("2026-01-01"), d("2026-01-31"), "previous_year"),
            (d("2025-01-01"), d("2025-01-31"))
        );
        // 29 February has no twin: the 28th.
        assert_eq!(
            comparison_range(d("2024-02-01"), d("2024-02-29"), "previous_year"),
            (d("2023-02-01"), d("2023-02-28"))
        );
    }
}
