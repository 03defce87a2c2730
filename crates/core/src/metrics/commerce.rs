//! Shopify's sales, by Shopify's own sales-report definitions (contract section 5, "Commerce";
//! docs/METRICS.md), so the figures match the shop's reports:
//!
//! - every order with `test = false` counts (cancelled, pending and refunded ones too), on the
//!   local day of `processed_at`; refunds on the local day of their `processed_at`;
//! - gross = Σ line `price × quantity`, tax taken out where `taxes_included`
//!   (G − round_half_even(G·R/(1+R))); discounts = Σ the lines' `discount_allocations`;
//! - returns = Σ refund line items' `subtotal` (minus `total_tax` where taxes are included) on
//!   the refund's day; a cancellation returns whatever the refunds have not, so a cancelled
//!   order nets to 0 over its life; shipping-only refunds return nothing;
//! - refunds = successful refund transactions, on their day, in the shop's money;
//! - amounts from `*_set.shop_money.amount` decimal strings into exact minor units.
//!
//! [`OrderFacts::from_order`] reads one order into what it contributes to each day; the rollup
//! ([`recompute`]) sums the facts of every order active since the first dirty day.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use diesel::sql_types::{Array, BigInt, Date, Text, Timestamptz};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde_json::Value;
use uuid::Uuid;

use super::fx::exponent;
use super::mrr::{parse_decimal, round_half_even, Amount};
use super::rollup::local_day;
use crate::db::{Conn, DbError};

/// The rollups written here. AOV is not stored: the API divides `shopify_aov_sales` (gross −
/// discounts of the orders) by `shopify_aov_orders` (their count), both per currency, over any
/// period, so a week's AOV is the week's orders' average rather than an average of days.
pub const METRICS: [&str; 12] = [
    "shopify_orders",
    "shopify_revenue_gross",
    "shopify_discounts",
    "shopify_returns",
    "shopify_revenue_net",
    "shopify_aov_sales",
    "shopify_aov_orders",
    "shopify_refunds",
    "shopify_customers_new",
    "shopify_customers_returning",
    "shopify_units_sold",
    "shopify_units_returned",
];

/// A product's part of a day: units and money in the shop's currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductDay {
    pub title: String,
    pub units_sold: i64,
    pub units_returned: i64,
    pub gross: i64,
    pub discounts: i64,
    pub returns: i64,
}

/// What one order contributes, by local day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderFacts {
    /// The order's day (local date of `processed_at`).
    pub day: NaiveDate,
    /// The shop's currency, lower case.
    pub currency: String,
    pub gross: i64,
    pub discounts: i64,
    pub units: i64,
    pub customer: Option<i64>,
    /// Returns (money, units) by day: refund line items, and a cancellation's remainder.
    pub returns: BTreeMap<NaiveDate, (i64, i64)>,
    /// Money given back by day: successful refund transactions.
    pub refunds: BTreeMap<NaiveDate, i64>,
    /// Per (day, product id): sales on the order's day and returns on theirs.
    pub products: BTreeMap<(NaiveDate, String), ProductDay>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OrderError {
    #[error("the order has no {0}")]
    Missing(&'static str),
    #[error("the order's {0} is not a decimal amount")]
    BadAmount(String),
}

/// An instant in Shopify's format (ISO 8601 with an offset) as UTC.
pub fn instant(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A decimal string in `currency`'s minor units, exactly (rounded half-even past its decimals).
fn minor(v: &Value, currency: &str, what: &str) -> Result<i64, OrderError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Null => return Ok(0),
        _ => return Err(OrderError::BadAmount(what.to_owned())),
    };
    let amount = parse_decimal(&text).ok_or_else(|| OrderError::BadAmount(what.to_owned()))?;
    let scaled = amount * Amount::from_integer(10i128.pow(exponent(currency)));
    Ok(round_half_even(scaled) as i64)
}

/// The shop-money amount of a `*_set` field.
fn shop_money(set: &Value, currency: &str, what: &str) -> Result<i64, OrderError> {
    minor(&set["shop_money"]["amount"], currency, what)
}

/// `object[field_set].shop_money`, or where an older payload has no `_set`, the plain `field`,
/// which REST gives in the shop's currency too.
fn shop_amount(object: &Value, field: &str, currency: &str, what: &str) -> Result<i64, OrderError> {
    let set = &object[format!("{field}_set").as_str()];
    if set["shop_money"]["amount"].is_null() {
        minor(&object[field], currency, what)
    } else {
        shop_money(set, currency, what)
    }
}

/// The sum of a line's tax rates, exactly (rates are JSON numbers such as 0.08875).
fn tax_rate(line: &Value) -> Amount {
    line["tax_lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| match &t["rate"] {
            Value::Number(n) => parse_decimal(&n.to_string()),
            Value::String(s) => parse_decimal(s),
            _ => None,
        })
        .fold(Amount::from_integer(0), |a, b| a + b)
}

impl OrderFacts {
    /// Reads an order in the Admin API's REST format. `None` for a test order.
    pub fn from_order(order: &Value, tz: Tz) -> Result<Option<OrderFacts>, OrderError> {
        if order["test"].as_bool() == Some(true) {
            return Ok(None);
        }
        let processed = instant(&order["processed_at"])
            .or_else(|| instant(&order["created_at"]))
            .ok_or(OrderError::Missing("processed_at"))?;
        let day = local_day(processed, tz);
        let currency = order["total_price_set"]["shop_money"]["currency_code"]
            .as_str()
            .or(order["currency"].as_str())
            .ok_or(OrderError::Missing("currency"))?
            .to_lowercase();
        let cur = currency.as_str();
        let taxes_included = order["taxes_included"].as_bool() == Some(true);
        let mut facts = OrderFacts {
            day,
            currency: currency.clone(),
            gross: 0,
            discounts: 0,
            units: 0,
            customer: order["customer"]["id"].as_i64(),
            returns: BTreeMap::new(),
            refunds: BTreeMap::new(),
            products: BTreeMap::new(),
        };
        // Line id → (product key, title); each line's net (gross − discounts) and units, so a
        // cancellation can return what the refunds have not.
        let mut line_product: HashMap<i64, (String, String)> = HashMap::new();
        let mut line_left: HashMap<i64, (i64, i64)> = HashMap::new();
        for line in order["line_items"].as_array().into_iter().flatten() {
            let quantity = line["quantity"].as_i64().unwrap_or(0);
            let price = shop_amount(line, "price", cur, "line price")?;
            let mut gross = price * quantity;
            if taxes_included {
                let r = tax_rate(line);
                let inside =
                    Amount::from_integer(gross as i128) * r / (Amount::from_integer(1) + r);
                gross -= round_half_even(inside) as i64;
            }
            let mut discount = 0;
            for a in line["discount_allocations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                discount += shop_amount(a, "amount", cur, "discount allocation")?;
            }
            facts.gross += gross;
            facts.discounts += discount;
            facts.units += quantity;
            let product = product_key(line);
            let title = line["title"].as_str().unwrap_or("").to_owned();
            if let Some(id) = line["id"].as_i64() {
                line_product.insert(id, (product.clone(), title.clone()));
                line_left.insert(id, (gross - discount, quantity));
            }
            let p = facts.products.entry((day, product)).or_default();
            p.title = title;
            p.units_sold += quantity;
            p.gross += gross;
            p.discounts += discount;
        }
        // Refunds: returned lines on the refund's day, money back on the transaction's.
        let rate = presentment_rate(order);
        for refund in order["refunds"].as_array().into_iter().flatten() {
            let at = instant(&refund["processed_at"])
                .or_else(|| instant(&refund["created_at"]))
                .ok_or(OrderError::Missing("refund processed_at"))?;
            let refund_day = local_day(at, tz);
            for item in refund["refund_line_items"].as_array().into_iter().flatten() {
                let quantity = item["quantity"].as_i64().unwrap_or(0);
                let mut amount = shop_amount(item, "subtotal", cur, "refund subtotal")?;
                if taxes_included {
                    amount -= shop_amount(item, "total_tax", cur, "refund tax")?;
                }
                let entry = facts.returns.entry(refund_day).or_default();
                entry.0 += amount;
                entry.1 += quantity;
                let line_id = item["line_item_id"].as_i64().unwrap_or(0);
                let (product, title) = line_product
                    .get(&line_id)
                    .cloned()
                    .unwrap_or_else(|| (product_key(&item["line_item"]), String::new()));
                if let Some(left) = line_left.get_mut(&line_id) {
                    left.0 -= amount;
                    left.1 -= quantity;
                }
                let p = facts.products.entry((refund_day, product)).or_default();
                if p.title.is_empty() {
                    p.title = title;
                }
                p.units_returned += quantity;
                p.returns += amount;
            }
            for t in refund["transactions"].as_array().into_iter().flatten() {
                if t["kind"] != "refund" || t["status"] != "success" {
                    continue;
                }
                let t_at = instant(&t["processed_at"])
                    .or_else(|| instant(&t["created_at"]))
                    .unwrap_or(at);
                let amount = transaction_shop_money(t, cur, rate.as_ref())?;
                *facts.refunds.entry(local_day(t_at, tz)).or_default() += amount;
            }
        }
        // A cancellation returns every unit the refunds have not.
        if let Some(cancelled) = instant(&order["cancelled_at"]) {
            let cancel_day = local_day(cancelled, tz);
            for (line_id, (money, units)) in &line_left {
                if *money == 0 && *units == 0 {
                    continue;
                }
                let entry = facts.returns.entry(cancel_day).or_default();
                entry.0 += money;
                entry.1 += units;
                let (product, title) = line_product[line_id].clone();
                let p = facts.products.entry((cancel_day, product)).or_default();
                if p.title.is_empty() {
                    p.title = title;
                }
                p.units_returned += units;
                p.returns += money;
            }
        }
        Ok(Some(facts))
    }
}

/// The product a line sold: its `product_id`, or its title for a custom line without one.
fn product_key(line: &Value) -> String {
    match line["product_id"].as_i64() {
        Some(id) => id.to_string(),
        None => format!("custom:{}", line["title"].as_str().unwrap_or("")),
    }
}

/// Shop money per unit of the buyer's currency, from the order's own totals.
fn presentment_rate(order: &Value) -> Option<(Amount, String)> {
    let set = &order["total_price_set"];
    let shop = parse_decimal(set["shop_money"]["amount"].as_str()?)?;
    let presented = parse_decimal(set["presentment_money"]["amount"].as_str()?)?;
    let currency = set["presentment_money"]["currency_code"]
        .as_str()?
        .to_lowercase();
    if presented == Amount::from_integer(0) {
        return None;
    }
    Some((shop / presented, currency))
}

/// A refund transaction in the shop's money: `amount_set` where the API gives it; the amount
/// itself when it is in the shop's currency; otherwise converted at the order's own rate.
fn transaction_shop_money(
    t: &Value,
    shop_currency: &str,
    rate: Option<&(Amount, String)>,
) -> Result<i64, OrderError> {
    if t["amount_set"]["shop_money"]["amount"].is_string() {
        return shop_money(&t["amount_set"], shop_currency, "transaction amount");
    }
    let currency = t["currency"]
        .as_str()
        .unwrap_or(shop_currency)
        .to_lowercase();
    if currency == shop_currency {
        return minor(&t["amount"], shop_currency, "transaction amount");
    }
    let amount = t["amount"]
        .as_str()
        .and_then(parse_decimal)
        .ok_or_else(|| OrderError::BadAmount("transaction amount".into()))?;
    let Some((per_unit, _)) = rate.filter(|(_, c)| *c == currency) else {
        return Err(OrderError::BadAmount(format!(
            "transaction in {currency} on an order not presented in it"
        )));
    };
    let scaled = amount * per_unit * Amount::from_integer(10i128.pow(exponent(shop_currency)));
    Ok(round_half_even(scaled) as i64)
}

/// Orders read per query while recomputing.
const BATCH: i64 = 500;

#[derive(QueryableByName)]
struct OrderRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    integration_id: Uuid,
    #[diesel(sql_type = BigInt)]
    shopify_id: i64,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    raw: Value,
}

#[derive(QueryableByName)]
struct FirstOrder {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    integration_id: Uuid,
    #[diesel(sql_type = BigInt)]
    customer_id: i64,
    #[diesel(sql_type = Timestamptz)]
    first: DateTime<Utc>,
}

#[derive(Default)]
struct Day {
    orders: i64,
    units_sold: i64,
    units_returned: i64,
    new: BTreeSet<(Uuid, i64)>,
    returning: BTreeSet<(Uuid, i64)>,
}

#[derive(Default)]
struct Money {
    gross: i64,
    discounts: i64,
    returns: i64,
    refunds: i64,
    /// Gross − discounts of the day's orders, and their count, for AOV.
    sold: i64,
    orders: i64,
}

/// Recomputes the Shopify metrics of the organisation from `from` (a local day) to today,
/// reading only orders with activity since then. Returns rows written.
pub async fn recompute(
    conn: &mut Conn,
    organization_id: Uuid,
    from: NaiveDate,
    start: DateTime<Utc>,
    tz: Tz,
) -> Result<usize, DbError> {
    let metric_names: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
    diesel::sql_query(
        "DELETE FROM metric_daily WHERE organization_id = $1 AND day >= $2 AND metric = ANY($3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Date, _>(from)
    .bind::<Array<Text>, _>(&metric_names)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "DELETE FROM commerce_product_daily WHERE organization_id = $1 AND source = 'shopify' AND day >= $2",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Date, _>(from)
    .execute(conn)
    .await?;
    // Each buyer's first counted order, over all history, per shop.
    let firsts: Vec<FirstOrder> = diesel::sql_query(
        "SELECT integration_id, customer_id, min(processed_at) AS first FROM shopify_objects
          WHERE organization_id = $1 AND kind = 'order' AND customer_id IS NOT NULL
            AND processed_at IS NOT NULL AND (raw->>'test') IS DISTINCT FROM 'true'
          GROUP BY integration_id, customer_id",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .load(conn)
    .await?;
    let first_day: HashMap<(Uuid, i64), NaiveDate> = firsts
        .into_iter()
        .map(|f| ((f.integration_id, f.customer_id), local_day(f.first, tz)))
        .collect();
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();
    let mut money: BTreeMap<(NaiveDate, String), Money> = BTreeMap::new();
    let mut products: BTreeMap<(NaiveDate, String, String), ProductDay> = BTreeMap::new();
    // Orders are read a batch at a time and reduced to their facts, so memory holds one batch
    // of raw orders, not the shop's history.
    let mut after: (Uuid, i64) = (Uuid::nil(), i64::MIN);
    let mut read = 0usize;
    loop {
        let batch: Vec<OrderRow> = diesel::sql_query(
            "SELECT integration_id, shopify_id, raw FROM shopify_objects
              WHERE organization_id = $1 AND kind = 'order' AND last_activity_at >= $2
                AND (integration_id, shopify_id) > ($3, $4)
              ORDER BY integration_id, shopify_id LIMIT $5",
        )
        .bind::<diesel::sql_types::Uuid, _>(organization_id)
        .bind::<Timestamptz, _>(start)
        .bind::<diesel::sql_types::Uuid, _>(after.0)
        .bind::<BigInt, _>(after.1)
        .bind::<BigInt, _>(BATCH)
        .load(conn)
        .await?;
        let Some(last) = batch.last() else { break };
        after = (last.integration_id, last.shopify_id);
        read += batch.len();
        for row in &batch {
            let facts = match OrderFacts::from_order(&row.raw, tz) {
                Ok(Some(f)) => f,
                Ok(None) => continue,
                Err(e) => {
                    // One unreadable order must not stop every metric; it is logged with its id.
                    tracing::warn!(order.id = %row.raw["id"], error = %e, "order left out of the metrics");
                    continue;
                }
            };
            let cur = facts.currency.clone();
            if facts.day >= from {
                let d = days.entry(facts.day).or_default();
                d.orders += 1;
                d.units_sold += facts.units;
                if let Some(customer) = facts.customer {
                    let key = (row.integration_id, customer);
                    match first_day.get(&key) {
                        Some(first) if *first == facts.day => {
                            d.new.insert(key);
                        }
                        Some(first) if *first < facts.day => {
                            d.returning.insert(key);
                        }
                        _ => {}
                    }
                }
                let m = money.entry((facts.day, cur.clone())).or_default();
                m.gross += facts.gross;
                m.discounts += facts.discounts;
                m.sold += facts.gross - facts.discounts;
                m.orders += 1;
            }
            for (day, (amount, units)) in &facts.returns {
                if *day >= from {
                    money.entry((*day, cur.clone())).or_default().returns += amount;
                    days.entry(*day).or_default().units_returned += units;
                }
            }
            for (day, amount) in &facts.refunds {
                if *day >= from {
                    money.entry((*day, cur.clone())).or_default().refunds += amount;
                }
            }
            for ((day, product), p) in facts.products {
                if day >= from {
                    let e = products.entry((day, product, cur.clone())).or_default();
                    if e.title.is_empty() {
                        e.title = p.title;
                    }
                    e.units_sold += p.units_sold;
                    e.units_returned += p.units_returned;
                    e.gross += p.gross;
                    e.discounts += p.discounts;
                    e.returns += p.returns;
                }
            }
        }
    }
    if read == 0 {
        return Ok(0);
    }
    let (mut metrics, mut ds, mut dims, mut values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut push = |metric: &str, day: NaiveDate, dim: &str, value: String| {
        metrics.push(metric.to_owned());
        ds.push(day);
        dims.push(dim.to_owned());
        values.push(value);
    };
    for (day, d) in &days {
        push("shopify_orders", *day, "", d.orders.to_string());
        push("shopify_units_sold", *day, "", d.units_sold.to_string());
        push(
            "shopify_units_returned",
            *day,
            "",
            d.units_returned.to_string(),
        );
        push("shopify_customers_new", *day, "", d.new.len().to_string());
        push(
            "shopify_customers_returning",
            *day,
            "",
            d.returning.len().to_string(),
        );
    }
    for ((day, cur), m) in &money {
        push("shopify_revenue_gross", *day, cur, m.gross.to_string());
        push("shopify_discounts", *day, cur, m.discounts.to_string());
        push("shopify_returns", *day, cur, m.returns.to_string());
        push(
            "shopify_revenue_net",
            *day,
            cur,
            (m.gross - m.discounts - m.returns).to_string(),
        );
        push("shopify_refunds", *day, cur, m.refunds.to_string());
        if m.orders > 0 {
            push("shopify_aov_sales", *day, cur, m.sold.to_string());
            push("shopify_aov_orders", *day, cur, m.orders.to_string());
        }
    }
    let written = diesel::sql_query(
        "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
         SELECT $1, m, d, dim, v::numeric FROM UNNEST($2::text[], $3::date[], $4::text[], $5::text[]) AS t(m, d, dim, v)",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Array<Text>, _>(metrics)
    .bind::<Array<Date>, _>(ds)
    .bind::<Array<Text>, _>(dims)
    .bind::<Array<Text>, _>(values)
    .execute(conn)
    .await?;
    // One array per column, bound to one statement.
    let (days, ids, currencies): (Vec<NaiveDate>, Vec<String>, Vec<String>) = products
        .keys()
        .cloned()
        .fold(Default::default(), |mut acc, (d, p, c)| {
            acc.0.push(d);
            acc.1.push(p);
            acc.2.push(c);
            acc
        });
    let column = |f: fn(&ProductDay) -> i64| products.values().map(f).collect::<Vec<i64>>();
    let titles: Vec<String> = products.values().map(|p| p.title.clone()).collect();
    let product_rows = diesel::sql_query(
        "INSERT INTO commerce_product_daily
            (organization_id, source, day, product_id, currency, title, units_sold, units_returned, gross, discounts, returns)
         SELECT $1, 'shopify', d, p, c, t, us, ur, g, di, r
           FROM UNNEST($2::date[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
             AS x(d, p, c, t, us, ur, g, di, r)",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Array<Date>, _>(days)
    .bind::<Array<Text>, _>(ids)
    .bind::<Array<Text>, _>(currencies)
    .bind::<Array<Text>, _>(titles)
    .bind::<Array<BigInt>, _>(column(|p| p.units_sold))
    .bind::<Array<BigInt>, _>(column(|p| p.units_returned))
    .bind::<Array<BigInt>, _>(column(|p| p.gross))
    .bind::<Array<BigInt>, _>(column(|p| p.discounts))
    .bind::<Array<BigInt>, _>(column(|p| p.returns))
    .execute(conn)
    .await?;
    Ok(written + product_rows)
}

/// One product's sales over a range of days.
#[derive(Debug, Clone, PartialEq, QueryableByName, serde::Serialize)]
pub struct TopProduct {
    #[diesel(sql_type = Text)]
    pub product_id: String,
    #[diesel(sql_type = Text)]
    pub title: String,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub units_sold: i64,
    #[diesel(sql_type = BigInt)]
    pub units_returned: i64,
    #[diesel(sql_type = BigInt)]
    pub gross: i64,
    #[diesel(sql_type = BigInt)]
    pub discounts: i64,
    #[diesel(sql_type = BigInt)]
    pub returns: i64,
    #[diesel(sql_type = BigInt)]
    pub net: i64,
}

/// Products by net sales (gross − discounts − returns) between two local days, best first.
pub async fn top_products(
    conn: &mut Conn,
    organization_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    currency: Option<&str>,
    limit: i64,
) -> Result<Vec<TopProduct>, DbError> {
    Ok(diesel::sql_query(
        "SELECT product_id, (array_agg(title ORDER BY day DESC))[1] AS title, currency,
                sum(units_sold)::bigint AS units_sold, sum(units_returned)::bigint AS units_returned,
                sum(gross)::bigint AS gross, sum(discounts)::bigint AS discounts, sum(returns)::bigint AS returns,
                sum(gross - discounts - returns)::bigint AS net
           FROM commerce_product_daily
          WHERE organization_id = $1 AND source = 'shopify' AND day BETWEEN $2 AND $3
            AND ($4::text IS NULL OR currency = $4)
          GROUP BY product_id, currency
          ORDER BY net DESC, product_id
          LIMIT $5",
    )
    .bind::<diesel::sql_types::Uuid, _>(organization_id)
    .bind::<Date, _>(from)
    .bind::<Date, _>(to)
    .bind::<diesel::sql_types::Nullable<Text>, _>(currency)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn money(amount: &str) -> Value {
        json!({ "shop_money": { "amount": amount, "currency_code": "USD" }, "presentment_money": { "amount": amount, "currency_code": "USD" } })
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// The worked example of docs/METRICS.md ("Shopify").
    fn order_1042() -> Value {
        json!({
            "id": 1042, "test": false, "taxes_included": false, "currency": "USD",
            "processed_at": "2025-11-03T21:14:05-05:00", "created_at": "2025-11-03T21:14:05-05:00",
            "total_price_set": money("67.12"), "customer": { "id": 7 },
            "line_items": [
                { "id": 1, "product_id": 100, "title": "Shirt", "quantity": 2, "price_set": money("25.00"),
                  "discount_allocations": [{ "amount_set": money("5.00") }],
                  "tax_lines": [{ "rate": 0.08875, "price_set": money("3.99") }] },
                { "id": 2, "product_id": 200, "title": "Socks", "quantity": 1, "price_set": money("12.99"),
                  "discount_allocations": [], "tax_lines": [{ "rate": 0.08875, "price_set": money("1.15") }] }
            ],
            "shipping_lines": [{ "price_set": money("5.99") }],
            "refunds": [{
                "id": 9, "processed_at": "2025-11-10T10:00:00-05:00",
                "refund_line_items": [{ "line_item_id": 1, "quantity": 1, "subtotal_set": money("22.50"), "total_tax_set": money("2.00") }],
                "transactions": [
                    { "kind": "refund", "status": "success", "amount": "24.50", "currency": "USD", "processed_at": "2025-11-10T10:00:00-05:00" },
                    { "kind": "refund", "status": "failure", "amount": "24.50", "currency": "USD", "processed_at": "2025-11-10T10:00:00-05:00" }
                ]
            }],
            "cancelled_at": "2025-11-12T09:00:00-05:00"
        })
    }

    #[test]
    fn the_worked_example_books_each_amount_on_its_local_day() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let f = OrderFacts::from_order(&order_1042(), tokyo)
            .unwrap()
            .unwrap();
        assert_eq!(f.day, day("2025-11-04"));
        assert_eq!((f.gross, f.discounts, f.units), (6299, 500, 3));
        assert_eq!(f.customer, Some(7));
        assert_eq!(f.refunds, BTreeMap::from([(day("2025-11-11"), 2450)]));
        assert_eq!(
            f.returns,
            BTreeMap::from([
                (day("2025-11-11"), (2250, 1)),
                (day("2025-11-12"), (3549, 2))
            ])
        );
        // Over its life the cancelled order nets to zero.
        let returned: i64 = f.returns.values().map(|r| r.0).sum();
        assert_eq!(f.gross - f.discounts - returned, 0);
        // In New York the same order is on the 3rd.
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            OrderFacts::from_order(&order_1042(), ny)
                .unwrap()
                .unwrap()
                .day,
            day("2025-11-03")
        );
    }

    /// Replaces every `x_set` by the plain `x` (its shop-money amount), as payloads of older API
    /// versions carry only those.
    fn without_sets(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, x) in map {
                    match k.strip_suffix("_set") {
                        Some(plain) => {
                            out.insert(plain.to_owned(), x["shop_money"]["amount"].clone());
                        }
                        None => {
                            out.insert(k.clone(), without_sets(x));
                        }
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(without_sets).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn an_order_without_set_amounts_reads_the_plain_ones() {
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let plain = without_sets(&order_1042());
        assert!(plain["line_items"][0]["price_set"].is_null());
        assert_eq!(plain["line_items"][0]["price"], "25.00");
        assert_eq!(
            OrderFacts::from_order(&plain, tokyo).unwrap(),
            OrderFacts::from_order(&order_1042(), tokyo).unwrap()
        );
    }

    #[test]
    fn tax_included_prices_have_their_tax_taken_out_of_gross() {
        // €24.00 × 1 at 20 % VAT included: 24.00 − round(24.00 × 0.2 / 1.2) = 20.00.
        // €10.01 × 3 = 30.03: tax 5.005 → 5.00 (half to even), gross 25.03.
        let eur = |a: &str| json!({ "shop_money": { "amount": a, "currency_code": "EUR" } });
        let order = json!({
            "id": 1, "test": false, "taxes_included": true, "processed_at": "2025-11-03T10:00:00+01:00",
            "total_price_set": eur("54.03"),
            "line_items": [
                { "id": 1, "quantity": 1, "price_set": eur("24.00"), "discount_allocations": [], "tax_lines": [{ "rate": 0.2 }] },
                { "id": 2, "quantity": 3, "price_set": eur("10.01"), "discount_allocations": [], "tax_lines": [{ "rate": 0.2 }] }
            ],
            "refunds": [{ "processed_at": "2025-11-05T10:00:00+01:00",
                "refund_line_items": [{ "line_item_id": 1, "quantity": 1, "subtotal_set": eur("24.00"), "total_tax_set": eur("4.00") }],
                "transactions": [] }]
        });
        let f = OrderFacts::from_order(&order, Tz::UTC).unwrap().unwrap();
        assert_eq!(f.currency, "eur");
        assert_eq!(f.gross, 2000 + 2503);
        assert_eq!(f.returns[&day("2025-11-05")], (2000, 1));
    }

    #[test]
    fn test_orders_count_nothing_and_bad_amounts_are_errors() {
        let mut o = order_1042();
        o["test"] = json!(true);
        assert_eq!(OrderFacts::from_order(&o, Tz::UTC), Ok(None));
        let mut o = order_1042();
        o["line_items"][0]["price_set"]["shop_money"]["amount"] = json!("25,00");
        assert!(matches!(
            OrderFacts::from_order(&o, Tz::UTC),
            Err(OrderError::BadAmount(_))
        ));
    }

    #[test]
    fn a_transaction_in_the_buyers_currency_is_converted_at_the_orders_rate() {
        // Shop $100.00 shown as CA$135.00; CA$27.00 back is $20.00.
        let order = json!({ "total_price_set": {
            "shop_money": { "amount": "100.00", "currency_code": "USD" },
            "presentment_money": { "amount": "135.00", "currency_code": "CAD" } } });
        let t = json!({ "amount": "27.00", "currency": "CAD" });
        let rate = presentment_rate(&order);
        assert_eq!(transaction_shop_money(&t, "usd", rate.as_ref()), Ok(2000));
    }
}
