//! Reporting-currency totals: each day's amounts converted at that day's rate, summed, rounded
//! once; a missing rate is reported, never guessed.

use biz_core::db;
use diesel_async::RunQueryDsl;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{error_code, spawn_app, TestApp};

async fn daily(app: &TestApp, org: uuid::Uuid, rows: &[(&str, &str, &str, i64)]) {
    let mut conn = db::conn(&app.pool).await.unwrap();
    for (metric, day, currency, value) in rows {
        diesel::sql_query(format!(
            "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
             VALUES ('{org}', '{metric}', '{day}', '{currency}', {value})"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

async fn upload(app: &TestApp, org: uuid::Uuid, token: &str, csv: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/orgs/{org}/fx-rates")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn reporting_currency_totals_are_sums_of_each_days_conversion() {
    let app = spawn_app().await;
    let owner = app.signup("fx@example.com", "FX Co").await;
    let org = owner.org_id;
    daily(
        &app,
        org,
        &[
            ("stripe_revenue", "2025-12-01", "usd", 1_000),
            ("stripe_revenue", "2025-12-01", "eur", 1_000),
            ("stripe_revenue", "2025-12-02", "jpy", 5_000),
            ("stripe_revenue", "2025-12-02", "eur", 333),
            ("stripe_revenue", "2025-12-03", "eur", 10_000),
            ("stripe_mrr", "2025-12-02", "usd", 4_000),
            ("stripe_mrr", "2025-12-03", "usd", 5_000),
            ("stripe_mrr", "2025-12-03", "eur", 2_000),
        ],
    )
    .await;

    // A bad file is refused whole, with its line.
    let res = upload(
        &app,
        org,
        &owner.token,
        "date,base,quote,rate\n2025-12-01,EUR,USD,1.1\n2025-12-02,EUR,USD,abc\n",
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_fx_rates");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("line 3"));
    let csv = "date,base,quote,rate\n\
               2025-12-01,EUR,USD,1.1\n\
               2025-12-02,EUR,USD,1.2345\n\
               2025-12-02,USD,JPY,151.5\n\
               2025-12-03,EUR,USD,1.3\n";
    let res = upload(&app, org, &owner.token, csv).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["loaded"], 4);

    let get = |q: &'static str| {
        let app = &app;
        let token = owner.token.clone();
        async move {
            let res = app
                .get(&format!("/api/v1/orgs/{org}/metrics/{q}"), &token)
                .await;
            assert_eq!(res.status(), StatusCode::OK, "{q}");
            res.json::<Value>().await.unwrap()
        }
    };
    // Days converted one by one, in exact cents, summed, rounded once:
    //   1 Dec: $10.00 + €10.00 × 1.1 = 1000 + 1100
    //   2 Dec: ¥5,000 ÷ 151.5 (the USD→JPY rate, inverted) = $33.0033… = 3300.330033… cents,
    //          €3.33 × 1.2345 = 411.0885 cents
    //   3 Dec: €100.00 × 1.3 = 13000
    // 1000 + 1100 + 3300.330033… + 411.0885 + 13000 = 18811.418533… → 18811.
    let body = get(
        "stripe_revenue?from=2025-12-01&to=2025-12-31&granularity=month&in_reporting_currency=true",
    )
    .await;
    assert_eq!(body["series"][0]["currency"], "usd");
    assert_eq!(body["series"][0]["value"], 18_811);
    // Day by day, each day on its own rate.
    let body = get("stripe_revenue?from=2025-12-01&to=2025-12-03&in_reporting_currency=true").await;
    let days: Vec<i64> = body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_i64().unwrap())
        .collect();
    assert_eq!(days, [2_100, 3_711, 13_000]);
    assert!(body.get("missing_rates").is_none());
    // A stock converts its last day: $50.00 + €20.00 × 1.3.
    let body = get(
        "stripe_mrr?from=2025-12-01&to=2025-12-31&granularity=month&in_reporting_currency=true",
    )
    .await;
    assert_eq!(body["series"][0]["value"], 7_600);

    // A currency without a rate: the period says so instead of guessing.
    daily(&app, org, &[("stripe_revenue", "2025-12-04", "gbp", 500)]).await;
    let body = get(
        "stripe_revenue?from=2025-12-01&to=2025-12-31&granularity=month&in_reporting_currency=true",
    )
    .await;
    assert!(body["series"][0]["value"].is_null());
    assert_eq!(
        body["missing_rates"],
        serde_json::json!([{ "currency": "gbp", "date": "2025-12-04" }])
    );
    // Ratios cannot be converted.
    let res = app
        .get(
            &format!("/api/v1/orgs/{org}/metrics/stripe_customer_churn_rate?from=2025-12-01&to=2025-12-31&in_reporting_currency=true"),
            &owner.token,
        )
        .await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "not_convertible"
    );
}
