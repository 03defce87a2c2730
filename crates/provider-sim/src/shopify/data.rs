//! A Shopify store generated from a seed and the shop's name: products with variants, customers,
//! and orders with line items, discounts, taxes, shipping, refunds (partial, full, shipping-only,
//! and with a failed transaction), cancellations, test orders, guest checkouts, repeat buyers,
//! orders imported with a `processed_at` before their `created_at`, and orders presented in
//! another currency than the shop's.
//!
//! The shop's currency, time zone offset and tax convention follow its name: `…-eu` shops sell
//! in EUR with VAT included (+01:00), `…-jp` shops in JPY (zero-decimal) with tax included
//! (+09:00), every other shop in USD with tax added (-05:00). Objects follow the REST Admin API
//! reference (orders, products, customers); money is written as decimal strings, with `*_set`
//! holding `shop_money` and `presentment_money`.

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use serde_json::{json, Value};

/// The data set's "now" (2026-01-01T00:00:00Z), shared with the Stripe account.
pub const NOW: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

const FIRST: [&str; 8] = [
    "Ada", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Goran", "Hana",
];
const LAST: [&str; 12] = [
    "Lovelace",
    "Okafor",
    "Müller",
    "Nakamura",
    "Silva",
    "Novak",
    "Haddad",
    "Kowalski",
    "Lindqvist",
    "Mensah",
    "Oyelaran",
    "Petrov",
];
const PRODUCTS: [&str; 12] = [
    "Linen Shirt",
    "Wool Socks",
    "Canvas Tote",
    "Rain Jacket",
    "Leather Belt",
    "Beanie",
    "Denim Jeans",
    "Silk Scarf",
    "Trail Shoes",
    "Sun Hat",
    "Gift Card",
    "Travel Mug",
];

/// How the shop prices and taxes.
#[derive(Debug, Clone)]
pub struct ShopProfile {
    pub currency: &'static str,
    /// Digits after the decimal point in `currency`.
    pub exponent: u32,
    pub offset: FixedOffset,
    pub taxes_included: bool,
    /// The single tax rate on every line, as a decimal string and in parts per million.
    pub tax_rate: (&'static str, i64),
}

impl ShopProfile {
    pub fn for_shop(shop: &str) -> Self {
        let name = shop.trim_end_matches(".myshopify.com");
        let hours = |h: i32| FixedOffset::east_opt(h * 3600).expect("offset");
        if name.ends_with("-eu") {
            ShopProfile {
                currency: "EUR",
                exponent: 2,
                offset: hours(1),
                taxes_included: true,
                tax_rate: ("0.2", 200_000),
            }
        } else if name.ends_with("-jp") {
            ShopProfile {
                currency: "JPY",
                exponent: 0,
                offset: hours(9),
                taxes_included: true,
                tax_rate: ("0.1", 100_000),
            }
        } else {
            ShopProfile {
                currency: "USD",
                exponent: 2,
                offset: hours(-5),
                taxes_included: false,
                tax_rate: ("0.08875", 88_750),
            }
        }
    }
}

/// One store's objects. Lists are in id order, as Shopify pages them.
#[derive(Debug, Clone, Default)]
pub struct Store {
    pub shop_id: i64,
    pub products: Vec<Value>,
    pub customers: Vec<Value>,
    pub orders: Vec<Value>,
    /// Ids of products, customers and orders deleted since the data set was made.
    pub deleted_products: Vec<i64>,
    pub deleted_customers: Vec<i64>,
    pub deleted_orders: Vec<i64>,
    /// Next id for objects made later (`/_sim/shopify/{shop}/advance`).
    pub next_id: i64,
    /// The store's clock for later changes (Unix seconds).
    pub clock: i64,
}

/// `minor` units of a currency with `exponent` decimals as Shopify's decimal string.
pub fn decimal(minor: i64, exponent: u32) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.abs();
    format!(
        "{sign}{}.{:0width$}",
        m / scale,
        m % scale,
        width = exponent as usize
    )
}

/// Shopify's `MoneyBag`: the amount in the shop's currency and in the buyer's.
pub fn money_set(shop_minor: i64, p: &ShopProfile, presentment: &Presentment) -> Value {
    json!({
        "shop_money": { "amount": decimal(shop_minor, p.exponent), "currency_code": p.currency },
        "presentment_money": {
            "amount": decimal(presentment.convert(shop_minor, p.exponent), presentment.exponent),
            "currency_code": presentment.currency
        }
    })
}

/// The currency the buyer saw, with the rate from the shop's currency (parts per 10,000).
#[derive(Debug, Clone)]
pub struct Presentment {
    pub currency: &'static str,
    pub exponent: u32,
    pub rate_bp: i64,
}

impl Presentment {
    pub fn convert(&self, shop_minor: i64, shop_exponent: u32) -> i64 {
        // Shop minor → presentment minor, rounded half up (display only; metrics use shop money).
        let num = shop_minor as i128 * self.rate_bp as i128 * 10i128.pow(self.exponent);
        let den = 10_000i128 * 10i128.pow(shop_exponent);
        ((num * 2 + den) / (den * 2)) as i64
    }
}

/// An instant as Shopify writes it: the shop's local time with its offset.
pub fn timestamp(at: i64, p: &ShopProfile) -> String {
    let utc: DateTime<Utc> = Utc.timestamp_opt(at, 0).single().unwrap_or_default();
    utc.with_timezone(&p.offset)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Parses a Shopify timestamp back to Unix seconds.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp())
}

fn shop_seed(seed: u64, shop: &str) -> u64 {
    // FNV-1a over the name: a stable seed per shop.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in shop.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed
}

/// Rounds `num / den` half to even (both positive denominators).
fn div_half_even(num: i128, den: i128) -> i64 {
    let q = num.div_euclid(den);
    let r = num.rem_euclid(den);
    let twice = 2 * r;
    let q = if twice > den || (twice == den && q % 2 != 0) {
        q + 1
    } else {
        q
    };
    q as i64
}

impl Store {
    pub fn generate(seed: u64, shop: &str, orders: usize) -> Store {
        let p = ShopProfile::for_shop(shop);
        let mut rng = fastrand::Rng::with_seed(shop_seed(seed, shop));
        let shop_id = 60_000_000_000 + rng.i64(0..1_000_000_000);
        let mut next_id: i64 = 7_000_000_000_000 + rng.i64(0..1_000_000) * 1000;
        // Gaps between ids, as Shopify's are not consecutive; derived from the id itself so the
        // closure needs no second borrow of the generator.
        let mut id = || {
            next_id += 1 + (next_id * 7919).rem_euclid(13);
            next_id
        };
        let start = NOW - 150 * DAY;
        let scale = |usd_cents: i64| match p.currency {
            "JPY" => usd_cents * 150 / 100,
            "EUR" => usd_cents * 92 / 100,
            _ => usd_cents,
        };
        // Products, each with one to three variants.
        let mut products = Vec::new();
        let mut variants: Vec<(i64, i64, String, i64, String)> = Vec::new(); // (product, variant, title, price, sku)
        for (i, name) in PRODUCTS.iter().enumerate() {
            let pid = id();
            let created = start - (40 - i as i64) * DAY;
            let base = scale(1_500 + rng.i64(0..60) * 100 + if i % 3 == 0 { 99 } else { 0 });
            let sizes: &[&str] = match rng.usize(0..3) {
                0 => &["One size"],
                1 => &["S", "M"],
                _ => &["S", "M", "L"],
            };
            let mut vs = Vec::new();
            for (k, size) in sizes.iter().enumerate() {
                let vid = id();
                let price = base + scale(k as i64 * 200);
                let sku = format!("SKU-{}-{}", i + 1, size);
                variants.push((pid, vid, format!("{name} - {size}"), price, sku.clone()));
                vs.push(json!({
                    "id": vid, "product_id": pid, "title": size, "price": decimal(price, p.exponent),
                    "sku": sku, "position": k + 1, "inventory_policy": "deny", "compare_at_price": null,
                    "option1": size, "option2": null, "option3": null, "taxable": true,
                    "created_at": timestamp(created, &p), "updated_at": timestamp(created + DAY, &p),
                    "inventory_quantity": rng.i64(0..200), "grams": 300, "requires_shipping": i != 10,
                    "admin_graphql_api_id": format!("gid://shopify/ProductVariant/{vid}")
                }));
            }
            products.push(json!({
                "id": pid, "title": name, "body_html": format!("<p>{name}</p>"), "vendor": "BizInsights Demo",
                "product_type": "Apparel", "handle": name.to_lowercase().replace(' ', "-"),
                "status": if i == 11 { "draft" } else { "active" }, "tags": "",
                "created_at": timestamp(created, &p), "updated_at": timestamp(created + DAY, &p),
                "published_at": timestamp(created, &p), "variants": vs,
                "options": [{ "name": "Size", "position": 1 }], "images": [],
                "admin_graphql_api_id": format!("gid://shopify/Product/{pid}")
            }));
        }
        // Customers.
        let n_customers = (orders / 4).max(10);
        let mut customers = Vec::new();
        for i in 0..n_customers {
            let cid = id();
            let created = start - 10 * DAY + i as i64 * (140 * DAY / n_customers as i64);
            // Every pair differs up to 96 customers, so a customer's full name is theirs alone
            // in small stores (the privacy test looks for it in a database dump).
            let (first, last) = (FIRST[i % FIRST.len()], LAST[(i / FIRST.len()) % LAST.len()]);
            let phone = format!("+1555{:07}", i);
            let address = json!({
                "first_name": first, "last_name": last, "name": format!("{first} {last}"),
                "address1": format!("{} Main St", i + 1), "city": "Springfield", "zip": "12345",
                "country_code": "US", "phone": phone, "default": true
            });
            let email = format!(
                "{}.{}{}@example.com",
                first.to_lowercase(),
                last.to_lowercase(),
                i
            );
            customers.push(json!({
                "id": cid, "email": email, "first_name": first, "last_name": last,
                "phone": phone, "state": "enabled", "verified_email": true,
                "accepts_marketing": i % 3 == 0, "tags": "", "note": null, "currency": p.currency,
                "orders_count": 0, "total_spent": decimal(0, p.exponent), "tax_exempt": false,
                "created_at": timestamp(created, &p), "updated_at": timestamp(created, &p),
                "addresses": [address.clone()], "default_address": address,
                "admin_graphql_api_id": format!("gid://shopify/Customer/{cid}")
            }));
        }
        // Orders, oldest first, over the 150 days before NOW.
        let mut list = Vec::new();
        for n in 0..orders {
            // Spread over the whole slot, so orders fall at every hour of the day and local days
            // differ from UTC days.
            let slot = (150 * DAY / orders as i64).max(1);
            let processed = start + n as i64 * slot + rng.i64(0..slot);
            // A few orders were imported later with their original date.
            let created = if n % 37 == 5 {
                processed + 2 * DAY + 3_600
            } else {
                processed
            };
            let buyer = if n % 7 == 3 {
                None // guest checkout
            } else {
                // Repeat buyers: a fifth of the customers place most orders.
                let k = if rng.u8(0..10) < 6 {
                    rng.usize(..n_customers / 5)
                } else {
                    rng.usize(..n_customers)
                };
                Some(customers[k].clone())
            };
            let presentment = if p.currency == "USD" && n % 5 == 2 {
                Presentment {
                    currency: "CAD",
                    exponent: 2,
                    rate_bp: 13_500,
                }
            } else {
                Presentment {
                    currency: p.currency,
                    exponent: p.exponent,
                    rate_bp: 10_000,
                }
            };
            let oid = id();
            let mut order = build_order(
                &p,
                &presentment,
                oid,
                1000 + n as i64,
                processed,
                created,
                buyer.as_ref(),
                &variants,
                &mut rng,
                &mut id,
            );
            order["test"] = json!(n % 50 == 17);
            // Afterwards: refunds, cancellations.
            let paid = order["financial_status"] == "paid";
            let roll = rng.u8(0..100);
            if paid && roll < 5 {
                let at = processed + DAY + rng.i64(0..2 * DAY);
                cancel(&mut order, &p, &presentment, at, true, &mut id);
            } else if order["financial_status"] == "pending" && roll < 30 {
                let at = processed + 3 * DAY;
                cancel(&mut order, &p, &presentment, at, false, &mut id);
            } else if paid && roll < 18 {
                let at = processed + DAY * rng.i64(1..20) + rng.i64(0..DAY);
                refund_units(
                    &mut order,
                    &p,
                    &presentment,
                    at,
                    roll.is_multiple_of(3),
                    &mut id,
                );
                if roll.is_multiple_of(4) {
                    // A second, later refund of the rest of one line where there is any.
                    refund_units(&mut order, &p, &presentment, at + 2 * DAY, false, &mut id);
                }
            } else if paid && roll < 20 {
                refund_shipping(&mut order, &p, &presentment, processed + 2 * DAY, &mut id);
            } else if paid && roll < 21 {
                // A refund whose transaction failed: nothing was given back.
                refund_units(
                    &mut order,
                    &p,
                    &presentment,
                    processed + 4 * DAY,
                    false,
                    &mut id,
                );
                if let Some(t) = order["refunds"][0]["transactions"][0].as_object_mut() {
                    t.insert("status".into(), json!("failure"));
                }
                order["financial_status"] = json!("paid");
            }
            list.push(order);
        }
        let last = list
            .iter()
            .filter_map(|o| parse_timestamp(o["updated_at"].as_str()?))
            .max()
            .unwrap_or(NOW);
        let next = next_id;
        Store {
            shop_id,
            products,
            customers,
            orders: list,
            deleted_products: vec![],
            deleted_customers: vec![],
            deleted_orders: vec![],
            next_id: next + 1000,
            clock: last.max(NOW - DAY),
        }
    }
}

/// Builds one paid (or pending) order with one to three lines, an optional discount code
/// spread over the lines, per-line tax and a shipping line.
#[allow(clippy::too_many_arguments)]
pub fn build_order(
    p: &ShopProfile,
    pm: &Presentment,
    oid: i64,
    number: i64,
    processed: i64,
    created: i64,
    buyer: Option<&Value>,
    variants: &[(i64, i64, String, i64, String)],
    rng: &mut fastrand::Rng,
    id: &mut impl FnMut() -> i64,
) -> Value {
    let n_lines = 1 + rng.usize(..3);
    let mut lines: Vec<(usize, i64)> = Vec::new();
    for _ in 0..n_lines {
        let v = rng.usize(..variants.len());
        if !lines.iter().any(|(x, _)| *x == v) {
            lines.push((v, 1 + rng.i64(0..3)));
        }
    }
    let gross_lines: Vec<i64> = lines.iter().map(|(v, q)| variants[*v].3 * q).collect();
    let subtotal_before: i64 = gross_lines.iter().sum();
    // A quarter of orders carry a code: 10 % off, or a fixed 5.00 (500 yen) off.
    let discount = match rng.u8(0..8) {
        0 => subtotal_before / 10,
        1 => 500.min(subtotal_before),
        _ => 0,
    };
    // Allocate the discount to lines in proportion, the remainder on the last line.
    let mut allocations = Vec::new();
    let mut left = discount;
    for (i, g) in gross_lines.iter().enumerate() {
        let share = if i + 1 == gross_lines.len() {
            left
        } else {
            discount * g / subtotal_before.max(1)
        };
        left -= share;
        allocations.push(share);
    }
    let (rate_str, rate_ppm) = p.tax_rate;
    let mut line_items = Vec::new();
    let mut total_tax = 0i64;
    for (i, (v, q)) in lines.iter().enumerate() {
        let (pid, vid, title, price, sku) = &variants[*v];
        let taxable_base = gross_lines[i] - allocations[i];
        let tax = if p.taxes_included {
            // The tax inside a tax-inclusive amount: base × R / (1 + R).
            div_half_even(
                taxable_base as i128 * rate_ppm as i128,
                1_000_000 + rate_ppm as i128,
            )
        } else {
            div_half_even(taxable_base as i128 * rate_ppm as i128, 1_000_000)
        };
        total_tax += tax;
        let lid = id();
        line_items.push(json!({
            "id": lid, "admin_graphql_api_id": format!("gid://shopify/LineItem/{lid}"),
            "product_id": pid, "variant_id": vid, "title": title.split(" - ").next().unwrap_or(title),
            "variant_title": title.split(" - ").nth(1), "name": title, "sku": sku, "quantity": q,
            "current_quantity": q, "fulfillable_quantity": q, "price": decimal(*price, p.exponent),
            "price_set": money_set(*price, p, pm), "taxable": true, "gift_card": false,
            "requires_shipping": true, "fulfillment_status": null,
            "total_discount": decimal(0, p.exponent), "total_discount_set": money_set(0, p, pm),
            "discount_allocations": if allocations[i] > 0 {
                json!([{ "amount": decimal(allocations[i], p.exponent), "amount_set": money_set(allocations[i], p, pm), "discount_application_index": 0 }])
            } else { json!([]) },
            "tax_lines": [{ "title": "Tax", "rate": rate_str.parse::<f64>().unwrap_or(0.0), "price": decimal(tax, p.exponent), "price_set": money_set(tax, p, pm), "channel_liable": false }],
            "duties": [], "properties": []
        }));
    }
    let shipping = if p.exponent == 0 { 800 } else { 599 };
    let subtotal = subtotal_before - discount;
    let total = subtotal + shipping + if p.taxes_included { 0 } else { total_tax };
    let pending = rng.u8(0..100) < 4;
    let customer = buyer.map(|c| json!({
        "id": c["id"], "email": c["email"], "first_name": c["first_name"], "last_name": c["last_name"],
        "phone": c["phone"], "state": "enabled", "currency": p.currency, "created_at": c["created_at"],
        "updated_at": c["updated_at"], "default_address": c["default_address"],
        "admin_graphql_api_id": c["admin_graphql_api_id"]
    }));
    let address = buyer.map(|c| c["default_address"].clone()).unwrap_or_else(|| json!({ "address1": "1 Guest Rd", "city": "Springfield", "zip": "12345", "country_code": "US" }));
    json!({
        "id": oid, "admin_graphql_api_id": format!("gid://shopify/Order/{oid}"),
        "name": format!("#{number}"), "order_number": number, "number": number - 1000,
        "email": buyer.map(|c| c["email"].clone()).unwrap_or(json!("guest@example.net")),
        "contact_email": buyer.map(|c| c["email"].clone()).unwrap_or(json!("guest@example.net")),
        "phone": null, "browser_ip": "203.0.113.7", "note": null, "tags": "",
        "created_at": timestamp(created, p), "updated_at": timestamp(created.max(processed), p),
        "processed_at": timestamp(processed, p), "closed_at": null, "cancelled_at": null, "cancel_reason": null,
        "test": false, "confirmed": true, "taxes_included": p.taxes_included, "estimated_taxes": false,
        "currency": p.currency, "presentment_currency": pm.currency,
        "financial_status": if pending { "pending" } else { "paid" },
        "fulfillment_status": if rng.bool() { json!("fulfilled") } else { Value::Null },
        "source_name": "web", "gateway": "shopify_payments", "payment_gateway_names": ["shopify_payments"],
        "subtotal_price": decimal(subtotal, p.exponent), "subtotal_price_set": money_set(subtotal, p, pm),
        "total_line_items_price": decimal(subtotal_before, p.exponent), "total_line_items_price_set": money_set(subtotal_before, p, pm),
        "total_discounts": decimal(discount, p.exponent), "total_discounts_set": money_set(discount, p, pm),
        "total_tax": decimal(total_tax, p.exponent), "total_tax_set": money_set(total_tax, p, pm),
        "total_shipping_price_set": money_set(shipping, p, pm),
        "total_price": decimal(total, p.exponent), "total_price_set": money_set(total, p, pm),
        "current_total_price": decimal(total, p.exponent), "current_total_price_set": money_set(total, p, pm),
        "total_outstanding": decimal(if pending { total } else { 0 }, p.exponent),
        "discount_codes": if discount > 0 { json!([{ "code": "WELCOME", "amount": decimal(discount, p.exponent), "type": "fixed_amount" }]) } else { json!([]) },
        "discount_applications": if discount > 0 { json!([{ "type": "discount_code", "code": "WELCOME", "value_type": "fixed_amount", "value": decimal(discount, p.exponent), "allocation_method": "across", "target_selection": "all", "target_type": "line_item" }]) } else { json!([]) },
        "line_items": line_items,
        "shipping_lines": [{ "id": id(), "title": "Standard", "code": "STANDARD", "price": decimal(shipping, p.exponent), "price_set": money_set(shipping, p, pm), "discounted_price": decimal(shipping, p.exponent), "discounted_price_set": money_set(shipping, p, pm), "tax_lines": [], "discount_allocations": [] }],
        "tax_lines": [{ "title": "Tax", "rate": rate_str.parse::<f64>().unwrap_or(0.0), "price": decimal(total_tax, p.exponent), "price_set": money_set(total_tax, p, pm) }],
        "customer": customer, "billing_address": address.clone(), "shipping_address": address,
        "refunds": [], "fulfillments": []
    })
}

fn amount(v: &Value, exponent: u32) -> i64 {
    // The simulator's own amounts: decimal strings it wrote itself.
    let s = v.as_str().unwrap_or("0");
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_owned();
    frac.truncate(exponent as usize);
    while frac.len() < exponent as usize {
        frac.push('0');
    }
    whole.parse::<i64>().unwrap_or(0) * 10i64.pow(exponent) + frac.parse::<i64>().unwrap_or(0)
}

/// Units of each line not yet refunded.
fn remaining(order: &Value) -> Vec<(usize, i64)> {
    let lines = order["line_items"].as_array().cloned().unwrap_or_default();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let refunded: i64 = order["refunds"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|r| {
                    r["refund_line_items"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter(|r| r["line_item_id"] == l["id"])
                .map(|r| r["quantity"].as_i64().unwrap_or(0))
                .sum();
            (i, l["quantity"].as_i64().unwrap_or(0) - refunded)
        })
        .collect()
}

/// A refund of `units` of line `i`, with its share of the line's discount and tax.
fn refund_line(
    order: &Value,
    p: &ShopProfile,
    pm: &Presentment,
    i: usize,
    units: i64,
    id: &mut impl FnMut() -> i64,
) -> (Value, i64, i64) {
    let line = &order["line_items"][i];
    let q = line["quantity"].as_i64().unwrap_or(1).max(1);
    let price = amount(&line["price_set"]["shop_money"]["amount"], p.exponent);
    let alloc: i64 = line["discount_allocations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| amount(&a["amount_set"]["shop_money"]["amount"], p.exponent))
        .sum();
    let tax = amount(
        &line["tax_lines"][0]["price_set"]["shop_money"]["amount"],
        p.exponent,
    );
    let subtotal = price * units - div_half_even(alloc as i128 * units as i128, q as i128);
    let total_tax = div_half_even(tax as i128 * units as i128, q as i128);
    let rid = id();
    (
        json!({
            "id": rid, "line_item_id": line["id"], "quantity": units, "restock_type": "return", "location_id": null,
            "subtotal": decimal(subtotal, p.exponent), "subtotal_set": money_set(subtotal, p, pm),
            "total_tax": decimal(total_tax, p.exponent), "total_tax_set": money_set(total_tax, p, pm),
            "line_item": line
        }),
        subtotal,
        total_tax,
    )
}

fn transaction(
    order: &Value,
    p: &ShopProfile,
    pm: &Presentment,
    at: i64,
    shop_minor: i64,
    id: &mut impl FnMut() -> i64,
) -> Value {
    let tid = id();
    // Transactions are in the currency the buyer paid in.
    json!({
        "id": tid, "order_id": order["id"], "kind": "refund", "gateway": "shopify_payments", "status": "success",
        "amount": decimal(pm.convert(shop_minor, p.exponent), pm.exponent), "currency": pm.currency,
        "created_at": timestamp(at, p), "processed_at": timestamp(at, p), "test": false, "parent_id": null,
        "admin_graphql_api_id": format!("gid://shopify/OrderTransaction/{tid}")
    })
}

fn push_refund(order: &mut Value, p: &ShopProfile, refund: Value, at: i64) {
    if let Some(list) = order["refunds"].as_array_mut() {
        list.push(refund);
    }
    order["updated_at"] = json!(timestamp(at, p));
}

/// Refunds one unit of one line that still has units (or all of it when `whole_line`).
pub fn refund_units(
    order: &mut Value,
    p: &ShopProfile,
    pm: &Presentment,
    at: i64,
    whole_line: bool,
    id: &mut impl FnMut() -> i64,
) {
    let Some((i, left)) = remaining(order).into_iter().find(|(_, left)| *left > 0) else {
        return;
    };
    let units = if whole_line { left } else { 1 };
    let (rli, subtotal, tax) = refund_line(order, p, pm, i, units, id);
    let given = subtotal + if p.taxes_included { 0 } else { tax };
    let rid = id();
    let refund = json!({
        "id": rid, "order_id": order["id"], "created_at": timestamp(at, p), "processed_at": timestamp(at, p),
        "note": "Returned", "restock": true, "user_id": null, "refund_line_items": [rli],
        "transactions": [transaction(order, p, pm, at, given, id)], "order_adjustments": [], "duties": [],
        "admin_graphql_api_id": format!("gid://shopify/Refund/{rid}")
    });
    push_refund(order, p, refund, at);
    let all_back = remaining(order).iter().all(|(_, left)| *left == 0);
    order["financial_status"] = json!(if all_back {
        "refunded"
    } else {
        "partially_refunded"
    });
}

/// Refunds the shipping only: money back, nothing returned.
pub fn refund_shipping(
    order: &mut Value,
    p: &ShopProfile,
    pm: &Presentment,
    at: i64,
    id: &mut impl FnMut() -> i64,
) {
    let shipping = amount(
        &order["total_shipping_price_set"]["shop_money"]["amount"],
        p.exponent,
    );
    let rid = id();
    let adjustment = json!({ "id": id(), "order_id": order["id"], "refund_id": rid, "kind": "shipping_refund",
        "reason": "Shipping refund", "amount": decimal(-shipping, p.exponent), "amount_set": money_set(-shipping, p, pm),
        "tax_amount": decimal(0, p.exponent), "tax_amount_set": money_set(0, p, pm) });
    let refund = json!({
        "id": rid, "order_id": order["id"], "created_at": timestamp(at, p), "processed_at": timestamp(at, p),
        "note": "Late delivery", "restock": false, "user_id": null, "refund_line_items": [],
        "transactions": [transaction(order, p, pm, at, shipping, id)], "order_adjustments": [adjustment], "duties": [],
        "admin_graphql_api_id": format!("gid://shopify/Refund/{rid}")
    });
    push_refund(order, p, refund, at);
    order["financial_status"] = json!("partially_refunded");
}

/// Cancels the order at `at`; a paid order is refunded in full (every line back, and shipping).
pub fn cancel(
    order: &mut Value,
    p: &ShopProfile,
    pm: &Presentment,
    at: i64,
    refund: bool,
    id: &mut impl FnMut() -> i64,
) {
    order["cancelled_at"] = json!(timestamp(at, p));
    order["cancel_reason"] = json!("customer");
    order["closed_at"] = json!(timestamp(at, p));
    order["updated_at"] = json!(timestamp(at, p));
    if !refund {
        order["financial_status"] = json!("voided");
        return;
    }
    let mut rlis = Vec::new();
    let mut given = amount(
        &order["total_shipping_price_set"]["shop_money"]["amount"],
        p.exponent,
    );
    for (i, left) in remaining(order) {
        if left > 0 {
            let (rli, subtotal, tax) = refund_line(order, p, pm, i, left, id);
            given += subtotal + if p.taxes_included { 0 } else { tax };
            rlis.push(rli);
        }
    }
    let rid = id();
    let refund = json!({
        "id": rid, "order_id": order["id"], "created_at": timestamp(at, p), "processed_at": timestamp(at, p),
        "note": "Order canceled", "restock": true, "user_id": null, "refund_line_items": rlis,
        "transactions": [transaction(order, p, pm, at, given, id)], "order_adjustments": [], "duties": [],
        "admin_graphql_api_id": format!("gid://shopify/Refund/{rid}")
    });
    push_refund(order, p, refund, at);
    order["financial_status"] = json!("refunded");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_as_shopify_writes_them() {
        assert_eq!(decimal(123_456, 2), "1234.56");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(-599, 2), "-5.99");
        assert_eq!(decimal(1200, 0), "1200");
    }

    #[test]
    fn a_store_is_the_same_for_the_same_seed_and_shop() {
        let a = Store::generate(7, "demo.myshopify.com", 120);
        let b = Store::generate(7, "demo.myshopify.com", 120);
        assert_eq!(a.orders, b.orders);
        assert_eq!(a.orders.len(), 120);
        let c = Store::generate(7, "other.myshopify.com", 120);
        assert_ne!(a.orders[0]["id"], c.orders[0]["id"]);
        // Ids ascend, as Shopify pages them.
        assert!(a
            .orders
            .windows(2)
            .all(|w| w[0]["id"].as_i64() < w[1]["id"].as_i64()));
    }

    #[test]
    fn the_data_set_has_every_case_the_metrics_must_handle() {
        let s = Store::generate(7, "demo.myshopify.com", 400);
        let has = |f: &dyn Fn(&Value) -> bool| s.orders.iter().any(f);
        assert!(has(&|o| o["test"] == true));
        assert!(has(&|o| o["customer"].is_null()));
        assert!(has(&|o| o["cancelled_at"].is_string()));
        assert!(has(&|o| o["presentment_currency"] != o["currency"]));
        assert!(has(&|o| o["refunds"]
            .as_array()
            .is_some_and(|r| r.len() > 1)));
        assert!(has(&|o| o["refunds"][0]["refund_line_items"]
            .as_array()
            .is_some_and(|r| r.is_empty())));
        assert!(has(
            &|o| o["refunds"][0]["transactions"][0]["status"] == "failure"
        ));
        assert!(has(&|o| o["created_at"] != o["processed_at"]));
        assert!(has(&|o| o["discount_codes"]
            .as_array()
            .is_some_and(|d| !d.is_empty())));
    }
}
