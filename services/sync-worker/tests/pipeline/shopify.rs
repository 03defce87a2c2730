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

    /// Asks for a sync of the integration (`full` or `incremental`).
    async fn sync(&self, id: &str, mode: &str) {
        let res = self
            .http
            .post(format!(
                "{}/api/v1/orgs/{}/integrations/{id}/sync",
                self.gateway, self.org
            ))
            .bearer_auth(&self.token)
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
}

/// The `traces` that `text` still holds.
fn found<'a>(text: &str, traces: &'a [String]) -> Vec<&'a String> {
    traces
        .iter()
        .filter(|t| text.contains(t.as_str()))
        .collect()
}

/// Has the simulator deliver `payload` as a signed `topic` webhook, and waits until it is
/// applied.
async fn deliver_and_wait(h: &Harness, topic: &str, payload: Value, webhook_id: &str) {
    sim_post(
        h,
        "webhooks/send",
        json!({ "topic": topic, "payload": payload, "webhook_id": webhook_id }),
    )
    .await;
    let sql = format!("SELECT count(*) AS n FROM webhook_events WHERE external_id = '{webhook_id}' AND status = 'processed'");
    let deadline = Instant::now() + Duration::from_secs(15);
    while rows(h, &sql).await == 0 {
        assert!(Instant::now() < deadline, "{webhook_id} was not applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
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
    // From before the data set to today: a live shop's changes happen now.
    let to = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let s = m
        .get(&format!(
            "/orgs/{}/metrics/{metric}?from=2025-06-01&to={to}&granularity=day",
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

async fn sim_post(h: &Harness, path: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{}/_sim/shopify/{SHOP}/{path}", h.sim))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The whole database as `pg_dump` writes it.
fn dump(h: &Harness) -> String {
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", &h.db_url])
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn rows(h: &Harness, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = biz_core::db::conn(&h.pool).await.unwrap();
    let n: N = diesel::sql_query(sql).get_result(&mut conn).await.unwrap();
    n.n
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_keep_the_shop_current_and_the_privacy_topics_are_honoured() {
    let h = Harness::new(5).await;
    let gateway = h.gateway().await;
    let _w = h.worker("shopify-hooks", &[]);
    let m = install(&gateway).await;
    let id = integration(&m).await["id"].as_str().unwrap().to_owned();
    wait_for_run(&m, &id, Duration::from_secs(60)).await;
    let tz: Tz = TZ.parse().unwrap();

    // A merchant's day: new orders, refunds, a cancellation, a renamed product, a deleted
    // product, customer and order, each delivered as a signed webhook.
    let sent = sim_post(
        &h,
        "advance",
        json!({ "orders": 4, "refunds": 2, "cancellations": 1, "product_updates": 1, "product_deletes": 1, "customer_deletes": 1, "order_deletes": 1 }),
    )
    .await;
    let deliveries: Vec<&Value> = sent["sent"].as_array().unwrap().iter().collect();
    assert_eq!(deliveries.len(), 4 + 2 * 2 + 2 + 1 + 1 + 1 + 1);
    for d in &deliveries {
        assert_eq!(d["deliveries"][0]["status"], 200, "{d}");
    }
    // Redelivering one is acknowledged as a duplicate and changes nothing.
    let first = deliveries[0];
    let again = sim_post(
        &h,
        "webhooks/send",
        json!({ "topic": first["topic"], "webhook_id": first["webhook_id"], "payload": {"id": 1} }),
    )
    .await;
    assert_eq!(again["deliveries"][0]["status"], 200);
    let data = store(&h).await;
    metrics_match(&m, &expected(&data, tz)).await;
    assert_eq!(
        rows(
            &h,
            "SELECT count(*) AS n FROM webhook_events WHERE provider = 'shopify'"
        )
        .await,
        deliveries.len() as i64
    );
    let deleted_product = data["deleted_products"][0].as_i64().unwrap();
    let deleted_customer = data["deleted_customers"][0].as_i64().unwrap();
    let deleted_order = data["deleted_orders"][0].as_i64().unwrap();
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE shopify_id IN ({deleted_product}, {deleted_customer}, {deleted_order})")).await,
        0
    );
    assert_eq!(
        rows(&h, "SELECT count(*) AS n FROM shopify_objects WHERE kind = 'product' AND raw->>'title' LIKE '%(new)'").await,
        1
    );

    // A bad signature is refused and stores nothing.
    let res = reqwest::Client::new()
        .post(format!("{gateway}/webhooks/shopify"))
        .header("X-Shopify-Topic", "orders/create")
        .header("X-Shopify-Shop-Domain", SHOP)
        .header("X-Shopify-Webhook-Id", "forged-1")
        .header("X-Shopify-Hmac-Sha256", "bm90IGEgc2lnbmF0dXJl")
        .body(r#"{"id": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(
        rows(
            &h,
            "SELECT count(*) AS n FROM webhook_events WHERE external_id = 'forged-1'"
        )
        .await,
        0
    );

    // customers/data_request: an export of that customer's data for the merchant. The buyer is
    // one whose full name no other customer shares, so the dump below can look for it.
    let full_name = |c: &Value| format!("{} {}", c["first_name"], c["last_name"]);
    let customers = data["customers"].as_array().unwrap();
    let buyer = data["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["customer"]["id"].is_i64())
        .map(|o| &o["customer"])
        .find(|b| {
            customers
                .iter()
                .filter(|c| full_name(c) == full_name(b))
                .count()
                == 1
        })
        .expect("a buyer with a name of their own")["id"]
        .as_i64()
        .unwrap();
    let orders_of_buyer = data["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["customer"]["id"].as_i64() == Some(buyer))
        .count() as i64;
    sim_post(
        &h,
        "webhooks/send",
        json!({ "topic": "customers/data_request", "customer_id": buyer }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while rows(&h, "SELECT count(*) AS n FROM shopify_data_requests").await == 0 {
        assert!(Instant::now() < deadline, "no export made");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        rows(&h, &format!("SELECT jsonb_array_length(export->'orders')::bigint AS n FROM shopify_data_requests WHERE shopify_customer_id = {buyer}")).await,
        orders_of_buyer
    );

    // customers/redact: nothing of the customer's email, name, phone or address left anywhere in a
    // dump of the database (objects, exports, stored webhook payloads), and every metric
    // unchanged.
    let customer = data["customers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"].as_i64() == Some(buyer))
        .cloned()
        .unwrap();
    let traces = [
        customer["email"].as_str().unwrap().to_owned(),
        format!(
            "{} {}",
            customer["first_name"].as_str().unwrap(),
            customer["last_name"].as_str().unwrap()
        ),
        customer["phone"].as_str().unwrap().to_owned(),
        format!(
            "\"{}\"",
            customer["default_address"]["address1"].as_str().unwrap()
        ),
    ];
    let before = dump(&h);
    assert!(
        traces.iter().all(|t| before.contains(t.as_str())),
        "the dump holds the customer before"
    );
    sim_post(
        &h,
        "webhooks/send",
        json!({ "topic": "customers/redact", "customer_id": buyer }),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = found(&dump(&h), &traces);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the dump still holds {left:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE kind = 'order' AND customer_id = {buyer} AND redacted")).await,
        orders_of_buyer
    );
    metrics_match(&m, &expected(&data, tz)).await;

    // Shopify may still send an update of one of their orders: the order stays redacted, and
    // the event's stored payload is scrubbed once applied.
    let mut late = data["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["customer"]["id"].as_i64() == Some(buyer))
        .cloned()
        .unwrap();
    late["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    late["note"] = json!("please gift wrap");
    deliver_and_wait(&h, "orders/updated", late, "late-update-after-redact").await;
    let text = dump(&h);
    let left = found(&text, &traces);
    assert!(
        left.is_empty(),
        "after a late update the dump holds {left:?}"
    );
    assert!(
        !text.contains("please gift wrap"),
        "the late update's note was kept"
    );
    // Nor does a customers/update for them, or a full sync that reads them from the shop
    // again: the customer stays a bare id, their orders stay redacted.
    let mut update = customer.clone();
    update["updated_at"] = json!(chrono::Utc::now().to_rfc3339());
    deliver_and_wait(
        &h,
        "customers/update",
        update,
        "customer-update-after-redact",
    )
    .await;
    m.sync(&id, "full").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = wait_for_run(&m, &id, Duration::from_secs(60)).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let left = found(&dump(&h), &traces);
    assert!(left.is_empty(), "after a full sync the dump holds {left:?}");
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE kind = 'customer' AND shopify_id = {buyer} AND redacted AND raw = jsonb_build_object('id', {buyer})")).await,
        1
    );
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE kind = 'order' AND customer_id = {buyer} AND redacted")).await,
        orders_of_buyer
    );
    metrics_match(&m, &expected(&data, tz)).await;

    // app/uninstalled: disconnected, token gone, no more schedule.
    sim_post(&h, "webhooks/send", json!({ "topic": "app/uninstalled" })).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let i = integration(&m).await;
        if i["status"] == "disconnected" {
            break;
        }
        assert!(Instant::now() < deadline, "still {i}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM integrations WHERE id = '{id}' AND credentials IS NULL AND next_sync_at IS NULL")).await,
        1
    );

    // shop/redact (48 hours later at Shopify): everything from the shop is deleted and the
    // metrics no longer count it.
    sim_post(&h, "webhooks/send", json!({ "topic": "shop/redact" })).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let objects = rows(
            &h,
            &format!("SELECT count(*) AS n FROM shopify_objects WHERE integration_id = '{id}'"),
        )
        .await;
        let orders = api_series(&m, "shopify_orders").await;
        if objects == 0 && orders.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{objects} objects, {} order days left",
            orders.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_whose_webhooks_never_came_are_found_by_the_next_syncs() {
    let h = Harness::new(5).await;
    let gateway = h.gateway().await;
    let _w = h.worker("shopify-incremental", &[]);
    let m = install(&gateway).await;
    let id = integration(&m).await["id"].as_str().unwrap().to_owned();
    wait_for_run(&m, &id, Duration::from_secs(60)).await;
    let tz: Tz = TZ.parse().unwrap();
    sim_post(
        &h,
        "advance",
        json!({ "deliver": false, "orders": 3, "refunds": 2, "cancellations": 1, "product_deletes": 1 }),
    )
    .await;
    let data = store(&h).await;
    let before = h
        .sim_requests(&format!("/shopify/{SHOP}/admin/api/"))
        .await
        .len();

    // An incremental sync reads only what changed since the last walk began (less the
    // overlap): the new orders and the refunded and cancelled ones.
    m.sync(&id, "incremental").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = wait_for_run(&m, &id, Duration::from_secs(60)).await;
    assert_eq!(run["mode"], "incremental");
    let requests = h.sim_requests(&format!("/shopify/{SHOP}/admin/api/")).await;
    let new: Vec<&Value> = requests[before..].iter().collect();
    assert!(!new.is_empty());
    assert!(
        new.iter()
            .all(|r| r["query"].as_str().unwrap().contains("updated_at_min=")),
        "{new:?}"
    );
    let orders = run["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "orders")
        .unwrap()["stored"]
        .as_u64()
        .unwrap();
    assert!(
        (3..50).contains(&orders),
        "read {orders} orders, not only the changed ones"
    );
    metrics_match(&m, &expected(&data, tz)).await;

    // The merchant deletes an order (a cancelled or unpaid one), and no webhook comes either.
    sim_post(
        &h,
        "advance",
        json!({ "deliver": false, "order_deletes": 1 }),
    )
    .await;
    let data = store(&h).await;

    // The deleted product and order are still here: no webhook said so, and an incremental
    // walk cannot see absences. A full sync reconciles, and the metrics lose the order.
    let gone = [
        data["deleted_products"][0].as_i64().unwrap(),
        data["deleted_orders"][0].as_i64().unwrap(),
    ];
    let sql = format!(
        "SELECT count(*) AS n FROM shopify_objects WHERE shopify_id IN ({}, {})",
        gone[0], gone[1]
    );
    let present = || rows(&h, &sql);
    assert_eq!(present().await, 2);
    m.sync(&id, "full").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    wait_for_run(&m, &id, Duration::from_secs(60)).await;
    assert_eq!(present().await, 0);
    for (kind, list) in [
        ("product", "products"),
        ("order", "orders"),
        ("customer", "customers"),
    ] {
        assert_eq!(
            rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE integration_id = '{id}' AND kind = '{kind}'")).await,
            data[list].as_array().unwrap().len() as i64,
            "{kind}"
        );
    }
    metrics_match(&m, &expected(&data, tz)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_bucket_is_never_overflowed_and_a_429_is_only_a_correction() {
    let h = Harness::new(5).await;
    // A shop with many orders and a bucket of 4 calls leaking 4 a second, while our settings
    // still say 40: the shop's X-Shopify-Shop-Api-Call-Limit header has to correct us.
    h.sim_config(json!({
        "stripe": { "customers": 5 },
        "shopify": { "orders": 2500, "bucket_size": 4, "leak_per_second": 4.0 }
    }))
    .await;
    let gateway = h.gateway().await;
    let _w = h.worker("shopify-bucket", &[]);
    let m = install(&gateway).await;
    let id = integration(&m).await["id"].as_str().unwrap().to_owned();
    let run = wait_for_run(&m, &id, Duration::from_secs(90)).await;
    let data = store(&h).await;
    let orders = run["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "orders")
        .unwrap()["stored"]
        .as_u64()
        .unwrap();
    assert_eq!(orders, 2500);
    let requests = h.sim_requests(&format!("/shopify/{SHOP}/admin/api/")).await;
    let lists: Vec<&Value> = requests
        .iter()
        .filter(|r| !r["path"].as_str().unwrap().ends_with("webhooks.json"))
        .collect();
    assert!(lists.len() >= 10 + 1 + 3, "{}", lists.len());
    let refused = lists.iter().filter(|r| r["status"] == 429).count();
    assert_eq!(refused, 0, "the bucket overflowed {refused} times");

    // 429s injected into a full sync (as if another app had drained the bucket) are waited out
    // as the header says, and the run still ends with every object.
    h.sim_config(json!({
        "stripe": { "customers": 5 },
        "shopify": { "orders": 2500, "bucket_size": 4, "leak_per_second": 4.0 },
        "faults": { "rate": 0.5, "kinds": ["429"], "max": 3, "path_prefix": format!("/shopify/{SHOP}/admin/api/") }
    }))
    .await;
    m.sync(&id, "full").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = wait_for_run(&m, &id, Duration::from_secs(90)).await;
    assert_eq!(run["attempts"], 1, "a 429 must not fail the attempt: {run}");
    let after = h.sim_requests(&format!("/shopify/{SHOP}/admin/api/")).await;
    assert_eq!(after.iter().filter(|r| r["status"] == 429).count(), 3);
    let stored = rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE integration_id = '{id}' AND kind = 'order'")).await;
    assert_eq!(stored, data["orders"].as_array().unwrap().len() as i64);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_killed_midway_resumes_from_its_checkpoints_with_the_same_metrics() {
    let h = Harness::new(5).await;
    // 5,000 orders in 20 pages, slowly: a run of several seconds to kill in the middle of.
    h.sim_config(
        json!({ "stripe": { "customers": 5 }, "shopify": { "orders": 5000 }, "latency_ms": 250 }),
    )
    .await;
    let gateway = h.gateway().await;
    let mut first = h.worker("shopify-doomed", &[]);
    let m = install(&gateway).await;
    let id = integration(&m).await["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sql = format!("SELECT count(*) AS n FROM shopify_objects WHERE integration_id = '{id}' AND kind = 'order'");
        if rows(&h, &sql).await >= 1_000 {
            break;
        }
        assert!(Instant::now() < deadline, "the backfill did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    first.sigkill();
    let _second = h.worker("shopify-rescuer", &[]);
    let run = wait_for_run(&m, &id, Duration::from_secs(90)).await;
    assert_eq!(
        run["attempts"], 2,
        "claimed again once the lease lapsed: {run}"
    );
    let data = store(&h).await;
    assert_eq!(
        rows(&h, &format!("SELECT count(*) AS n FROM shopify_objects WHERE integration_id = '{id}' AND kind = 'order'")).await,
        5_000
    );
    // Resumed at the checkpoints: each resource refetched at most the two pages it had in hand
    // (the one being stored and the next, fetched meanwhile).
    let orders_pages = h
        .sim_requests(&format!("/shopify/{SHOP}/admin/api/"))
        .await
        .iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with("/orders.json"))
        .count();
    assert!(orders_pages <= 20 + 2, "{orders_pages} order pages for 20");
    metrics_match(&m, &expected(&data, TZ.parse().unwrap())).await;
}
