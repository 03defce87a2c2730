//! The overview's KPI cards, for the sources the organisation has connected: each card's value
//! over the range, the previous period's, the change, and a daily sparkline. Read from the
//! rollups like every series. Money cards are in the reporting currency (each day at its rate)
//! unless `currency` names one.

use actix_web::{get, web};
use biz_core::db::accounts::Role;
use biz_core::db::integrations;
use chrono::NaiveDate;
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::metrics::{
    changes, comparison_range, find_definition, in_reporting_currency, parse_range, points,
    MissingRate, SeriesPoint,
};
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(dashboard);
}

/// The cards each source brings, in order: (source, card, metric).
const CARDS: [(&str, &str, &str); 11] = [
    ("stripe", "revenue", "stripe_revenue"),
    ("stripe", "mrr", "stripe_mrr"),
    ("stripe", "arr", "stripe_arr"),
    (
        "stripe",
        "subscriptions_active",
        "stripe_subscriptions_active",
    ),
    ("stripe", "refunds", "stripe_refunds_total"),
    ("stripe", "churn", "stripe_customer_churn_rate"),
    ("shopify", "shopify_net_sales", "shopify_revenue_net"),
    ("shopify", "orders", "shopify_orders"),
    ("shopify", "aov", "shopify_aov"),
    ("shopify", "shopify_refunds", "shopify_refunds"),
    ("shopify", "new_customers", "shopify_customers_new"),
];

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    /// First day, `YYYY-MM-DD`. Required.
    from: Option<String>,
    /// Last day, inclusive. Required.
    to: Option<String>,
    /// Money cards in this currency only (e.g. `eur`) instead of the reporting currency.
    currency: Option<String>,
    /// `previous_period` (default) or `previous_year`.
    compare: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Card {
    key: &'static str,
    metric: &'static str,
    label: &'static str,
    /// `money`, `count` or `ratio`.
    unit: &'static str,
    /// Money cards: the currency of `value` (lower case).
    #[serde(skip_serializing_if = "Option::is_none")]
    currency: Option<String>,
    #[schema(value_type = Option<f64>)]
    value: Option<serde_json::Number>,
    #[schema(value_type = Option<f64>)]
    previous: Option<serde_json::Number>,
    /// (value − previous) ÷ previous, six places; `null` when previous is 0 or unknown.
    #[schema(value_type = Option<f64>)]
    change: Option<serde_json::Number>,
    /// Daily values over the range.
    sparkline: Vec<SeriesPoint>,
    /// Rates a converted money card lacked (its value is then `null`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_rates: Vec<MissingRate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Dashboard {
    from: NaiveDate,
    to: NaiveDate,
    compare_from: NaiveDate,
    compare_to: NaiveDate,
    /// The connected sources the cards come from.
    sources: Vec<String>,
    reporting_currency: String,
    cards: Vec<Card>,
}

/// The KPI cards of the organisation's connected sources.
#[utoipa::path(tag = "metrics", params(DashboardQuery), responses((status = 200, body = Dashboard), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[get("/orgs/{org_id}/dashboard")]
async fn dashboard(
    state: web::Data<AppState>,
    who: Principal,
    path: web::Path<Uuid>,
    query: web::Query<DashboardQuery>,
) -> Result<web::Json<Dashboard>, ApiError> {
    let org_id = path.into_inner();
    let mut conn = state.conn().await?;
    who.require(&mut conn, org_id, Role::Viewer).await?;
    let (from, to) = parse_range(query.from.as_deref(), query.to.as_deref())?;
    let kind = query.compare.as_deref().unwrap_or("previous_period");
    if !["previous_period", "previous_year"].contains(&kind) {
        return Err(ApiError::validation(
            "invalid_compare",
            "compare is previous_period or previous_year",
        ));
    }
    let (pf, pt) = comparison_range(from, to, kind);
    let currency = query.currency.as_deref().map(str::to_lowercase);
    let org = biz_core::db::accounts::organizations::find(&mut conn, org_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut sources: Vec<String> = integrations::list(&mut conn, org_id)
        .await?
        .into_iter()
        .filter(|i| i.status == "active")
        .map(|i| i.provider)
        .collect();
    sources.sort();
    sources.dedup();

    // One rate book for both ranges: the comparison range lies before this one.
    let book = biz_core::metrics::fx::RateBook::load(
        &mut conn,
        org_id,
        &org.reporting_currency,
        pf.min(from),
        to,
    )
    .await?;
    // The cards are independent reads: they run side by side, each on its own pooled
    // connection (a few at a time, so one dashboard cannot take the whole pool).
    drop(conn);
    let reads = CardReads {
        state: &state,
        org_id,
        reporting_currency: &org.reporting_currency,
        book: &book,
        currency: currency.as_deref(),
        now: (from, to),
        then: (pf, pt),
    };
    let wanted = CARDS
        .iter()
        .filter(|(source, _, _)| sources.iter().any(|s| s == source));
    let cards: Vec<Card> = stream::iter(wanted.map(|&(_, key, metric)| reads.card(key, metric)))
        .buffered(CARDS_AT_ONCE)
        .try_collect()
        .await?;
    Ok(web::Json(Dashboard {
        from,
        to,
        compare_from: pf,
        compare_to: pt,
        sources,
        reporting_currency: org.reporting_currency,
        cards,
    }))
}

/// How many of one request's cards are read at once.
const CARDS_AT_ONCE: usize = 4;

/// What every card of one request reads with.
struct CardReads<'a> {
    state: &'a AppState,
    org_id: Uuid,
    reporting_currency: &'a str,
    book: &'a biz_core::metrics::fx::RateBook,
    /// The currency asked for, if any (else money is in the reporting currency).
    currency: Option<&'a str>,
    now: (NaiveDate, NaiveDate),
    then: (NaiveDate, NaiveDate),
}

impl CardReads<'_> {
    /// One card: the range's total, the comparison range's, and the daily sparkline.
    async fn card(&self, key: &'static str, metric: &str) -> Result<Card, ApiError> {
        let CardReads {
            org_id,
            book,
            currency,
            now: range,
            then,
            ..
        } = *self;
        let mut conn = self.state.conn().await?;
        let conn = &mut conn;
        let definition = find_definition(metric)?;
        // An average (AOV) is not a sum of converted days: it stays in the shop's currency.
        if definition.unit == "money" && currency.is_none() && !definition.is_average() {
            let (now, mut missing) =
                in_reporting_currency(conn, org_id, book, definition, range, "total").await?;
            let (before, _) =
                in_reporting_currency(conn, org_id, book, definition, then, "total").await?;
            let (sparkline, spark_missing) =
                in_reporting_currency(conn, org_id, book, definition, range, "day").await?;
            missing.extend(spark_missing);
            missing.sort();
            missing.dedup();
            let total = changes(&now, &before).into_iter().next();
            Ok(card(
                key,
                definition,
                Some(self.reporting_currency.to_lowercase()),
                total,
                sparkline,
                missing,
            ))
        } else {
            let only = currency.filter(|_| definition.unit == "money");
            let now = points(conn, org_id, definition, range, "total", only).await?;
            let before = points(conn, org_id, definition, then, "total", only).await?;
            let sparkline = points(conn, org_id, definition, range, "day", only).await?;
            let total = changes(&now, &before).into_iter().next();
            let shown = only
                .map(str::to_owned)
                .or_else(|| total.as_ref().and_then(|t| t.currency.clone()));
            Ok(card(key, definition, shown, total, sparkline, Vec::new()))
        }
    }
}

fn card(
    key: &'static str,
    definition: &super::metrics::Definition,
    currency: Option<String>,
    total: Option<super::metrics::Change>,
    sparkline: Vec<SeriesPoint>,
    missing_rates: Vec<MissingRate>,
) -> Card {
    let (value, previous, change) = total
        .map(|t| (t.current, t.previous, t.change))
        .unwrap_or((None, None, None));
    Card {
        key,
        metric: definition.key,
        label: definition.label,
        unit: definition.unit,
        currency,
        value,
        previous,
        change,
        sparkline,
        missing_rates,
    }
}
