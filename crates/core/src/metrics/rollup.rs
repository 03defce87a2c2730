//! Daily rollups of Stripe's metrics (and, through [`super::commerce`], Shopify's), per organisation, day in the organisation's time zone, and
//! dimension. Whatever changes provider data marks the organisation dirty from the first day it
//! affects (in the same transaction); a worker recomputes from that day to today only.
//!
//! Flow metrics (by the day an object was created) are summed in SQL over that window:
//! `stripe_revenue` (succeeded charges' `amount`), `stripe_net_revenue` (the same minus
//! `amount_refunded`), `stripe_refunds_total` (succeeded refunds' `amount`), per currency;
//! `stripe_payment_intents` per status. Stock metrics are as of the end of each day:
//! `stripe_mrr` and `stripe_arr` per currency (by [`super::mrr`]), `stripe_subscriptions_active`
//! (subscriptions counted in MRR) and `stripe_customers_total` (customers created by then and not
//! deleted).

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use diesel::prelude::*;
use diesel::sql_types::{Array, Date, Integer, Text};
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use super::mrr::{round_half_even, subscription_mrr, Amount, Convention};
use crate::db::{Conn, DbError};

pub const FLOW_METRICS: [&str; 4] = [
    "stripe_revenue",
    "stripe_net_revenue",
    "stripe_refunds_total",
    "stripe_payment_intents",
];
pub const STOCK_METRICS: [&str; 12] = [
    "stripe_mrr",
    "stripe_arr",
    "stripe_arpu",
    "stripe_subscriptions_active",
    "stripe_customers_total",
    "stripe_paying_customers",
    // Computed with the stocks (day-to-day differences), summed like flows.
    "stripe_mrr_new",
    "stripe_mrr_expansion",
    "stripe_mrr_contraction",
    "stripe_mrr_churned",
    "stripe_mrr_reactivation",
    "stripe_customers_churned",
];

/// Marks `organization_id` dirty from `from` (kept at the earliest day marked).
pub async fn mark_dirty(
    conn: &mut Conn,
    organization_id: Uuid,
    from: NaiveDate,
) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO metric_dirty (organization_id, dirty_from) VALUES ($1, $2)
         ON CONFLICT (organization_id) DO UPDATE
            SET dirty_from = LEAST(metric_dirty.dirty_from, EXCLUDED.dirty_from), marked_at = now()",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Date, _>(from)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the organisation's whole history dirty, because its time zone or MRR convention
/// changed: from the day before its earliest Stripe object or Shopify order (UTC), which covers
/// any zone's shift. Nothing to do for an organisation without data.
pub async fn mark_all_dirty(conn: &mut Conn, organization_id: Uuid) -> Result<(), DbError> {
    diesel::sql_query(
        "INSERT INTO metric_dirty (organization_id, dirty_from)
         SELECT $1, (min(first) AT TIME ZONE 'UTC')::date - 1 FROM (
             SELECT min(created) AS first FROM stripe_objects WHERE organization_id = $1
             UNION ALL
             SELECT min(processed_at) FROM shopify_objects WHERE organization_id = $1 AND kind = 'order'
         ) f HAVING min(first) IS NOT NULL
         ON CONFLICT (organization_id) DO UPDATE
            SET dirty_from = LEAST(metric_dirty.dirty_from, EXCLUDED.dirty_from), marked_at = now()",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, QueryableByName)]
pub struct Dirty {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub organization_id: Uuid,
    #[diesel(sql_type = Date)]
    pub dirty_from: NaiveDate,
}

/// Takes up to `limit` dirty organisations off the list (rows locked by another worker are
/// skipped). A caller that fails to recompute one marks it dirty again.
pub async fn claim_dirty(conn: &mut Conn, limit: i32) -> Result<Vec<Dirty>, DbError> {
    Ok(diesel::sql_query(
        "DELETE FROM metric_dirty WHERE organization_id IN (
            SELECT organization_id FROM metric_dirty ORDER BY marked_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING organization_id, dirty_from",
    )
    .bind::<Integer, _>(limit)
    .load(conn)
    .await?)
}

#[derive(QueryableByName)]
struct OrgSettings {
    #[diesel(sql_type = Text)]
    timezone: String,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    mrr_convention: Value,
}

#[derive(QueryableByName)]
struct Raw {
    #[diesel(sql_type = Text)]
    object_type: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    deleted: bool,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    created: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    raw: Value,
}

/// The organisation's day containing `at`.
pub fn local_day(at: DateTime<Utc>, tz: Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// The first instant of `day` in `tz`, in UTC.
fn day_start(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        // A zone whose midnight does not exist that day (a DST gap): an hour later exists.
        .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
}

/// Recomputes every Stripe metric of the organisation from `from` to today (its time zone).
pub async fn recompute(
    conn: &mut Conn,
    organization_id: Uuid,
    from: NaiveDate,
) -> Result<usize, DbError> {
    let settings: Option<OrgSettings> =
        diesel::sql_query("SELECT timezone, mrr_convention FROM organizations WHERE id = $1")
            .bind::<diesel::sql_types::Uuid, _>(organization_id)
            .get_result(conn)
            .await
            .optional()?;
    let tz: Tz = settings
        .as_ref()
        .and_then(|s| s.timezone.parse().ok())
        .unwrap_or(Tz::UTC);
    let convention = settings
        .as_ref()
        .map(|s| Convention::from_stored(&s.mrr_convention))
        .unwrap_or_default();
    let today = local_day(Utc::now(), tz);
    let from = from.min(today);
    let start = day_start(from, tz);
    let tz_name = tz.name();

    // Flows, in SQL, over the window only.
    diesel::sql_query(
        "DELETE FROM metric_daily WHERE organization_id = $1 AND day >= $2 AND metric = ANY($3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Date, _>(from)
    .bind::<Array<Text>, _>(
        FLOW_METRICS
            .iter()
            .chain(STOCK_METRICS.iter())
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await?;
    let flows = diesel::sql_query(
        "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
         SELECT $1, metric, day, dimension, value FROM (
            SELECT 'stripe_revenue' AS metric, (created AT TIME ZONE $3)::date AS day, currency AS dimension, sum(amount)::numeric AS value
              FROM stripe_objects WHERE organization_id = $1 AND object_type = 'charge' AND status = 'succeeded' AND created >= $2
             GROUP BY 2, 3
            UNION ALL
            SELECT 'stripe_net_revenue', (created AT TIME ZONE $3)::date, currency,
                   sum(amount - COALESCE((raw->>'amount_refunded')::bigint, 0))::numeric
              FROM stripe_objects WHERE organization_id = $1 AND object_type = 'charge' AND status = 'succeeded' AND created >= $2
             GROUP BY 2, 3
            UNION ALL
            SELECT 'stripe_refunds_total', (created AT TIME ZONE $3)::date, currency, sum(amount)::numeric
              FROM stripe_objects WHERE organization_id = $1 AND object_type = 'refund' AND status = 'succeeded' AND created >= $2
             GROUP BY 2, 3
            UNION ALL
            SELECT 'stripe_payment_intents', (created AT TIME ZONE $3)::date, COALESCE(status, ''), count(*)::numeric
              FROM stripe_objects WHERE organization_id = $1 AND object_type = 'payment_intent' AND created >= $2
             GROUP BY 2, 3
         ) f",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<diesel::sql_types::Timestamptz, _>(start)
    .bind::<Text, _>(tz_name)
    .execute(conn)
    .await?;

    // Stocks, as of the end of each day, from the stored subscriptions and customers.
    let objects: Vec<Raw> = diesel::sql_query(
        "SELECT object_type, deleted, created, raw FROM stripe_objects
          WHERE organization_id = $1 AND object_type IN ('subscription', 'customer', 'price')",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .load(conn)
    .await?;
    // Events carry subscriptions' prices without their tiers; the synced prices have them.
    let tiers: std::collections::HashMap<String, Value> = objects
        .iter()
        .filter(|o| o.object_type == "price" && o.raw["tiers"].is_array())
        .filter_map(|o| Some((o.raw["id"].as_str()?.to_owned(), o.raw["tiers"].clone())))
        .collect();
    let subscriptions: Vec<Value> = objects
        .iter()
        .filter(|o| o.object_type == "subscription" && !o.deleted)
        .map(|o| with_tiers(&o.raw, &tiers))
        .collect();
    let (mut metrics, mut days, mut dims, mut values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Each customer's MRR per currency at the end of a day; the day before `from` is the
    // baseline the first day's movements compare with.
    let end_of = |day: NaiveDate| {
        day_start(day.checked_add_days(Days::new(1)).unwrap_or(day), tz)
            - chrono::Duration::seconds(1)
    };
    let by_customer = |end: DateTime<Utc>| {
        let mut m: BTreeMap<(String, String), Amount> = BTreeMap::new();
        for s in &subscriptions {
            if let Some((currency, amount)) = subscription_mrr(s, end, &convention) {
                let customer = s["customer"].as_str().unwrap_or_default().to_owned();
                *m.entry((customer, currency)).or_default() += amount;
            }
        }
        m
    };
    // The first day each (customer, currency) paid: a return after it is a reactivation.
    let mut first_paid: BTreeMap<(String, String), NaiveDate> = BTreeMap::new();
    for s in &subscriptions {
        let began = ["start_date", "trial_end"]
            .iter()
            .filter_map(|k| s[*k].as_i64())
            .max()
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let Some(began) = began else { continue };
        let began_day = local_day(began, tz);
        if let Some((currency, _)) = subscription_mrr(s, end_of(began_day), &convention) {
            let key = (
                s["customer"].as_str().unwrap_or_default().to_owned(),
                currency,
            );
            let entry = first_paid.entry(key).or_insert(began_day);
            *entry = (*entry).min(began_day);
        }
    }
    let mut previous = by_customer(end_of(from.pred_opt().unwrap_or(from)));
    let mut day = from;
    while day <= today {
        let end = end_of(day);
        let current = by_customer(end);
        let mut mrr: BTreeMap<String, Amount> = BTreeMap::new();
        let mut active = 0i64;
        let mut customers = 0i64;
        for o in &objects {
            if o.object_type == "customer" && !o.deleted && o.created <= end {
                customers += 1;
            }
        }
        for s in &subscriptions {
            if let Some((currency, amount)) = subscription_mrr(s, end, &convention) {
                *mrr.entry(currency).or_default() += amount;
                active += 1;
            }
        }
        // Movements, per currency: each customer's change since the day before.
        let zero = Amount::from_integer(0);
        let mut movements: BTreeMap<(&str, String), Amount> = BTreeMap::new();
        let mut paying: BTreeMap<String, i64> = BTreeMap::new();
        let keys: std::collections::BTreeSet<&(String, String)> =
            previous.keys().chain(current.keys()).collect();
        for key in keys {
            let before = previous.get(key).copied().unwrap_or(zero);
            let now = current.get(key).copied().unwrap_or(zero);
            let currency = key.1.clone();
            if now > zero {
                *paying.entry(currency.clone()).or_default() += 1;
            }
            let (kind, amount) = if before == zero && now > zero {
                let returning = first_paid.get(key).is_some_and(|first| *first < day);
                (
                    if returning {
                        "stripe_mrr_reactivation"
                    } else {
                        "stripe_mrr_new"
                    },
                    now,
                )
            } else if before > zero && now == zero {
                ("stripe_mrr_churned", before)
            } else if now > before {
                ("stripe_mrr_expansion", now - before)
            } else if now < before {
                ("stripe_mrr_contraction", before - now)
            } else {
                continue;
            };
            *movements.entry((kind, currency)).or_default() += amount;
        }
        // Customers who paid yesterday (in any currency) and pay nothing today.
        let paid = |m: &BTreeMap<(String, String), Amount>| -> std::collections::BTreeSet<String> {
            m.iter()
                .filter(|(_, v)| **v > zero)
                .map(|((c, _), _)| c.clone())
                .collect()
        };
        let churned_customers = paid(&previous).difference(&paid(&current)).count();
        let mut push = |metric: &str, dim: &str, value: String| {
            metrics.push(metric.to_owned());
            days.push(day);
            dims.push(dim.to_owned());
            values.push(value);
        };
        for (currency, amount) in &mrr {
            push("stripe_mrr", currency, round_half_even(*amount).to_string());
            // ARR is twelve times the exact MRR, rounded once.
            push(
                "stripe_arr",
                currency,
                round_half_even(*amount * Amount::from_integer(12)).to_string(),
            );
            // ARPU: MRR per paying customer in that currency.
            if let Some(n) = paying.get(currency).filter(|n| **n > 0) {
                push(
                    "stripe_arpu",
                    currency,
                    round_half_even(*amount / Amount::from_integer(*n as i128)).to_string(),
                );
            }
        }
        for ((kind, currency), amount) in &movements {
            push(kind, currency, round_half_even(*amount).to_string());
        }
        push("stripe_subscriptions_active", "", active.to_string());
        push("stripe_customers_total", "", customers.to_string());
        push(
            "stripe_paying_customers",
            "",
            paid(&current).len().to_string(),
        );
        push(
            "stripe_customers_churned",
            "",
            churned_customers.to_string(),
        );
        previous = current;
        day = match day.checked_add_days(Days::new(1)) {
            Some(d) => d,
            None => break,
        };
    }
    let stocks = diesel::sql_query(
        "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
         SELECT $1, m, d, dim, v::numeric FROM UNNEST($2::text[], $3::date[], $4::text[], $5::text[]) AS t(m, d, dim, v)",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Array<Text>, _>(metrics)
    .bind::<Array<Date>, _>(days)
    .bind::<Array<Text>, _>(dims)
    .bind::<Array<Text>, _>(values)
    .execute(conn)
    .await?;
    let commerce = super::commerce::recompute(conn, organization_id, from, start, tz).await?;
    Ok(flows + stocks + commerce)
}

/// The subscription with each tiered price's `tiers` filled in from the synced prices.
fn with_tiers(subscription: &Value, tiers: &std::collections::HashMap<String, Value>) -> Value {
    let mut s = subscription.clone();
    for item in s["items"]["data"].as_array_mut().into_iter().flatten() {
        let price = &mut item["price"];
        if price["billing_scheme"] == "tiered" && !price["tiers"].is_array() {
            if let Some(t) = price["id"].as_str().and_then(|id| tiers.get(id)) {
                price["tiers"] = t.clone();
            }
        }
    }
    s
}

/// One point of a stored series.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct Point {
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = Text)]
    pub dimension: String,
    /// Exact, as text (`NUMERIC`).
    #[diesel(sql_type = Text)]
    pub value: String,
}

/// A metric's stored daily values between `from` and `to` inclusive.
pub async fn series(
    conn: &mut Conn,
    organization_id: Uuid,
    metric: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Point>, DbError> {
    Ok(diesel::sql_query(
        "SELECT day, dimension, value::text AS value FROM metric_daily
          WHERE organization_id = $1 AND metric = $2 AND day BETWEEN $3 AND $4
          ORDER BY day, dimension",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Text, _>(metric)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .load(conn)
    .await?)
}
