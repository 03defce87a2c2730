//! `queue-bench dashboard`: reads from the rollups at scale. A generator loads one organisation
//! with 1,000,000 charges (the subscription business's orders) and 50,000 subscriptions over two
//! years into `stripe_objects`, and their daily rollups into `metric_daily` (flows aggregated
//! from those rows; stocks generated per day). Then, through the gateway binary: `…/dashboard`
//! for 30 days and a one-year daily `…/metrics/stripe_revenue`, 200 requests each (p50, p95);
//! and, in the same run, the raw aggregate the series replaces, run on the raw table.

use std::time::{Duration, Instant};

use diesel::sql_types::{Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::stack::{percentile_ms, Stack};

const CHARGES: u64 = 1_000_000;
const SUBSCRIPTIONS: u64 = 50_000;
const DAYS: i64 = 730;

pub async fn run() -> anyhow::Result<Value> {
    let stack = Stack::start(
        json!({}),
        &[
            ("BIZ__RATE_LIMIT__READ_PER_MINUTE", "100000"),
            ("BIZ__DATABASE__POOL_SIZE", "8"),
        ],
        false,
        "sk_test_51BenchDashboard000001",
    )
    .await?;
    let org = stack.org.clone();
    let integration = stack.connected["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let load = Instant::now();
    stack.psql(&format!(
        "INSERT INTO stripe_objects (organization_id, integration_id, object_type, stripe_id, customer, status, currency, amount, created, deleted, raw, version, synced_at)
         SELECT '{org}', '{integration}', 'charge', 'ch_bench' || g, 'cus_bench' || (g % {SUBSCRIPTIONS}),
                CASE WHEN g % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
                (ARRAY['usd','eur','gbp'])[1 + g % 3], 500 + (g * 7919) % 20000,
                date_trunc('day', now()) - ((g % {DAYS}) || ' days')::interval + ((g * 37) % 86400 || ' seconds')::interval,
                false,
                jsonb_build_object('id', 'ch_bench' || g, 'object', 'charge', 'amount', 500 + (g * 7919) % 20000,
                                   'amount_refunded', 0, 'currency', (ARRAY['usd','eur','gbp'])[1 + g % 3],
                                   'customer', 'cus_bench' || (g % {SUBSCRIPTIONS})),
                0, now()
           FROM generate_series(1::bigint, {CHARGES}) g"
    ))?;
    stack.psql(&format!(
        "INSERT INTO stripe_objects (organization_id, integration_id, object_type, stripe_id, customer, status, currency, amount, created, deleted, raw, version, synced_at)
         SELECT '{org}', '{integration}', 'subscription', 'sub_bench' || g, 'cus_bench' || g, 'active',
                (ARRAY['usd','eur','gbp'])[1 + g % 3], NULL,
                date_trunc('day', now()) - ((g % {DAYS}) || ' days')::interval, false,
                jsonb_build_object('id', 'sub_bench' || g, 'object', 'subscription', 'status', 'active',
                                   'customer', 'cus_bench' || g, 'currency', (ARRAY['usd','eur','gbp'])[1 + g % 3]),
                0, now()
           FROM generate_series(1::bigint, {SUBSCRIPTIONS}) g"
    ))?;
    // Flows, as the workers' rollup aggregates them; stocks, one row per day and currency.
    stack.psql(&format!(
        "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
         SELECT '{org}', m, day, currency, v FROM (
           SELECT 'stripe_revenue' AS m, (created AT TIME ZONE 'UTC')::date AS day, currency, sum(amount)::numeric AS v
             FROM stripe_objects WHERE organization_id = '{org}' AND object_type = 'charge' AND status = 'succeeded'
            GROUP BY 2, 3
           UNION ALL
           SELECT 'stripe_refunds_total', (created AT TIME ZONE 'UTC')::date, currency, (sum(amount) / 50)::numeric
             FROM stripe_objects WHERE organization_id = '{org}' AND object_type = 'charge' AND status = 'succeeded'
            GROUP BY 2, 3) f"
    ))?;
    stack.psql(&format!(
        "INSERT INTO metric_daily (organization_id, metric, day, dimension, value)
         SELECT '{org}'::uuid, m.metric, d::date, c.cur, (m.base + (d::date - (current_date - {DAYS})) * m.step)::numeric
           FROM generate_series(current_date - {DAYS}, current_date, interval '1 day') d,
                (VALUES ('usd'), ('eur'), ('gbp')) c(cur),
                (VALUES ('stripe_mrr', 1000000, 100), ('stripe_arr', 12000000, 1200)) m(metric, base, step)
         UNION ALL
         SELECT '{org}'::uuid, m.metric, d::date, '', (m.base + (d::date - (current_date - {DAYS})) * m.step)::numeric
           FROM generate_series(current_date - {DAYS}, current_date, interval '1 day') d,
                (VALUES ('stripe_subscriptions_active', 30000, 27), ('stripe_paying_customers', 29000, 26),
                        ('stripe_customers_churned', 12, 0)) m(metric, base, step)"
    ))?;
    let load_seconds = load.elapsed().as_secs_f64();
    let rows: i64 = stack
        .psql(&format!(
            "SELECT count(*) FROM stripe_objects WHERE organization_id = '{org}'"
        ))?
        .parse()?;
    let rollups: i64 = stack
        .psql(&format!(
            "SELECT count(*) FROM metric_daily WHERE organization_id = '{org}'"
        ))?
        .parse()?;
    stack.psql("ANALYZE stripe_objects; ANALYZE metric_daily")?;

    let today = chrono::Utc::now().date_naive();
    let month_ago = today - chrono::Duration::days(29);
    let year_ago = today - chrono::Duration::days(364);
    let base = format!("{}/api/v1/orgs/{org}", stack.url);
    let timed = |url: String| {
        let http = stack.http.clone();
        let token = stack.token.clone();
        async move {
            let mut took = Vec::with_capacity(200);
            for _ in 0..200 {
                let start = Instant::now();
                let res = http.get(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(res.status().is_success(), "{url}: {}", res.status());
                res.bytes().await?;
                took.push(start.elapsed().as_micros() as u64);
            }
            took.sort_unstable();
            Ok::<Vec<u64>, anyhow::Error>(took)
        }
    };
    let dashboard = timed(format!(
        "{base}/dashboard?from={month_ago}&to={today}&currency=usd"
    ))
    .await?;
    let series = timed(format!(
        "{base}/metrics/stripe_revenue?from={year_ago}&to={today}"
    ))
    .await?;

    // The raw aggregate the series stands for, on the raw rows, in this process.
    let mut conn = AsyncPgConnection::establish(&stack.db_url).await?;
    let since = chrono::Utc::now() - chrono::Duration::days(364);
    let mut raw = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        diesel::sql_query(
            "SELECT (created AT TIME ZONE 'UTC')::date AS day, currency, sum(amount) AS total
               FROM stripe_objects
              WHERE organization_id = $1::uuid AND object_type = 'charge' AND status = 'succeeded'
                AND created >= $2
              GROUP BY 1, 2",
        )
        .bind::<Text, _>(&org)
        .bind::<Timestamptz, _>(since)
        .execute(&mut conn)
        .await?;
        raw.push(start.elapsed().as_micros() as u64);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    raw.sort_unstable();
    let (series_p50, raw_p50) = (percentile_ms(&series, 0.5), percentile_ms(&raw, 0.5));
    Ok(json!({
        "raw_rows": rows,
        "rollup_rows": rollups,
        "load_seconds": (load_seconds * 10.0).round() / 10.0,
        "dashboard": { "requests": 200, "p50_ms": percentile_ms(&dashboard, 0.5), "p95_ms": percentile_ms(&dashboard, 0.95) },
        "series_one_year_daily": { "requests": 200, "p50_ms": series_p50, "p95_ms": percentile_ms(&series, 0.95) },
        "raw_aggregate": { "runs": 20, "p50_ms": raw_p50 },
        "series_to_raw_ratio": ((series_p50 / raw_p50) * 1000.0).round() / 1000.0,
        "targets": { "p95_ms": 30, "ratio": 0.1 },
    }))
}
