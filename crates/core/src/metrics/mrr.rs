//! Monthly recurring revenue of one Stripe subscription, by the contract's rules (section 5,
//! "MRR"), kept exact as a rational number of minor units until the very end.
//!
//! Default convention (Stripe Billing's, so our figure matches what users see in Stripe):
//! - counted statuses: `active` and `past_due`; never `trialing`, `incomplete`,
//!   `incomplete_expired`, `unpaid`, `canceled`, `paused`, nor a subscription whose collection
//!   is paused (`pause_collection` set);
//! - a subscription set to cancel (`cancel_at_period_end`, or a `cancel_at`) leaves MRR when that
//!   was set (`canceled_at`), not when it ends;
//! - per item `unit_amount × quantity` (tiered prices: what the tiers give for that quantity),
//!   normalised to a month; metered items excluded;
//! - only `forever` coupons reduce MRR: `percent_off` on the normalised total, `amount_off` per
//!   billing period normalised the same way, floored at zero, several in order on the running
//!   amount.
//!
//! The other conventions an organisation may choose are in [`Convention`]. docs/METRICS.md has
//! the worked examples; the tests below are those examples.

use chrono::{DateTime, Utc};
use num_rational::Ratio;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Exact amounts in minor units.
pub type Amount = Ratio<i128>;

/// How MRR treats discounts, scheduled cancellations and unpaid subscriptions, per organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Convention {
    pub discounts: DiscountRule,
    pub scheduled_cancellations: CancellationRule,
    /// `None`: `past_due` counts for as long as Stripe says `past_due` (Stripe's convention).
    /// `Some(n)`: a `past_due` subscription stops counting `n` days after its current period
    /// started (the unpaid invoice's date).
    pub past_due_churn_days: Option<u32>,
}

impl Convention {
    /// The organisation's stored convention; a value this version cannot read (it is checked on
    /// the way in, so only a hand edit) falls back to the default.
    pub fn from_stored(stored: &Value) -> Convention {
        serde_json::from_value(stored.clone()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "unreadable mrr_convention; using the default");
            Convention::default()
        })
    }
}

impl Default for Convention {
    fn default() -> Self {
        Convention {
            discounts: DiscountRule::ForeverOnly,
            scheduled_cancellations: CancellationRule::LeaveWhenSet,
            past_due_churn_days: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscountRule {
    /// Only `forever` coupons reduce MRR (Stripe's convention).
    ForeverOnly,
    /// `forever`, and `repeating` while they last, reduce MRR; `once` never does.
    AllNonOnce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationRule {
    /// Leaves MRR when the cancellation is set (Stripe's convention).
    LeaveWhenSet,
    /// Counts until the cancellation takes effect.
    CountUntilEffective,
}

/// One subscription's MRR at `at`: its currency and exact amount, or `None` when it does not
/// count then. `sub` is a Stripe subscription object with its items' prices (and, for tiered
/// prices, their tiers) expanded.
pub fn subscription_mrr(
    sub: &Value,
    at: DateTime<Utc>,
    convention: &Convention,
) -> Option<(String, Amount)> {
    if !counts_at(sub, at, convention) {
        return None;
    }
    let currency = sub["currency"].as_str()?.to_lowercase();
    let items = sub["items"]["data"].as_array()?;
    let mut total = Amount::from_integer(0);
    let mut period: Option<(String, i128)> = None;
    for item in items {
        let price = &item["price"];
        let recurring = &price["recurring"];
        if recurring.is_null() || recurring["usage_type"] == "metered" {
            continue;
        }
        let interval = recurring["interval"].as_str()?.to_owned();
        let count = recurring["interval_count"].as_i64().unwrap_or(1).max(1) as i128;
        let quantity = item["quantity"].as_i64().unwrap_or(1).max(0) as i128;
        let per_period = item_amount(price, quantity)?;
        total += to_month(per_period, &interval, count)?;
        period.get_or_insert((interval, count));
    }
    let zero = Amount::from_integer(0);
    for coupon in discounts_in_force(sub, at, convention) {
        if let Some(pct) = number(&coupon["percent_off"]) {
            total -= total * pct / Amount::from_integer(100);
        } else if let Some(off) = coupon["amount_off"].as_i64() {
            // Per billing period, normalised like the prices it discounts.
            if let Some((interval, count)) = &period {
                total -= to_month(Amount::from_integer(off as i128), interval, *count)?;
            }
        }
        if total < zero {
            total = zero;
        }
    }
    Some((currency, total))
}

/// Whether the subscription counts toward MRR at `at`.
fn counts_at(sub: &Value, at: DateTime<Utc>, convention: &Convention) -> bool {
    let ts = |k: &str| sub[k].as_i64().and_then(|t| DateTime::from_timestamp(t, 0));
    let status = sub["status"].as_str().unwrap_or_default();
    // Began paying: after its start and after any trial.
    let began = [ts("start_date"), ts("trial_end")]
        .into_iter()
        .flatten()
        .max();
    if began.is_none_or(|b| b > at) {
        return false;
    }
    if ts("ended_at").is_some_and(|e| e <= at) {
        return false;
    }
    let cancellation_set = sub["cancel_at_period_end"] == true || !sub["cancel_at"].is_null();
    if status == "canceled" || cancellation_set {
        let leaves = match convention.scheduled_cancellations {
            CancellationRule::LeaveWhenSet => {
                ts("canceled_at").or(ts("cancel_at")).or(ts("ended_at"))
            }
            CancellationRule::CountUntilEffective => ts("ended_at")
                .or(ts("cancel_at"))
                .or(ts("current_period_end")),
        };
        if leaves.is_some_and(|l| l <= at) || (status == "canceled" && leaves.is_none()) {
            return false;
        }
        // Canceled now, but counted on days before it left.
        if status == "canceled" {
            return true;
        }
    }
    if !sub["pause_collection"].is_null() {
        return false;
    }
    match status {
        "active" => true,
        "past_due" => match convention.past_due_churn_days {
            None => true,
            Some(days) => ts("current_period_start")
                .is_none_or(|start| at < start + chrono::Duration::days(days.into())),
        },
        _ => false,
    }
}

/// The coupons that reduce MRR at `at`, in the subscription's order.
fn discounts_in_force<'a>(
    sub: &'a Value,
    at: DateTime<Utc>,
    convention: &Convention,
) -> Vec<&'a Value> {
    let list: Vec<&Value> = match sub["discounts"].as_array() {
        Some(ds) if ds.iter().all(Value::is_object) && !ds.is_empty() => ds.iter().collect(),
        _ => sub
            .get("discount")
            .filter(|d| d.is_object())
            .into_iter()
            .collect(),
    };
    list.into_iter()
        .filter(|d| {
            let end = d["end"]
                .as_i64()
                .and_then(|t| DateTime::from_timestamp(t, 0));
            match (d["coupon"]["duration"].as_str(), convention.discounts) {
                (Some("forever"), _) => true,
                (Some("repeating"), DiscountRule::AllNonOnce) => end.is_none_or(|e| e > at),
                _ => false,
            }
        })
        .map(|d| &d["coupon"])
        .collect()
}

/// A price's amount for `quantity` units per billing period, in minor units.
fn item_amount(price: &Value, quantity: i128) -> Option<Amount> {
    let quantity = match price.get("transform_quantity").filter(|t| t.is_object()) {
        // Packaged pricing: price per `divide_by` units, rounded as configured.
        Some(t) => {
            let by = t["divide_by"].as_i64().unwrap_or(1).max(1) as i128;
            if t["round"] == "down" {
                quantity / by
            } else {
                (quantity + by - 1) / by
            }
        }
        None => quantity,
    };
    if price["billing_scheme"] == "tiered" {
        return tiered_amount(price, quantity);
    }
    let unit = decimal_or_integer(&price["unit_amount_decimal"], &price["unit_amount"])?;
    Some(unit * Amount::from_integer(quantity))
}

fn tiered_amount(price: &Value, quantity: i128) -> Option<Amount> {
    let tiers = price["tiers"].as_array()?;
    let unit = |t: &Value| {
        decimal_or_integer(&t["unit_amount_decimal"], &t["unit_amount"]).unwrap_or_default()
    };
    let flat = |t: &Value| {
        decimal_or_integer(&t["flat_amount_decimal"], &t["flat_amount"]).unwrap_or_default()
    };
    let upper = |t: &Value| t["up_to"].as_i64().map(|u| u as i128);
    if price["tiers_mode"] == "volume" {
        let tier = tiers
            .iter()
            .find(|t| upper(t).is_none_or(|u| quantity <= u))?;
        return Some(unit(tier) * Amount::from_integer(quantity) + flat(tier));
    }
    // Graduated: each tier prices the units that fall in it.
    let mut total = Amount::from_integer(0);
    let mut below = 0i128;
    for tier in tiers {
        if quantity <= below {
            break;
        }
        let top = upper(tier).unwrap_or(i128::MAX).min(quantity);
        total += unit(tier) * Amount::from_integer(top - below) + flat(tier);
        below = top;
    }
    Some(total)
}

/// Per billing period → per month: month ÷ n; year ÷ (12n); week × 52 ÷ 12 ÷ n; day × 365 ÷ 12 ÷ n.
pub fn to_month(amount: Amount, interval: &str, count: i128) -> Option<Amount> {
    let per = |num: i128, den: i128| Some(amount * Amount::new(num, den * count));
    match interval {
        "month" => per(1, 1),
        "year" => per(1, 12),
        "week" => per(52, 12),
        "day" => per(365, 12),
        _ => None,
    }
}

/// Stripe's `*_decimal` strings (sub-minor-unit prices) when present, else the integer field.
fn decimal_or_integer(decimal: &Value, integer: &Value) -> Option<Amount> {
    if let Some(s) = decimal.as_str() {
        return parse_decimal(s);
    }
    integer.as_i64().map(|i| Amount::from_integer(i as i128))
}

fn number(v: &Value) -> Option<Amount> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .map(|i| Amount::from_integer(i as i128))
            .or_else(|| parse_decimal(&n.to_string())),
        Value::String(s) => parse_decimal(s),
        _ => None,
    }
}

/// "12.345" → 12345/1000, exactly.
pub fn parse_decimal(s: &str) -> Option<Amount> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 30 {
        return None;
    }
    let all: String = format!("{whole}{frac}");
    if !all.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let num: i128 = all.parse().ok()?;
    let den = 10i128.checked_pow(frac.len() as u32)?;
    let value = Amount::new(num, den);
    Some(if negative { -value } else { value })
}

/// Rounds half to even, to whole minor units: the last step, per currency.
pub fn round_half_even(x: Amount) -> i128 {
    let floor = x.floor();
    let rest = x - floor;
    let half = Amount::new(1, 2);
    let base = *floor.numer() / *floor.denom();
    if rest > half || (rest == half && base % 2 != 0) {
        base + 1
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap() // 2026-01-01
    }

    fn price(amount: i64, interval: &str, count: i64) -> Value {
        json!({ "currency": "usd", "unit_amount": amount, "billing_scheme": "per_unit",
                "recurring": { "interval": interval, "interval_count": count, "usage_type": "licensed" } })
    }

    fn sub(items: Vec<(Value, i64)>) -> Value {
        json!({
            "id": "sub_1", "status": "active", "currency": "usd",
            "start_date": 1_700_000_000, "created": 1_700_000_000,
            "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null, "ended_at": null,
            "trial_end": null, "pause_collection": null, "discount": null, "discounts": [],
            "current_period_start": 1_766_000_000,
            "items": { "data": items.into_iter().map(|(p, q)| json!({ "price": p, "quantity": q })).collect::<Vec<_>>() }
        })
    }

    fn mrr(s: &Value) -> Option<i128> {
        subscription_mrr(s, at(), &Convention::default()).map(|(_, a)| round_half_even(a))
    }

    #[test]
    fn the_contracts_example_100_monthly_and_50_yearly() {
        // 100 × $100/month + 50 × $600/year = $10,000 + $2,500 = $12,500.00.
        let monthly = sub(vec![(price(10_000, "month", 1), 1)]);
        let yearly = sub(vec![(price(60_000, "year", 1), 1)]);
        let mut total = Amount::from_integer(0);
        for _ in 0..100 {
            total += subscription_mrr(&monthly, at(), &Convention::default())
                .unwrap()
                .1;
        }
        for _ in 0..50 {
            total += subscription_mrr(&yearly, at(), &Convention::default())
                .unwrap()
                .1;
        }
        assert_eq!(round_half_even(total), 1_250_000);
    }

    #[test]
    fn intervals_normalise_to_a_month() {
        assert_eq!(mrr(&sub(vec![(price(3_000, "month", 3), 1)])), Some(1_000)); // quarterly
        assert_eq!(mrr(&sub(vec![(price(1_200, "week", 1), 1)])), Some(5_200)); // 1200×52/12
        assert_eq!(mrr(&sub(vec![(price(100, "day", 1), 1)])), Some(3_042)); // 100×365/12 = 3041.67
        assert_eq!(mrr(&sub(vec![(price(12_000, "year", 2), 1)])), Some(500)); // 12000/24
                                                                               // Quantity, and several items.
        assert_eq!(
            mrr(&sub(vec![
                (price(1_000, "month", 1), 3),
                (price(500, "month", 1), 2)
            ])),
            Some(4_000)
        );
    }

    #[test]
    fn sums_stay_exact_until_rounded() {
        // Three weekly $1.00 subscriptions: 3 × 433.33… = 1300 exactly, not 3 × 433 = 1299.
        let weekly = sub(vec![(price(100, "week", 1), 1)]);
        let one = subscription_mrr(&weekly, at(), &Convention::default())
            .unwrap()
            .1;
        assert_eq!(round_half_even(one), 433);
        assert_eq!(round_half_even(one * Amount::from_integer(3)), 1_300);
        assert_eq!(round_half_even(Amount::new(5, 2)), 2, "half to even");
        assert_eq!(round_half_even(Amount::new(7, 2)), 4);
    }

    #[test]
    fn metered_items_and_uncounted_statuses_are_excluded() {
        let mut metered = price(50, "month", 1);
        metered["recurring"]["usage_type"] = json!("metered");
        assert_eq!(
            mrr(&sub(vec![(price(1_000, "month", 1), 1), (metered, 10)])),
            Some(1_000)
        );
        for status in [
            "trialing",
            "incomplete",
            "incomplete_expired",
            "unpaid",
            "paused",
        ] {
            let mut s = sub(vec![(price(1_000, "month", 1), 1)]);
            s["status"] = json!(status);
            assert_eq!(mrr(&s), None, "{status}");
        }
        let mut past_due = sub(vec![(price(1_000, "month", 1), 1)]);
        past_due["status"] = json!("past_due");
        assert_eq!(mrr(&past_due), Some(1_000));
        let mut paused = sub(vec![(price(1_000, "month", 1), 1)]);
        paused["pause_collection"] = json!({ "behavior": "void", "resumes_at": null });
        assert_eq!(mrr(&paused), None);
    }

    #[test]
    fn a_scheduled_cancellation_leaves_when_set() {
        let mut s = sub(vec![(price(1_000, "month", 1), 1)]);
        s["cancel_at_period_end"] = json!(true);
        s["canceled_at"] = json!(1_767_000_000); // set before `at`; period ends later
        s["current_period_end"] = json!(1_768_000_000);
        assert_eq!(mrr(&s), None);
        let until = Convention {
            scheduled_cancellations: CancellationRule::CountUntilEffective,
            ..Default::default()
        };
        assert!(subscription_mrr(&s, at(), &until).is_some());
        // Before it was set, it counted.
        let earlier = DateTime::from_timestamp(1_766_900_000, 0).unwrap();
        assert!(subscription_mrr(&s, earlier, &Convention::default()).is_some());
    }

    #[test]
    fn only_forever_coupons_reduce_mrr_by_default() {
        let mut s = sub(vec![(price(10_000, "month", 1), 1)]);
        s["discount"] =
            json!({ "coupon": { "duration": "forever", "percent_off": 25.0 }, "end": null });
        assert_eq!(mrr(&s), Some(7_500));
        s["discount"] =
            json!({ "coupon": { "duration": "once", "percent_off": 50.0 }, "end": null });
        assert_eq!(mrr(&s), Some(10_000));
        s["discount"] = json!({ "coupon": { "duration": "repeating", "percent_off": 50.0, "duration_in_months": 3 }, "end": 1_770_000_000 });
        assert_eq!(mrr(&s), Some(10_000));
        let all = Convention {
            discounts: DiscountRule::AllNonOnce,
            ..Default::default()
        };
        assert_eq!(
            subscription_mrr(&s, at(), &all).map(|(_, a)| round_half_even(a)),
            Some(5_000)
        );
        // A yearly price with $120 off per year forever: (120000 − 12000) / 12 = 9000.
        let mut y = sub(vec![(price(120_000, "year", 1), 1)]);
        y["discount"] = json!({ "coupon": { "duration": "forever", "amount_off": 12_000, "currency": "usd" }, "end": null });
        assert_eq!(mrr(&y), Some(9_000));
        // Floored at zero.
        y["discount"]["coupon"]["amount_off"] = json!(500_000);
        assert_eq!(mrr(&y), Some(0));
    }

    #[test]
    fn tiered_prices_use_what_the_tiers_give() {
        let tiers = json!([
            { "up_to": 5, "unit_amount": 1_000, "flat_amount": null },
            { "up_to": null, "unit_amount": 800, "flat_amount": 500 }
        ]);
        let mut graduated = price(0, "month", 1);
        graduated["billing_scheme"] = json!("tiered");
        graduated["tiers_mode"] = json!("graduated");
        graduated["tiers"] = tiers.clone();
        // 5 × 1000 + 3 × 800 + 500 = 7900
        assert_eq!(mrr(&sub(vec![(graduated.clone(), 8)])), Some(7_900));
        let mut volume = graduated;
        volume["tiers_mode"] = json!("volume");
        // 8 × 800 + 500 = 6900
        assert_eq!(mrr(&sub(vec![(volume, 8)])), Some(6_900));
    }

    #[test]
    fn trials_and_history() {
        let mut s = sub(vec![(price(1_000, "month", 1), 1)]);
        s["trial_end"] = json!(1_767_300_000); // trial ends after `at`
        assert_eq!(mrr(&s), None);
        let mut c = sub(vec![(price(1_000, "month", 1), 1)]);
        c["status"] = json!("canceled");
        c["canceled_at"] = json!(1_767_300_000);
        c["ended_at"] = json!(1_767_300_000);
        assert_eq!(mrr(&c), Some(1_000), "canceled later: counted at `at`");
        c["canceled_at"] = json!(1_767_000_000);
        assert_eq!(mrr(&c), None);
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.345"), Some(Amount::new(12_345, 1_000)));
        assert_eq!(parse_decimal("-0.5"), Some(Amount::new(-1, 2)));
        assert_eq!(parse_decimal("abc"), None);
        let mut p = price(0, "month", 1);
        p["unit_amount_decimal"] = json!("0.5");
        // 3 × 0.5 = 1.5 → 2 (half to even)
        assert_eq!(mrr(&sub(vec![(p, 3)])), Some(2));
    }
}
