//! Shopify end to end: the app installed through OAuth on a simulated shop, the backfill it
//! starts, the commerce metrics checked day by day against figures computed here from the
//! shop's own data by the contract's definitions, then webhooks (changes, redelivery,
//! deletions, the privacy topics and `app/uninstalled`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::Harness;

const SHOP: &str = "acme-goods.myshopify.com";
const TZ: &str = "Asia/Tokyo";

struct Merchant {
    http: reqwest::Client,
    gateway: String,
    token: String,
    org: String,
}

impl Merchant {
    async fn get(&self, path: &str) -> Value {
        let res = self
            .http
            .get(format!("{}/api/v1{path}", self.gateway))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        res.json().await.unwrap()
    }
}

/// Signs up, sets the organisation's time zone, and installs the app on `SHOP` by following
/// the redirects: our install route → the shop's approval → our callback.
async fn install(gateway: &str) -> Merchant {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signup: Value = http
        .post(format!("{gateway}/api/v1/auth/signup"))
        .json(&json!({ "email": "shop@example.com", "password": "correct horse battery staple", "name": "Owner", "organization_name": "Acme Goods" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signup["token"].as_str().unwrap().to_owned();
    let org = signup["organization"]["id"].as_str().unwrap().to_owned();
    let res = http
        .patch(format!("{gateway}/api/v1/orgs/{org}"))
        .bearer_auth(&token)
        .json(&json!({ "timezone": TZ }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = http
        .get(format!(
            "{gateway}/api/v1/orgs/{org}/integrations/shopify/install?shop={SHOP}"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FOUND);
    let mut next = res.headers()["location"].to_str().unwrap().to_owned();
    for _ in 0..2 {
        let res = http.get(&next).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FOUND, "{next}");
        next = res.headers()["location"].to_str().unwrap().to_owned();
    }
    assert!(next.contains("connected=shopify"), "{next}");
    Merchant {
        http,
        gateway: gateway.to_owned(),
        token,
        org,
    }
}

async fn integration(m: &Merchant) -> Value {
    let list = m.get(&format!("/orgs/{}/integrations", m.org)).await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "shopify")
        .cloned()
        .expect("a Shopify integration")
}

async fn wait_for_run(m: &Merchant, integration: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let runs = m
            .get(&format!(
                "/orgs/{}/integrations/{integration}/sync-runs?limit=1",
                m.org
            ))
            .await;
        let run = runs["data"][0].clone();
        if run["status"] == "succeeded" {
            return run;
        }
        assert!(run["status"] != "failed", "the sync failed: {run}");
        assert!(Instant::now() < deadline, "the sync did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn store(h: &Harness) -> Value {
    reqwest::get(format!("{}/_sim/shopify/{SHOP}/store", h.sim))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

// ---- The contract's definitions, computed here from the shop's data -----------------------

/// A decimal string as cents, exactly (this shop sells in USD).
fn cents(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or("0");
    let negative = s.starts_with('-');
    let s = s.trim_start_matches('-');
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let frac = format!("{frac:0<2}");
    let n = whole.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap();
    if negative {
        -n
    } else {
        n
    }
}

fn day_of(v: &Value, tz: Tz) -> NaiveDate {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&tz)
        .date_naive()
}

#[derive(Default)]
struct Expected {
    /// metric → day → value (money in cents).
    series: BTreeMap<&'static str, BTreeMap<NaiveDate, i64>>,
}

impl Expected {
    fn add(&mut self, metric: &'static str, day: NaiveDate, v: i64) {
        *self
            .series
            .entry(metric)
            .or_default()
            .entry(day)
            .or_default() += v;
    }
}

/// Shopify's sales-report definitions (contract section 5) over the shop's orders. This shop
/// adds tax to prices (`taxes_included` false), so gross is simply price × quantity.
fn expected(store: &Value, tz: Tz) -> Expected {
    let mut e = Expected::default();
    let orders: Vec<&Value> = store["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["test"] == false)
        .collect();
    let mut first: BTreeMap<i64, NaiveDate> = BTreeMap::new();
    for o in &orders {
        if let Some(c) = o["customer"]["id"].as_i64() {
            let d = day_of(&o["processed_at"], tz);
            first.entry(c).and_modify(|f| *f = (*f).min(d)).or_insert(d);
        }
    }
    let mut new: BTreeMap<NaiveDate, std::collections::BTreeSet<i64>> = BTreeMap::new();
    let mut returning: BTreeMap<NaiveDate, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for o in orders {
        assert_eq!(o["taxes_included"], false);
        let day = day_of(&o["processed_at"], tz);
        let (mut gross, mut discounts, mut units) = (0, 0, 0);
        for l in o["line_items"].as_array().unwrap() {
            let q = l["quantity"].as_i64().unwrap();
            gross += cents(&l["price_set"]["shop_money"]["amount"]) * q;
            units += q;
            for a in l["discount_allocations"].as_array().unwrap() {
                discounts += cents(&a["amount_set"]["shop_money"]["amount"]);
            }
        }
        e.add("shopify_orders", day, 1);
        e.add("shopify_revenue_gross", day, gross);
        e.add("shopify_discounts", day, discounts);
        e.add("shopify_revenue_net", day, gross - discounts);
        e.add("shopify_units_sold", day, units);
        e.add("aov_sales", day, gross - discounts);
        if let Some(c) = o["customer"]["id"].as_i64() {
            if first[&c] == day {
                new.entry(day).or_default().insert(c);
            } else {
                returning.entry(day).or_default().insert(c);
            }
        }
        let (mut returned, mut returned_units) = (0, 0);
        for r in o["refunds"].as_array().unwrap() {
            let rday = day_of(&r["processed_at"], tz);
            for item in r["refund_line_items"].as_array().unwrap() {
                let amount = cents(&item["subtotal_set"]["shop_money"]["amount"]);
                let q = item["quantity"].as_i64().unwrap();
                e.add("shopify_returns", rday, amount);
                e.add("shopify_revenue_net", rday, -amount);
                e.add("shopify_units_returned", rday, q);
                returned += amount;
                returned_units += q;
            }
            for t in r["transactions"].as_array().unwrap() {
                if t["kind"] == "refund" && t["status"] == "success" {
                    // Presented in CAD: back to the shop's dollars at the order's own rate.
                    let amount = if t["currency"] == "USD" {
                        cents(&t["amount"])
                    } else {
                        let shop = cents(&o["total_price_set"]["shop_money"]["amount"]) as f64;
                        let shown =
                            cents(&o["total_price_set"]["presentment_money"]["amount"]) as f64;
                        (cents(&t["amount"]) as f64 * shop / shown).round() as i64
                    };
                    e.add("shopify_refunds", day_of(&t["processed_at"], tz), amount);
                }
            }
        }
        if !o["cancelled_at"].is_null() {
            let cday = day_of(&o["cancelled_at"], tz);
            let rest = gross - discounts - returned;
            if rest != 0 || units != returned_units {
                e.add("shopify_returns", cday, rest);
                e.add("shopify_revenue_net", cday, -rest);
                e.add("shopify_units_returned", cday, units - returned_units);
            }
        }
    }
    for (day, set) in new {
        e.add("shopify_customers_new", day, set.len() as i64);
    }
    for (day, set) in returning {
        e.add("shopify_customers_returning", day, set.len() as i64);
    }
    e
}

const CHECKED: [&str; 10] = [
    "shopify_orders",
    "shopify_revenue_gross",
    "shopify_discounts",
    "shopify_returns",
    "shopify_revenue_net",
    "shopify_refunds",
    "shopify_customers_new",
    "shopify_customers_returning",
    "shopify_units_sold",
    "shopify_units_returned",
];

/// The API's daily series of `metric`, zero days left out (as in the expectation).
async fn api_series(m: &Merchant, metric: &str) -> BTreeMap<NaiveDate, i64> {
    let s = m
        .get(&format!(
            "/orgs/{}/metrics/{metric}?from=2025-06-01&to=2026-02-28&granularity=day",
            m.org
        ))
        .await;
    let mut out = BTreeMap::new();
    for p in s["series"].as_array().unwrap() {
        let v = p["value"].as_i64().unwrap();
        if v != 0 {
            *out.entry(p["date"].as_str().unwrap().parse().unwrap())
                .or_default() += v;
        }
    }
    out
}

/// Waits for the rollups to equal the expectation for every checked metric.
async fn metrics_match(m: &Merchant, e: &Expected) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut mismatch = None;
        for metric in CHECKED {
            let want: BTreeMap<NaiveDate, i64> = e
                .series
                .get(metric)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect();
            let got = api_series(m, metric).await;
            if got != want {
                let diff: Vec<_> = want
                    .iter()
                    .filter(|(d, v)| got.get(*d) != Some(*v))
                    .take(3)
                    .map(|(d, v)| format!("{d}: want {v}, got {:?}", got.get(d)))
                    .collect();
                mismatch = Some(format!(
                    "{metric}: {diff:?} ({} vs {} days)",
                    want.len(),
                    got.len()
                ));
                break;
            }
        }
        let Some(why) = mismatch else { return };
        assert!(
            Instant::now() < deadline,
            "metrics differ from the shop's data: {why}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_installed_shop_is_backfilled_and_its_metrics_match_shopifys_definitions() {
    let h = Harness::new(5).await;
    let gateway = h.gateway().await;
    let _w = h.worker("shopify", &[]);
    let m = install(&gateway).await;
    let shopify = integration(&m).await;
    let id = shopify["id"].as_str().unwrap().to_owned();
    // The install started the backfill.
    let run = wait_for_run(&m, &id, Duration::from_secs(60)).await;
    assert_eq!(run["mode"], "full");
    assert_eq!(run["percent"], 100);
    let data = store(&h).await;
    let count = |k: &str| data[k].as_array().unwrap().len() as u64;
    let names: Vec<&str> = run["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["customers", "products", "orders"]);
    for r in run["resources"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap();
        assert_eq!(r["stored"], count(name), "{name}");
    }
    // Paged at 250 through the Link header, every order status asked for, and not one 429:
    // the bucket was kept from overflowing.
    let requests = h.sim_requests(&format!("/shopify/{SHOP}/admin/api/")).await;
    let lists: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("s.json"))
        .filter(|r| !r["path"].as_str().unwrap().ends_with("webhooks.json"))
        .collect();
    assert_eq!(lists.len(), 2 + 1 + 1, "{lists:?}"); // 300 orders in two pages
    assert!(lists.iter().all(|r| r["status"] == 200), "{lists:?}");
    assert!(lists
        .iter()
        .all(|r| r["query"].as_str().unwrap().contains("limit=250")));
    assert!(lists
        .iter()
        .any(|r| r["query"].as_str().unwrap().contains("page_info=")));

    let tz: Tz = TZ.parse().unwrap();
    let e = expected(&data, tz);
    metrics_match(&m, &e).await;

    // AOV over a month: that month's orders' (gross − discounts) ÷ their count.
    let (sales, orders) = e.series["aov_sales"]
        .iter()
        .filter(|(d, _)| d.format("%Y-%m").to_string() == "2025-11")
        .fold((0i64, 0i64), |(s, n), (d, v)| {
            (s + v, n + e.series["shopify_orders"][d])
        });
    let aov = m
        .get(&format!(
            "/orgs/{}/metrics/shopify_aov?from=2025-11-01&to=2025-11-30&granularity=month&currency=usd",
            m.org
        ))
        .await;
    let want = (sales as f64 / orders as f64).round() as i64;
    let got = aov["series"][0]["value"].as_i64().unwrap();
    assert!((got - want).abs() <= 1, "AOV {got} vs {want}");

    // Top products: the best seller's net over the whole range, from the product rollup.
    let top = m
        .get(&format!(
            "/orgs/{}/metrics/shopify/top-products?from=2025-06-01&to=2026-02-28&limit=3",
            m.org
        ))
        .await;
    let rows = top["data"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0]["net"].as_i64() >= rows[1]["net"].as_i64());
    let total_net: i64 = e.series["shopify_revenue_net"].values().sum();
    let all = m
        .get(&format!(
            "/orgs/{}/metrics/shopify/top-products?from=2025-06-01&to=2026-02-28&limit=100",
            m.org
        ))
        .await;
    let sum: i64 = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["net"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, total_net, "products' net sums to the shop's net sales");
}
