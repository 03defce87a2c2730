//! Churn rates and lifetime value, derived per period at read time from the stored daily rollups
//! (docs/METRICS.md, "Churn and lifetime value"). A rate over a week or a month is not a sum or
//! an end value of daily rates, so these are never stored per day.
//!
//! - `stripe_customer_churn_rate` over days `a..=b`: customers churned on those days
//!   (`stripe_customers_churned`) ÷ paying customers at the end of the day before `a`
//!   (`stripe_paying_customers`). Stripe's "subscriber churn rate".
//! - `stripe_mrr_churn_rate`, per currency: (churned + contraction MRR on those days) ÷ MRR at
//!   the end of the day before `a`. Expansion and reactivation do not offset it (gross churn).
//! - `stripe_ltv`, per currency, at day `b`: ARPU at the end of `b` ÷ the customer churn rate of
//!   the 30 days ending on `b`. Both are monthly, so the quotient is months × money.
//!
//! Undefined values (no one paying at the start, no churn for LTV) are `None`, never a guess.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate};

use super::mrr::{round_half_even, Amount};

/// A metric's daily values: (day, dimension) → value. Dimension `""` for undimensioned ones.
pub type Daily = BTreeMap<(NaiveDate, String), i64>;

/// Days in the trailing window LTV's churn rate is taken over.
pub const LTV_WINDOW_DAYS: u64 = 30;

/// Decimal places a rate is rounded to (half-even) when it is shown.
pub const RATE_PLACES: u32 = 6;

fn sum(flow: &Daily, dimension: &str, a: NaiveDate, b: NaiveDate) -> i64 {
    flow.range((a, String::new())..=(b, "\u{10FFFF}".to_owned()))
        .filter(|((_, d), _)| d == dimension)
        .map(|(_, v)| *v)
        .sum()
}

/// The value on `day`: `None` when no rollup exists for that day at all (before the data
/// starts); zero when the day has rows but none for this dimension.
fn at(stock: &Daily, dimension: &str, day: NaiveDate) -> Option<i64> {
    let mut rows = stock
        .range((day, String::new())..=(day, "\u{10FFFF}".to_owned()))
        .peekable();
    rows.peek()?;
    Some(
        rows.find(|((_, d), _)| d == dimension)
            .map(|(_, v)| *v)
            .unwrap_or(0),
    )
}

fn day_before(a: NaiveDate) -> Option<NaiveDate> {
    a.checked_sub_days(Days::new(1))
}

/// Customer churn rate over `a..=b`.
pub fn customer_churn_rate(
    churned: &Daily,
    paying: &Daily,
    a: NaiveDate,
    b: NaiveDate,
) -> Option<Amount> {
    let base = at(paying, "", day_before(a)?)?;
    (base > 0).then(|| Amount::new(sum(churned, "", a, b).into(), base.into()))
}

/// MRR churn rate in `currency` over `a..=b`.
pub fn mrr_churn_rate(
    churned_mrr: &Daily,
    contraction_mrr: &Daily,
    mrr: &Daily,
    currency: &str,
    a: NaiveDate,
    b: NaiveDate,
) -> Option<Amount> {
    let base = at(mrr, currency, day_before(a)?)?;
    let lost = sum(churned_mrr, currency, a, b) + sum(contraction_mrr, currency, a, b);
    (base > 0).then(|| Amount::new(lost.into(), base.into()))
}

/// Lifetime value in `currency` at the end of `day`, in minor units.
pub fn ltv(
    arpu: &Daily,
    churned: &Daily,
    paying: &Daily,
    currency: &str,
    day: NaiveDate,
) -> Option<i128> {
    let arpu = at(arpu, currency, day).filter(|v| *v > 0)?;
    let window_start = day.checked_sub_days(Days::new(LTV_WINDOW_DAYS - 1))?;
    let rate = customer_churn_rate(churned, paying, window_start, day)?;
    (rate > Amount::from_integer(0))
        .then(|| round_half_even(Amount::from_integer(arpu.into()) / rate))
}

/// A rate as a JSON-ready number, rounded half-even to [`RATE_PLACES`] decimals. The division
/// of two exactly representable integers is correctly rounded, so the float printed is the
/// decimal itself (0.041667, not 0.04166699…).
pub fn rate_value(rate: Amount) -> f64 {
    let scale = 10i128.pow(RATE_PLACES);
    round_half_even(rate * Amount::from_integer(scale)) as f64 / scale as f64
}

#[cfg(test)]
mod tests {
    //! The worked examples of docs/METRICS.md, "Churn and lifetime value".
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn daily(rows: &[(&str, &str, i64)]) -> Daily {
        rows.iter()
            .map(|(day, dim, v)| ((d(day), dim.to_string()), *v))
            .collect()
    }

    #[test]
    fn customer_churn_is_churned_over_those_paying_the_day_before() {
        // 200 paying on 31 March; 3 churn on 2 April and 5 on 20 April: 8 / 200 = 4 %.
        let paying = daily(&[("2026-03-31", "", 200), ("2026-04-01", "", 210)]);
        let churned = daily(&[
            ("2026-04-02", "", 3),
            ("2026-04-20", "", 5),
            ("2026-05-01", "", 9),
        ]);
        let rate = customer_churn_rate(&churned, &paying, d("2026-04-01"), d("2026-04-30"));
        assert_eq!(rate, Some(Amount::new(8, 200)));
        assert_eq!(rate_value(rate.unwrap()), 0.04);
        // Nothing known about 31 December: undefined, not zero.
        assert_eq!(
            customer_churn_rate(&churned, &paying, d("2026-01-01"), d("2026-01-31")),
            None
        );
    }

    #[test]
    fn mrr_churn_counts_churn_and_contraction_but_not_expansion() {
        // $10,000.00 USD MRR on 31 March; $250.00 churned and $50.00 contracted in April:
        // 30,000 / 1,000,000 = 3 %. EUR had no MRR the day before: undefined.
        let mrr = daily(&[("2026-03-31", "usd", 1_000_000)]);
        let churned = daily(&[("2026-04-03", "usd", 25_000), ("2026-04-09", "eur", 900)]);
        let contraction = daily(&[("2026-04-15", "usd", 5_000)]);
        let usd = mrr_churn_rate(
            &churned,
            &contraction,
            &mrr,
            "usd",
            d("2026-04-01"),
            d("2026-04-30"),
        );
        assert_eq!(usd.map(rate_value), Some(0.03));
        let eur = mrr_churn_rate(
            &churned,
            &contraction,
            &mrr,
            "eur",
            d("2026-04-01"),
            d("2026-04-30"),
        );
        assert_eq!(eur, None);
    }

    #[test]
    fn ltv_is_arpu_over_the_trailing_thirty_day_customer_churn() {
        // ARPU $49.99 on 30 April; 300 paying on 31 March, 7 churned in April:
        // 4,999 ÷ (7/300) = 214,242.857… → 214,243 cents.
        let arpu = daily(&[("2026-04-30", "usd", 4_999)]);
        let paying = daily(&[("2026-03-31", "", 300)]);
        let churned = daily(&[("2026-04-11", "", 4), ("2026-04-30", "", 3)]);
        assert_eq!(
            ltv(&arpu, &churned, &paying, "usd", d("2026-04-30")),
            Some(214_243)
        );
        // No churn in the window: LTV is unbounded, so undefined.
        let none = daily(&[]);
        assert_eq!(ltv(&arpu, &none, &paying, "usd", d("2026-04-30")), None);
    }

    #[test]
    fn rates_round_half_even_to_six_places() {
        assert_eq!(rate_value(Amount::new(1, 24)), 0.041667);
        // 0.0000005 exactly: half-even keeps the even 0.
        assert_eq!(rate_value(Amount::new(1, 2_000_000)), 0.0);
        assert_eq!(rate_value(Amount::new(3, 2_000_000)), 0.000002);
    }
}
