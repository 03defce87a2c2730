//! `queue-bench dashboard`: reads from the rollups at scale. A generator loads one organisation
//! with two years of data: 1,000,000 Shopify orders in `shopify_objects` (in the Admin API's
//! REST format), whose rollups are built by the workers' own code
//! (`biz_core::metrics::commerce::recompute`, timed); and 1,000,000 Stripe charges and 50,000
//! subscriptions in `stripe_objects`, with their daily rollups generated in SQL (flows
//! aggregated from the rows, stocks per day). Then, through the gateway binary, 200 requests
//! each (p50, p95): `…/dashboard` for 30 days (the cards of both sources) and one-year daily
//! series of `shopify_revenue_net` and `stripe_revenue`; and, in the same run, the raw aggregates
//! those series replace, run on the raw tables.

use std::time::{Duration, Instant};

use diesel::sql_types::{Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{json, Value};

use crate::stack::{percentile_ms, Stack};

const CHARGES: u64 = 1_000_000;
const ORDERS: u64 = 1_000_000;
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
    // Shopify: a connected shop and its orders, one to three units of one of 50 products, a
    // tenth with a discount, every 25th partly refunded a few days later, 250,000 buyers.
    stack.psql(&format!(
        "INSERT INTO integrations (id, organization_id, provider, status, display_name, external_account_id, settings, sync_state, sync_interval_seconds)
         VALUES (gen_random_uuid(), '{org}', 'shopify', 'active', 'bench-shop', 'bench-shop.myshopify.com', '{{}}', '{{}}', 3600)"
    ))?;
    let shop = stack.psql(&format!(
        "SELECT id FROM integrations WHERE organization_id = '{org}' AND provider = 'shopify'"
    ))?;
    stack.psql(&format!(
        "SET TIME ZONE 'UTC';
         INSERT INTO shopify_objects (organization_id, integration_id, kind, shopify_id, updated_at, processed_at, customer_id, last_activity_at, raw)
         SELECT '{org}', '{shop}', 'order', o.id, o.at + interval '5 days', o.at, o.buyer, o.at + interval '5 days',
                jsonb_build_object(
                  'id', o.id, 'test', false, 'currency', 'USD', 'taxes_included', false,
                  'processed_at', o.at, 'created_at', o.at, 'updated_at', o.at + interval '5 days',
                  'financial_status', CASE WHEN o.refunded THEN 'partially_refunded' ELSE 'paid' END,
                  'cancelled_at', NULL, 'customer', jsonb_build_object('id', o.buyer),
                  'total_price_set', jsonb_build_object('shop_money', jsonb_build_object('amount', to_char(o.units * o.price / 100.0, 'FM999990.00'), 'currency_code', 'USD')),
                  'line_items', jsonb_build_array(jsonb_build_object(
                    'id', o.id * 10, 'product_id', 8000 + o.product, 'title', 'Product ' || o.product,
                    'quantity', o.units,
                    'price_set', jsonb_build_object('shop_money', jsonb_build_object('amount', to_char(o.price / 100.0, 'FM999990.00'), 'currency_code', 'USD')),
                    'discount_allocations', CASE WHEN o.discount > 0 THEN jsonb_build_array(jsonb_build_object('amount_set', jsonb_build_object('shop_money', jsonb_build_object('amount', to_char(o.discount / 100.0, 'FM999990.00'), 'currency_code', 'USD')))) ELSE '[]'::jsonb END,
                    'tax_lines', '[]'::jsonb)),
                  'refunds', CASE WHEN o.refunded THEN jsonb_build_array(jsonb_build_object(
                    'id', o.id * 10 + 1, 'processed_at', o.at + interval '3 days',
                    'refund_line_items', jsonb_build_array(jsonb_build_object(
                      'line_item_id', o.id * 10, 'quantity', 1,
                      'subtotal_set', jsonb_build_object('shop_money', jsonb_build_object('amount', to_char(o.price / 100.0, 'FM999990.00'), 'currency_code', 'USD')),
                      'total_tax_set', jsonb_build_object('shop_money', jsonb_build_object('amount', '0.00', 'currency_code', 'USD')))),
                    'transactions', jsonb_build_array(jsonb_build_object(
                      'kind', 'refund', 'status', 'success', 'processed_at', o.at + interval '3 days',
                      'amount', to_char(o.price / 100.0, 'FM999990.00'), 'currency', 'USD'))))
                  ELSE '[]'::jsonb END)
           FROM (SELECT 9000000000 + g AS id,
                        date_trunc('day', now()) - ((g % {DAYS}) || ' days')::interval + ((g * 37) % 86400 || ' seconds')::interval AS at,
                        50000 + (g * 7) % 250000 AS buyer, g % 50 AS product, 1 + g % 3 AS units,
                        1500 + (g * 7919) % 8000 AS price,
                        CASE WHEN g % 10 = 0 THEN 300 ELSE 0 END AS discount,
                        g % 25 = 0 AS refunded
                   FROM generate_series(1::bigint, {ORDERS}) g) o"
    ))?;
    stack.psql("ANALYZE shopify_objects")?;
    let orders_loaded = load.elapsed().as_secs_f64();
    let rollup_started = Instant::now();
    let shopify_rollups = {
        let mut conn = AsyncPgConnection::establish(&stack.db_url).await?;
        let from = chrono::Utc::now().date_naive() - chrono::Duration::days(DAYS + 2);
        let start =
            from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - chrono::Duration::days(1);
        biz_core::metrics::commerce::recompute(
            &mut conn,
            org.parse::<uuid::Uuid>()?,
            from,
            start,
            chrono_tz::Tz::UTC,
        )
        .await?
    };
    let rollup_seconds = rollup_started.elapsed().as_secs_f64();
    let stripe_load = Instant::now();
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
    let stripe_seconds = stripe_load.elapsed().as_secs_f64();
    let rows: i64 = stack
        .psql(&format!(
            "SELECT (SELECT count(*) FROM stripe_objects WHERE organization_id = '{org}')
                  + (SELECT count(*) FROM shopify_objects WHERE organization_id = '{org}')"
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
    let shopify_series = timed(format!(
        "{base}/metrics/shopify_revenue_net?from={year_ago}&to={today}"
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
    // The Shopify series' raw equivalent: gross − discounts of the year's orders per day, read
    // from the stored JSON (less than the series holds: no returns, no time zone).
    let mut shopify_raw = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        diesel::sql_query(
            "SELECT (processed_at AT TIME ZONE 'UTC')::date AS day,
                    sum((li->>'quantity')::bigint * (li->'price_set'->'shop_money'->>'amount')::numeric
                        - COALESCE((SELECT sum((d->'amount_set'->'shop_money'->>'amount')::numeric)
                                      FROM jsonb_array_elements(li->'discount_allocations') d), 0)) AS net
               FROM shopify_objects, jsonb_array_elements(raw->'line_items') li
              WHERE organization_id = $1::uuid AND kind = 'order' AND processed_at >= $2
              GROUP BY 1",
        )
        .bind::<Text, _>(&org)
        .bind::<Timestamptz, _>(since)
        .execute(&mut conn)
        .await?;
        shopify_raw.push(start.elapsed().as_micros() as u64);
    }
    shopify_raw.sort_unstable();
    let (series_p50, raw_p50) = (percentile_ms(&series, 0.5), percentile_ms(&raw, 0.5));
    let (shopify_p50, shopify_raw_p50) = (
        percentile_ms(&shopify_series, 0.5),
        percentile_ms(&shopify_raw, 0.5),
    );
    Ok(json!({
        "raw_rows": rows,
        "rollup_rows": rollups,
        "shopify_orders": ORDERS,
        "shopify_orders_load_seconds": (orders_loaded * 10.0).round() / 10.0,
        "shopify_rollup_rows": shopify_rollups,
        "shopify_rollup_build_seconds": (rollup_seconds * 10.0).round() / 10.0,
        "stripe_load_seconds": (stripe_seconds * 10.0).round() / 10.0,
        "dashboard": { "requests": 200, "p50_ms": percentile_ms(&dashboard, 0.5), "p95_ms": percentile_ms(&dashboard, 0.95) },
        "series_one_year_daily": { "requests": 200, "p50_ms": series_p50, "p95_ms": percentile_ms(&series, 0.95) },
        "raw_aggregate": { "runs": 20, "p50_ms": raw_p50 },
        "series_to_raw_ratio": ((series_p50 / raw_p50) * 1000.0).round() / 1000.0,
        "shopify_series_one_year_daily": { "requests": 200, "p50_ms": shopify_p50, "p95_ms": percentile_ms(&shopify_series, 0.95) },
        "shopify_raw_aggregate": { "runs": 5, "p50_ms": shopify_raw_p50 },
        "shopify_series_to_raw_ratio": ((shopify_p50 / shopify_raw_p50) * 10000.0).round() / 10000.0,
        "targets": { "p95_ms": 30, "ratio": 0.1 },
    }))
}
