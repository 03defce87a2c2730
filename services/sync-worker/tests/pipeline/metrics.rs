//! Stripe metrics end to end: a 2,000-customer account is backfilled through the real worker,
//! the rollups are computed, and the API's series must equal values computed here
//! independently — from the simulator's data set and the contract's written rules, with integer
//! arithmetic of our own rather than the product's MRR code.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use provider_sim::config::StripeConfig;
use provider_sim::stripe::Dataset;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::Harness;

const KEY: &str = "sk_test_51MetricsAccount000000001";

/// Flow metrics by (day, currency): revenue, net revenue, refunds.
pub fn flows(charges: &[Value], refund_list: &[Value]) -> [BTreeMap<(NaiveDate, String), i64>; 3] {
    flows_in(charges, refund_list, chrono_tz::UTC)
}

/// [`flows`], with days cut in `tz`.
pub fn flows_in(
    charges: &[Value],
    refund_list: &[Value],
    tz: chrono_tz::Tz,
) -> [BTreeMap<(NaiveDate, String), i64>; 3] {
    let day_of = |ts: i64| {
        Utc.timestamp_opt(ts, 0)
            .unwrap()
            .with_timezone(&tz)
            .date_naive()
    };
    let (mut revenue, mut net, mut refunds) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for c in charges.iter().filter(|c| c["status"] == "succeeded") {
        let key = (
            day_of(c["created"].as_i64().unwrap()),
            c["currency"].as_str().unwrap().to_owned(),
        );
        *revenue.entry(key.clone()).or_insert(0) += c["amount"].as_i64().unwrap();
        *net.entry(key).or_insert(0) +=
            c["amount"].as_i64().unwrap() - c["amount_refunded"].as_i64().unwrap();
    }
    for r in refund_list.iter().filter(|r| r["status"] == "succeeded") {
        let key = (
            day_of(r["created"].as_i64().unwrap()),
            r["currency"].as_str().unwrap().to_owned(),
        );
        *refunds.entry(key).or_insert(0) += r["amount"].as_i64().unwrap();
    }
    [revenue, net, refunds]
}

/// MRR × 3600 for one subscription at the end of `day`, by the contract's rules, or None when
/// it does not count. 3600 = 12 × 100 × 3 makes every normalisation and discount here exact.
pub fn mrr_scaled(s: &Value, day: NaiveDate) -> Option<i128> {
    mrr_scaled_under(s, day, false)
}

/// [`mrr_scaled`], or with `until_effective` the convention where a scheduled cancellation
/// counts until it takes effect (`ended_at`, else `cancel_at`, else the period's end).
pub fn mrr_scaled_under(s: &Value, day: NaiveDate, until_effective: bool) -> Option<i128> {
    let end = Utc
        .from_utc_datetime(&day.and_hms_opt(23, 59, 59).unwrap())
        .timestamp();
    let t = |k: &str| s[k].as_i64();
    let began = [t("start_date"), t("trial_end")]
        .into_iter()
        .flatten()
        .max()?;
    if began > end || t("ended_at").is_some_and(|e| e <= end) {
        return None;
    }
    let status = s["status"].as_str().unwrap();
    let scheduled = s["cancel_at_period_end"] == true || !s["cancel_at"].is_null();
    if status == "canceled" || scheduled {
        let leaves = if until_effective {
            t("ended_at").or(t("cancel_at")).or(t("current_period_end"))
        } else {
            t("canceled_at")
        };
        match leaves {
            Some(l) if l <= end => return None,
            None if status == "canceled" => return None,
            _ => {}
        }
    }
    if status != "canceled"
        && (!s["pause_collection"].is_null() || !matches!(status, "active" | "past_due"))
    {
        return None;
    }
    let mut total: i128 = 0;
    let mut period: Option<(String, i128)> = None;
    for item in s["items"]["data"].as_array().unwrap() {
        let price = &item["price"];
        if price["recurring"]["usage_type"] == "metered" {
            continue;
        }
        let interval = price["recurring"]["interval"].as_str().unwrap().to_owned();
        let n = price["recurring"]["interval_count"].as_i64().unwrap() as i128;
        let q = item["quantity"].as_i64().unwrap() as i128;
        let per_period: i128 = if price["billing_scheme"] == "tiered" {
            let mut sum = 0;
            let mut below = 0;
            for tier in price["tiers"].as_array().unwrap() {
                if q <= below {
                    break;
                }
                let top = tier["up_to"]
                    .as_i64()
                    .map(|u| u as i128)
                    .unwrap_or(i128::MAX)
                    .min(q);
                sum += tier["unit_amount"].as_i64().unwrap() as i128 * (top - below)
                    + tier["flat_amount"].as_i64().unwrap_or(0) as i128;
                below = top;
            }
            sum
        } else {
            price["unit_amount"].as_i64().unwrap() as i128 * q
        };
        total += scale(per_period, &interval, n);
        period.get_or_insert((interval, n));
    }
    if let Some(coupon) = s["discount"]["coupon"].as_object() {
        if coupon["duration"] == "forever" {
            if let Some(p) = coupon["percent_off"].as_f64() {
                total = total * (100 - p as i128) / 100;
            } else if let Some(off) = coupon["amount_off"].as_i64() {
                let (interval, n) = period.clone().unwrap();
                total = (total - scale(off as i128, &interval, n)).max(0);
            }
        }
    }
    Some(total)
}

/// A per-period amount as monthly × 3600.
fn scale(amount: i128, interval: &str, n: i128) -> i128 {
    match interval {
        "month" => amount * 3600 / n,
        "year" => amount * 300 / n,
        "week" => amount * 52 * 300 / n,
        "day" => amount * 365 * 300 / n,
        other => panic!("interval {other}"),
    }
}

pub fn half_even(scaled: i128) -> i64 {
    let (q, r) = (scaled / 3600, scaled % 3600);
    (if r * 2 > 3600 || (r * 2 == 3600 && q % 2 == 1) {
        q + 1
    } else {
        q
    }) as i64
}

/// MRR per currency at the end of `day`, rounded once per currency.
pub fn mrr_at(subscriptions: &[Value], day: NaiveDate) -> BTreeMap<String, i64> {
    let mut mrr: BTreeMap<String, i128> = BTreeMap::new();
    for s in subscriptions {
        if let Some(v) = mrr_scaled(s, day) {
            *mrr.entry(s["currency"].as_str().unwrap().to_owned())
                .or_insert(0) += v;
        }
    }
    mrr.into_iter().map(|(c, v)| (c, half_even(v))).collect()
}

/// A metric's series as (day, dimension) → value, zeros left out.
pub async fn series_map(
    http: &reqwest::Client,
    url: &str,
    token: &str,
) -> BTreeMap<(NaiveDate, String), i64> {
    let body = get(http, url, token).await;
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let dim = p["currency"]
                .as_str()
                .or(p["status"].as_str())
                .unwrap_or("")
                .to_owned();
            (
                (p["date"].as_str().unwrap().parse().unwrap(), dim),
                p["value"].as_i64().unwrap(),
            )
        })
        .filter(|(_, v)| *v != 0)
        .collect()
}

pub async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let res = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{url}");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_match_values_computed_from_the_account_at_three_dates() {
    let customers = 2_000;
    let h = Harness::new(customers).await;
    let gateway = h.gateway().await;
    let api = h
        .connect_through_api(&gateway, "cfo@example.com", KEY)
        .await;
    let (http, token, org, connected) = (
        api.http.clone(),
        api.token.as_str(),
        api.org.as_str(),
        &api.connected,
    );
    let _w = h.worker(
        "metrics",
        &[("BIZ__PROVIDERS__STRIPE_TEST_REQUESTS_PER_SECOND", "5000")],
    );
    let run_url = format!(
        "{gateway}/api/v1/orgs/{org}/sync-runs/{}",
        connected["sync_run_id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let run = get(&http, &run_url, token).await;
        if run["status"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "backfill: {run}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The rollups follow the backfill.
    let base = format!("{gateway}/api/v1/orgs/{org}/metrics");
    let customers_url = format!("{base}/stripe_customers_total?from=2026-01-10&to=2026-01-10");
    loop {
        if !get(&http, &customers_url, token).await["series"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "rollups did not appear");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let d = Dataset::generate(
        42,
        &StripeConfig {
            customers,
            api_keys: vec![],
        },
    );

    // Revenue, net revenue and refunds per currency and day, over the whole history.
    let [revenue, net, refunds] = flows(&d.charges, &d.refunds);
    for (key, want) in [
        ("stripe_revenue", revenue),
        ("stripe_net_revenue", net),
        ("stripe_refunds_total", refunds),
    ] {
        let body = get(
            &http,
            &format!("{base}/{key}?from=2024-06-01&to=2026-12-31"),
            token,
        )
        .await;
        let got: BTreeMap<(NaiveDate, String), i64> = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (
                        p["date"].as_str().unwrap().parse().unwrap(),
                        p["currency"].as_str().unwrap().to_owned(),
                    ),
                    p["value"].as_i64().unwrap(),
                )
            })
            .filter(|(_, v)| *v != 0)
            .collect();
        let want: BTreeMap<_, _> = want.into_iter().filter(|(_, v)| *v != 0).collect();
        assert_eq!(got.len(), want.len(), "{key}: days × currencies");
        assert_eq!(got, want, "{key}");
    }

    // MRR per currency, active subscriptions and customers at three dates.
    for date in ["2025-09-30", "2025-12-15", "2026-01-10"] {
        let day: NaiveDate = date.parse().unwrap();
        let mut mrr: BTreeMap<String, i128> = BTreeMap::new();
        let mut active = 0;
        for s in &d.subscriptions {
            if let Some(v) = mrr_scaled(s, day) {
                *mrr.entry(s["currency"].as_str().unwrap().to_owned())
                    .or_insert(0) += v;
                active += 1;
            }
        }
        let want_mrr: BTreeMap<String, i64> =
            mrr.into_iter().map(|(c, v)| (c, half_even(v))).collect();
        let body = get(
            &http,
            &format!("{base}/stripe_mrr?from={date}&to={date}"),
            token,
        )
        .await;
        let got_mrr: BTreeMap<String, i64> = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["currency"].as_str().unwrap().to_owned(),
                    p["value"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got_mrr, want_mrr, "MRR on {date}");
        assert_eq!(want_mrr.len(), 4, "four currencies on {date}");

        let body = get(
            &http,
            &format!("{base}/stripe_subscriptions_active?from={date}&to={date}"),
            token,
        )
        .await;
        assert_eq!(
            body["series"][0]["value"], active,
            "active subscriptions on {date}"
        );
        let end = Utc
            .from_utc_datetime(&day.and_hms_opt(23, 59, 59).unwrap())
            .timestamp();
        let want_customers = d
            .customers
            .iter()
            .filter(|c| c["created"].as_i64().unwrap() <= end)
            .count();
        let body = get(
            &http,
            &format!("{base}/stripe_customers_total?from={date}&to={date}"),
            token,
        )
        .await;
        assert_eq!(
            body["series"][0]["value"], want_customers,
            "customers on {date}"
        );
    }

    // Movements explain each day's change in MRR: new + expansion + reactivation − contraction
    // − churned = MRR(d) − MRR(d−1), per currency (each term rounded on its own: within 3).
    let window = "from=2025-10-01&to=2025-12-31";
    let mrr = series_map(
        &http,
        &format!("{base}/stripe_mrr?from=2025-09-30&to=2025-12-31"),
        token,
    )
    .await;
    let mut moves: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
    for (key, sign) in [
        ("stripe_mrr_new", 1),
        ("stripe_mrr_expansion", 1),
        ("stripe_mrr_reactivation", 1),
        ("stripe_mrr_contraction", -1),
        ("stripe_mrr_churned", -1),
    ] {
        for (k, v) in series_map(&http, &format!("{base}/{key}?{window}"), token).await {
            *moves.entry(k).or_insert(0) += sign * v;
        }
    }
    let mut checked = 0;
    let mut day: NaiveDate = "2025-10-01".parse().unwrap();
    while day <= "2025-12-31".parse().unwrap() {
        for currency in ["eur", "gbp", "jpy", "usd"] {
            let today = mrr.get(&(day, currency.to_owned())).copied().unwrap_or(0);
            let yesterday = mrr
                .get(&(day.pred_opt().unwrap(), currency.to_owned()))
                .copied()
                .unwrap_or(0);
            let explained = moves.get(&(day, currency.to_owned())).copied().unwrap_or(0);
            assert!(
                (today - yesterday - explained).abs() <= 3,
                "{day} {currency}: Δ {} vs movements {explained}",
                today - yesterday
            );
            checked += 1;
        }
        day = day.succ_opt().unwrap();
    }
    assert_eq!(checked, 92 * 4);
    let churned = series_map(&http, &format!("{base}/stripe_mrr_churned?{window}"), token).await;
    assert!(!churned.is_empty(), "some churn in a quarter");

    // Paying customers and ARPU at one date, from the data set.
    let day: NaiveDate = "2025-12-15".parse().unwrap();
    let mut per_customer: BTreeMap<(String, String), i128> = BTreeMap::new();
    for s in &d.subscriptions {
        if let Some(v) = mrr_scaled(s, day) {
            *per_customer
                .entry((
                    s["customer"].as_str().unwrap().to_owned(),
                    s["currency"].as_str().unwrap().to_owned(),
                ))
                .or_insert(0) += v;
        }
    }
    let payers: std::collections::BTreeSet<&String> = per_customer
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|((c, _), _)| c)
        .collect();
    let body = get(
        &http,
        &format!("{base}/stripe_paying_customers?from=2025-12-15&to=2025-12-15"),
        token,
    )
    .await;
    assert_eq!(body["series"][0]["value"], payers.len());
    let usd_payers = per_customer
        .iter()
        .filter(|((_, cur), v)| cur == "usd" && **v > 0)
        .count() as i128;
    let usd_mrr: i128 = per_customer
        .iter()
        .filter(|((_, cur), _)| cur == "usd")
        .map(|(_, v)| *v)
        .sum();
    let body = get(
        &http,
        &format!("{base}/stripe_arpu?from=2025-12-15&to=2025-12-15&currency=usd"),
        token,
    )
    .await;
    assert_eq!(
        body["series"][0]["value"],
        half_even(usd_mrr / usd_payers),
        "ARPU (usd)"
    );

    // A month of MRR is its last day's value; a month of revenue is the sum of its days.
    let month = get(
        &http,
        &format!("{base}/stripe_mrr?from=2025-12-01&to=2025-12-31&granularity=month&currency=usd"),
        token,
    )
    .await;
    let last_day = get(
        &http,
        &format!("{base}/stripe_mrr?from=2025-12-31&to=2025-12-31&currency=usd"),
        token,
    )
    .await;
    assert_eq!(month["series"][0]["value"], last_day["series"][0]["value"]);
    assert_eq!(month["series"][0]["date"], "2025-12-01");
    let days = get(
        &http,
        &format!("{base}/stripe_revenue?from=2025-12-01&to=2025-12-31&currency=usd"),
        token,
    )
    .await;
    let sum: i64 = days["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .sum();
    let month = get(
        &http,
        &format!(
            "{base}/stripe_revenue?from=2025-12-01&to=2025-12-31&granularity=month&currency=usd"
        ),
        token,
    )
    .await;
    assert_eq!(month["series"][0]["value"], sum);

    // Bad requests are 422 with a code.
    for (query, code) in [
        ("stripe_mrr?from=2025-13-01&to=2025-12-31", "invalid_date"),
        ("stripe_mrr?from=2025-12-31&to=2025-12-01", "invalid_range"),
        ("stripe_mrr?from=2015-01-01&to=2025-12-01", "range_too_long"),
        (
            "stripe_mrr?from=2025-12-01&to=2025-12-31&granularity=hour",
            "invalid_granularity",
        ),
        ("nonsense?from=2025-12-01&to=2025-12-31", "unknown_metric"),
    ] {
        let res = http
            .get(format!("{base}/{query}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{query}");
    }

    churn_and_ltv_match_the_written_rules(&http, token, &base, &d.subscriptions).await;
    comparisons_are_right_across_month_and_year_boundaries(&http, token, &base, &d).await;
    the_dashboard_cards_match_the_data_set(&http, token, &gateway, org, &d).await;
    a_convention_change_rebuilds_mrr(&http, token, &gateway, org, &d.subscriptions).await;
    a_time_zone_change_recuts_the_days(&http, token, &gateway, org, &d).await;
}

/// `compare=previous_period` at a year boundary (January against December) and
/// `previous_year`, against sums of the data set's charges.
async fn comparisons_are_right_across_month_and_year_boundaries(
    http: &reqwest::Client,
    token: &str,
    base: &str,
    d: &Dataset,
) {
    let [revenue, _, _] = flows(&d.charges, &d.refunds);
    let sum = |from: &str, to: &str| -> i64 {
        let (from, to): (NaiveDate, NaiveDate) = (from.parse().unwrap(), to.parse().unwrap());
        revenue
            .iter()
            .filter(|((day, c), _)| *day >= from && *day <= to && c == "usd")
            .map(|(_, v)| *v)
            .sum()
    };
    for (range, kind, (pf, pt)) in [
        (
            ("2026-01-01", "2026-01-31"),
            "previous_period",
            ("2025-12-01", "2025-12-31"),
        ),
        (
            ("2025-03-01", "2025-03-31"),
            "previous_period",
            ("2025-02-01", "2025-02-28"),
        ),
        (
            ("2025-12-01", "2025-12-31"),
            "previous_year",
            ("2024-12-01", "2024-12-31"),
        ),
    ] {
        let body = get(
            http,
            &format!(
                "{base}/stripe_revenue?from={}&to={}&granularity=month&currency=usd&compare={kind}",
                range.0, range.1
            ),
            token,
        )
        .await;
        let c = &body["compare"];
        assert_eq!(
            (c["from"].as_str(), c["to"].as_str()),
            (Some(pf), Some(pt)),
            "{kind} of {range:?}"
        );
        let (now, then) = (sum(range.0, range.1), sum(pf, pt));
        assert!(now > 0 && then > 0, "{range:?}: data on both sides");
        let total = &c["totals"][0];
        assert_eq!(total["currency"], "usd");
        assert_eq!(total["current"], now, "{range:?}");
        assert_eq!(total["previous"], then, "{range:?}");
        let want = ((now - then) as f64 / then as f64 * 1e6).round() / 1e6;
        assert_eq!(total["change"].as_f64(), Some(want));
        // The comparison's own series is the previous month's.
        assert_eq!(c["series"][0]["date"], pf);
        assert_eq!(c["series"][0]["value"], then);
    }
    let res = http
        .get(format!(
            "{base}/stripe_revenue?from=2025-12-01&to=2025-12-31&compare=last_week"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// The overview's cards for December 2025: in dollars, then in the reporting currency once
/// daily rates are loaded (each day's charges at that day's rate).
async fn the_dashboard_cards_match_the_data_set(
    http: &reqwest::Client,
    token: &str,
    gateway: &str,
    org: &str,
    d: &Dataset,
) {
    let url = format!("{gateway}/api/v1/orgs/{org}/dashboard?from=2025-12-01&to=2025-12-31");
    let [revenue, _, _] = flows(&d.charges, &d.refunds);
    let (dec_from, dec_to): (NaiveDate, NaiveDate) =
        ("2025-12-01".parse().unwrap(), "2025-12-31".parse().unwrap());
    let in_dec = |day: &NaiveDate| *day >= dec_from && *day <= dec_to;
    let usd_dec: i64 = revenue
        .iter()
        .filter(|((day, c), _)| in_dec(day) && c == "usd")
        .map(|(_, v)| *v)
        .sum();
    let body = get(http, &format!("{url}&currency=usd"), token).await;
    assert_eq!(body["sources"], serde_json::json!(["stripe"]));
    assert_eq!(
        (body["compare_from"].as_str(), body["compare_to"].as_str()),
        (Some("2025-11-01"), Some("2025-11-30"))
    );
    let card = |body: &Value, key: &str| -> Value {
        body["cards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no {key} card in {body}"))
    };
    let rev = card(&body, "revenue");
    assert_eq!(rev["value"], usd_dec);
    assert_eq!(rev["currency"], "usd");
    assert_eq!(rev["sparkline"].as_array().unwrap().len(), 31);
    let mrr = card(&body, "mrr");
    assert_eq!(mrr["value"], mrr_at(&d.subscriptions, dec_to)["usd"]);
    let active = d
        .subscriptions
        .iter()
        .filter(|s| mrr_scaled(s, dec_to).is_some())
        .count();
    assert_eq!(card(&body, "subscriptions_active")["value"], active);
    assert!(card(&body, "churn")["value"].is_f64());

    // In the reporting currency (USD) the other currencies need rates: none yet, so no guess.
    let body = get(http, &url, token).await;
    let rev = card(&body, "revenue");
    assert!(rev["value"].is_null(), "{rev}");
    assert!(!rev["missing_rates"].as_array().unwrap().is_empty());
    // Daily rates for December, different every day: 1 EUR = (1.05 + day/1000) USD, and so on.
    let mut csv = String::from("date,base,quote,rate\n");
    let mut day = dec_from;
    while day <= dec_to {
        let n = day.day() as i128;
        for (cur, base_milli) in [("EUR", 1_050), ("GBP", 1_250), ("JPY", 6)] {
            csv.push_str(&format!(
                "{day},{cur},USD,{}.{:03}\n",
                (base_milli + n) / 1000,
                (base_milli + n) % 1000
            ));
        }
        day = day.succ_opt().unwrap();
    }
    let res = http
        .post(format!("{gateway}/api/v1/orgs/{org}/fx-rates"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Expected, in millicents × 1000 to stay exact: Σ per day amount × rate, rounded once.
    let mut total_milli: i128 = 0; // thousandths of a cent
    for ((day, cur), v) in revenue.iter().filter(|((day, _), _)| in_dec(day)) {
        let n = day.day() as i128;
        let v = *v as i128;
        total_milli += match cur.as_str() {
            "usd" => v * 1000,
            "eur" => v * (1_050 + n),
            "gbp" => v * (1_250 + n),
            // Yen have no minor unit: ¥v = v × rate dollars = v × rate × 100 cents.
            "jpy" => v * (6 + n) * 100,
            other => panic!("{other}"),
        };
    }
    let (q, r) = (total_milli / 1000, total_milli % 1000);
    let want = if r * 2 > 1000 || (r * 2 == 1000 && q % 2 == 1) {
        q + 1
    } else {
        q
    };
    let body = get(http, &url, token).await;
    let rev = card(&body, "revenue");
    assert_eq!(rev["currency"], "usd");
    assert_eq!(rev["value"].as_i64().map(i128::from), Some(want), "{rev}");
    assert!(rev.get("missing_rates").is_none());
}

/// The same charges cut into days in Los Angeles rather than UTC: the gateway rebuilds the
/// rollups in the background and the daily series become the Los Angeles ones.
async fn a_time_zone_change_recuts_the_days(
    http: &reqwest::Client,
    token: &str,
    gateway: &str,
    org: &str,
    d: &Dataset,
) {
    let [utc, _, _] = flows(&d.charges, &d.refunds);
    let [la, _, _] = flows_in(&d.charges, &d.refunds, chrono_tz::America::Los_Angeles);
    let window = |m: &BTreeMap<(NaiveDate, String), i64>| -> BTreeMap<(NaiveDate, String), i64> {
        let (from, to): (NaiveDate, NaiveDate) =
            ("2025-11-01".parse().unwrap(), "2025-11-30".parse().unwrap());
        m.iter()
            .filter(|((day, _), v)| *day >= from && *day <= to && **v != 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let (utc, la) = (window(&utc), window(&la));
    assert_ne!(utc, la, "the data set has charges near midnight UTC");
    let res = http
        .patch(format!("{gateway}/api/v1/orgs/{org}"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "timezone": "America/Los_Angeles" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let url =
        format!("{gateway}/api/v1/orgs/{org}/metrics/stripe_revenue?from=2025-11-01&to=2025-11-30");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = series_map(http, &url, token).await;
        if got == la {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Los Angeles days did not appear"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Per day from `first` to `last`: each customer's MRR × 3600 per currency (positive only).
fn paying_by_day(
    subscriptions: &[Value],
    first: NaiveDate,
    last: NaiveDate,
) -> BTreeMap<NaiveDate, BTreeMap<(String, String), i128>> {
    let mut out = BTreeMap::new();
    let mut day = first;
    while day <= last {
        let mut m: BTreeMap<(String, String), i128> = BTreeMap::new();
        for s in subscriptions {
            if let Some(v) = mrr_scaled(s, day) {
                *m.entry((
                    s["customer"].as_str().unwrap().to_owned(),
                    s["currency"].as_str().unwrap().to_owned(),
                ))
                .or_insert(0) += v;
            }
        }
        m.retain(|_, v| *v > 0);
        out.insert(day, m);
        day = day.succ_opt().unwrap();
    }
    out
}

/// n / d rounded half-even to six decimal places, as the API prints it.
fn rate6(n: i128, d: i128) -> f64 {
    let scaled = n * 1_000_000;
    let (q, r) = (scaled / d, scaled % d);
    let q = if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q + 1
    } else {
        q
    };
    q as f64 / 1e6
}

fn round_div(n: i128, d: i128) -> i128 {
    let (q, r) = (n / d, n % d);
    if 2 * r > d || (2 * r == d && q % 2 == 1) {
        q + 1
    } else {
        q
    }
}

/// Customer churn rate, MRR churn rate and LTV per month of a quarter, from the data set:
/// churned customers are those paying (in any currency) one day and not the next; the MRR lost
/// each day is rounded per currency and day, as the daily rollups hold it.
async fn churn_and_ltv_match_the_written_rules(
    http: &reqwest::Client,
    token: &str,
    base: &str,
    subscriptions: &[Value],
) {
    let d = |s: &str| -> NaiveDate { s.parse().unwrap() };
    let days = paying_by_day(subscriptions, d("2025-08-31"), d("2025-12-31"));
    let payers = |day: NaiveDate| -> std::collections::BTreeSet<&String> {
        days[&day].keys().map(|(c, _)| c).collect()
    };
    let churned_on = |day: NaiveDate| -> i128 {
        payers(day.pred_opt().unwrap())
            .difference(&payers(day))
            .count() as i128
    };
    // Per currency and day: churned and contraction MRR, each rounded once.
    let lost_on = |day: NaiveDate, currency: &str| -> i128 {
        let (before, now) = (&days[&day.pred_opt().unwrap()], &days[&day]);
        let (mut churned, mut contraction) = (0i128, 0i128);
        for ((customer, cur), was) in before.iter().filter(|((_, c), _)| c == currency) {
            match now.get(&(customer.clone(), cur.clone())) {
                None => churned += was,
                Some(is) if is < was => contraction += was - is,
                _ => {}
            }
        }
        half_even(churned) as i128 + half_even(contraction) as i128
    };
    let mrr_on = |day: NaiveDate, currency: &str| -> i128 {
        half_even(
            days[&day]
                .iter()
                .filter(|((_, c), _)| c == currency)
                .map(|(_, v)| *v)
                .sum(),
        ) as i128
    };

    let months = [
        (d("2025-10-01"), d("2025-10-31")),
        (d("2025-11-01"), d("2025-11-30")),
        (d("2025-12-01"), d("2025-12-31")),
    ];
    let q = "from=2025-10-01&to=2025-12-31&granularity=month";
    let rates = get(
        http,
        &format!("{base}/stripe_customer_churn_rate?{q}"),
        token,
    )
    .await;
    let usd = get(
        http,
        &format!("{base}/stripe_mrr_churn_rate?{q}&currency=usd"),
        token,
    )
    .await;
    let ltv = get(http, &format!("{base}/stripe_ltv?{q}&currency=usd"), token).await;
    assert_eq!(rates["unit"], "ratio");
    let mut some_churn = false;
    assert!(
        ltv["series"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["value"].is_i64()),
        "some month has an LTV: {ltv}"
    );
    for (i, (a, b)) in months.iter().enumerate() {
        let (mut churned, mut lost) = (0i128, 0i128);
        let mut day = *a;
        while day <= *b {
            churned += churned_on(day);
            lost += lost_on(day, "usd");
            day = day.succ_opt().unwrap();
        }
        some_churn |= churned > 0;
        let start = a.pred_opt().unwrap();
        let base_customers = payers(start).len() as i128;
        assert_eq!(
            rates["series"][i]["value"].as_f64(),
            Some(rate6(churned, base_customers)),
            "customer churn rate of {a}: {churned}/{base_customers}"
        );
        assert_eq!(
            usd["series"][i]["value"].as_f64(),
            Some(rate6(lost, mrr_on(start, "usd"))),
            "usd MRR churn rate of {a}"
        );
        // LTV at the month's end: ARPU ÷ the churn rate of the 30 days ending then.
        let usd_payers = days[b].keys().filter(|(_, c)| c == "usd").count() as i128;
        let arpu = round_div(mrr_on(*b, "usd"), usd_payers);
        let window = b.checked_sub_days(chrono::Days::new(29)).unwrap();
        let mut churned_30 = 0;
        let mut day = window;
        while day <= *b {
            churned_30 += churned_on(day);
            day = day.succ_opt().unwrap();
        }
        let paying_before = payers(window.pred_opt().unwrap()).len() as i128;
        let want = (churned_30 > 0).then(|| round_div(arpu * paying_before, churned_30));
        assert_eq!(
            ltv["series"][i]["value"].as_i64().map(i128::from),
            want,
            "usd LTV at {b}"
        );
    }
    assert!(
        some_churn,
        "the quarter has churn, so the rates are not trivially 0"
    );
}

/// Switching the organisation to "scheduled cancellations count until effective" rebuilds
/// its MRR in the background to the value that rule gives.
async fn a_convention_change_rebuilds_mrr(
    http: &reqwest::Client,
    token: &str,
    gateway: &str,
    org: &str,
    subscriptions: &[Value],
) {
    let under = |day: NaiveDate, until_effective: bool| -> BTreeMap<String, i64> {
        let mut mrr: BTreeMap<String, i128> = BTreeMap::new();
        for s in subscriptions {
            if let Some(v) = mrr_scaled_under(s, day, until_effective) {
                *mrr.entry(s["currency"].as_str().unwrap().to_owned())
                    .or_insert(0) += v;
            }
        }
        mrr.into_iter().map(|(c, v)| (c, half_even(v))).collect()
    };
    // The latest day of the data set's last weeks on which the two rules differ.
    let day = (0..60)
        .map(|back| NaiveDate::from_ymd_opt(2026, 1, 10).unwrap() - chrono::Days::new(back))
        .find(|day| under(*day, false) != under(*day, true))
        .expect("the data set has pending scheduled cancellations");
    let until_effective = under(day, true);

    let org_url = format!("{gateway}/api/v1/orgs/{org}");
    let res = http
        .patch(&org_url)
        .bearer_auth(token)
        .json(&serde_json::json!({"mrr_convention": {"scheduled_cancellations": "sometime"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_mrr_convention");

    let res = http
        .patch(&org_url)
        .bearer_auth(token)
        .json(&serde_json::json!({"mrr_convention": {"scheduled_cancellations": "count_until_effective"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["mrr_convention"],
        serde_json::json!({"discounts": "forever_only", "scheduled_cancellations": "count_until_effective", "past_due_churn_days": null})
    );
    let url = format!("{org_url}/metrics/stripe_mrr?from={day}&to={day}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeMap<String, i64> = get(http, &url, token).await["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["currency"].as_str().unwrap().to_owned(),
                    p["value"].as_i64().unwrap(),
                )
            })
            .collect();
        if got == until_effective {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "MRR under the new convention: got {got:?}, want {until_effective:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
