//! A Stripe account generated from a seed: customers, products and prices, coupons,
//! subscriptions with their items, invoices, charges, payment intents, refunds and the events of
//! the last 30 days, with the mix a real subscription business has (monthly, yearly, weekly,
//! quarterly and daily prices; quantities and seats; multi-item, metered and tiered
//! subscriptions; every coupon duration; trials; past_due, unpaid, canceled,
//! cancel_at_period_end, cancel_at, paused collection; four currencies, one zero-decimal;
//! failed charges; partial and full refunds).
//!
//! Objects follow Stripe's API reference for the pinned version (2024-06-20). Every list is kept
//! newest first, as Stripe lists them.

use serde_json::{json, Value};

use crate::config::StripeConfig;

/// 2026-01-01T00:00:00Z: "now" in the data set; the newest objects are just before it.
pub const NOW: i64 = 1_767_225_600;
const DAY: i64 = 86_400;

const FIRST_NAMES: [&str; 10] = [
    "Ada", "Ben", "Chloé", "Dmitri", "Eve", "Farah", "Goran", "Hana", "Iñigo", "Jun",
];
const LAST_NAMES: [&str; 8] = [
    "Lovelace", "Okafor", "Müller", "Nakamura", "Silva", "Novak", "Haddad", "Kowalski",
];

/// One Stripe account's objects.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub customers: Vec<Value>,
    pub products: Vec<Value>,
    pub prices: Vec<Value>,
    pub coupons: Vec<Value>,
    pub subscriptions: Vec<Value>,
    pub invoices: Vec<Value>,
    pub charges: Vec<Value>,
    pub payment_intents: Vec<Value>,
    pub refunds: Vec<Value>,
    pub events: Vec<Value>,
}

/// Ids: a prefix and 14 base62 characters from the generator.
pub fn id(prefix: &str, rng: &mut fastrand::Rng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let tail: String = (0..14)
        .map(|_| ALPHABET[rng.usize(..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}_{tail}")
}

/// A plan: what a subscription bills for, per period.
struct Plan {
    product: &'static str,
    interval: &'static str,
    interval_count: i64,
    /// In US cents; other currencies scale from it.
    usd: i64,
    kind: PlanKind,
}

#[derive(Clone, Copy, PartialEq)]
enum PlanKind {
    Flat,
    Seats,
    Metered,
    Tiered,
}

const PLANS: [Plan; 10] = [
    Plan {
        product: "Starter",
        interval: "month",
        interval_count: 1,
        usd: 1_900,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Starter",
        interval: "year",
        interval_count: 1,
        usd: 19_000,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Pro",
        interval: "month",
        interval_count: 1,
        usd: 4_900,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Pro",
        interval: "month",
        interval_count: 3,
        usd: 13_900,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Pro",
        interval: "week",
        interval_count: 1,
        usd: 1_500,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Pro",
        interval: "year",
        interval_count: 1,
        usd: 49_000,
        kind: PlanKind::Flat,
    },
    Plan {
        product: "Team seat",
        interval: "month",
        interval_count: 1,
        usd: 1_000,
        kind: PlanKind::Seats,
    },
    Plan {
        product: "API usage",
        interval: "month",
        interval_count: 1,
        usd: 5,
        kind: PlanKind::Metered,
    },
    Plan {
        product: "Enterprise",
        interval: "month",
        interval_count: 1,
        usd: 0,
        kind: PlanKind::Tiered,
    },
    Plan {
        product: "Daily pass",
        interval: "day",
        interval_count: 1,
        usd: 300,
        kind: PlanKind::Flat,
    },
];

const CURRENCIES: [&str; 4] = ["usd", "eur", "gbp", "jpy"];

/// A US-cent amount in another currency's minor unit (JPY has none: whole yen).
fn scale(usd_cents: i64, currency: &str) -> i64 {
    match currency {
        "eur" => usd_cents * 9 / 10,
        "gbp" => usd_cents * 8 / 10,
        "jpy" => usd_cents * 3 / 2,
        _ => usd_cents,
    }
}

fn period_seconds(interval: &str, count: i64) -> i64 {
    count
        * match interval {
            "day" => DAY,
            "week" => 7 * DAY,
            "month" => 30 * DAY,
            _ => 365 * DAY,
        }
}

impl Dataset {
    pub fn generate(seed: u64, config: &StripeConfig) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed ^ 0x5354_5249_5045);
        let mut d = Dataset::default();
        d.catalogue(&mut rng);
        let mut created = NOW;
        for i in 0..config.customers {
            created -= rng.i64(300..7_200);
            d.customer(&mut rng, i, created);
        }
        d.sort();
        d.events = d.initial_events(&mut rng);
        d
    }

    fn catalogue(&mut self, rng: &mut fastrand::Rng) {
        let created = NOW - 500 * DAY;
        let mut products = std::collections::BTreeMap::new();
        for plan in &PLANS {
            products.entry(plan.product).or_insert_with(|| {
                let p = json!({
                    "id": id("prod", rng), "object": "product", "active": true, "created": created,
                    "name": plan.product, "livemode": false, "metadata": {}, "type": "service",
                    "updated": created
                });
                self.products.push(p.clone());
                p
            });
        }
        for plan in &PLANS {
            for currency in CURRENCIES {
                let product = products[plan.product]["id"].clone();
                let amount = scale(plan.usd, currency);
                let (scheme, unit, tiers_mode, tiers) = match plan.kind {
                    PlanKind::Tiered => (
                        "tiered",
                        Value::Null,
                        json!("graduated"),
                        json!([
                            { "up_to": 10, "unit_amount": scale(2_000, currency), "unit_amount_decimal": scale(2_000, currency).to_string(), "flat_amount": null, "flat_amount_decimal": null },
                            { "up_to": null, "unit_amount": scale(1_500, currency), "unit_amount_decimal": scale(1_500, currency).to_string(), "flat_amount": scale(5_000, currency), "flat_amount_decimal": scale(5_000, currency).to_string() }
                        ]),
                    ),
                    _ => ("per_unit", json!(amount), Value::Null, Value::Null),
                };
                let usage = if plan.kind == PlanKind::Metered {
                    "metered"
                } else {
                    "licensed"
                };
                self.prices.push(json!({
                    "id": id("price", rng), "object": "price", "active": true,
                    "billing_scheme": scheme, "created": created, "currency": currency,
                    "livemode": false, "lookup_key": null, "metadata": {}, "nickname": null,
                    "product": product,
                    "recurring": {
                        "aggregate_usage": if usage == "metered" { json!("sum") } else { Value::Null },
                        "interval": plan.interval, "interval_count": plan.interval_count,
                        "trial_period_days": null, "usage_type": usage
                    },
                    "tax_behavior": "exclusive", "tiers_mode": tiers_mode, "tiers": tiers,
                    "transform_quantity": null, "type": "recurring",
                    "unit_amount": unit,
                    "unit_amount_decimal": if unit.is_null() { Value::Null } else { json!(amount.to_string()) }
                }));
            }
        }
        for (name, duration, percent, amount_off, months) in [
            ("25% off forever", "forever", Some(25.0), None, None),
            ("$5 off forever", "forever", None, Some(500), None),
            ("10% off once", "once", Some(10.0), None, None),
            (
                "Half price for 3 months",
                "repeating",
                Some(50.0),
                None,
                Some(3),
            ),
        ] {
            self.coupons.push(json!({
                "id": id("co", rng), "object": "coupon", "amount_off": amount_off,
                "created": created, "currency": if amount_off.is_some() { json!("usd") } else { Value::Null },
                "duration": duration, "duration_in_months": months, "livemode": false,
                "max_redemptions": null, "metadata": {}, "name": name, "percent_off": percent,
                "redeem_by": null, "times_redeemed": 0, "valid": true
            }));
        }
    }

    /// The price of `plan` in `currency`.
    fn price(&self, plan: usize, currency: &str) -> Value {
        self.prices
            [plan * CURRENCIES.len() + CURRENCIES.iter().position(|c| *c == currency).unwrap_or(0)]
        .clone()
    }

    fn customer(&mut self, rng: &mut fastrand::Rng, i: usize, created: i64) {
        let first = FIRST_NAMES[rng.usize(..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.usize(..LAST_NAMES.len())];
        let currency = match rng.u8(..10) {
            0..=5 => "usd",
            6 | 7 => "eur",
            8 => "gbp",
            _ => "jpy",
        };
        let customer_id = id("cus", rng);
        let subscriptions = match rng.u8(..20) {
            0..=2 => 0,
            3..=16 => 1,
            _ => 2,
        };
        let mut delinquent = false;
        // A subscriber's history starts up to 400 days back; their customer object is older.
        let first_start = NOW - rng.i64(2 * DAY..400 * DAY);
        for n in 0..subscriptions {
            let start = first_start + n as i64 * rng.i64(DAY..60 * DAY);
            if start >= NOW - DAY {
                continue;
            }
            delinquent |= self.subscription(rng, &customer_id, currency, start);
        }
        // Some customers pay once, outside any subscription.
        if rng.u8(..10) == 0 {
            let at = NOW - rng.i64(DAY..200 * DAY);
            let amount = scale(rng.i64(500..20_000), currency);
            self.payment(rng, &customer_id, currency, amount, at, None, true);
        }
        let customer_created = created.min(first_start - DAY);
        self.customers.push(json!({
            "id": customer_id, "object": "customer", "address": null, "balance": 0,
            "created": customer_created,
            "currency": if subscriptions == 0 && rng.bool() { Value::Null } else { json!(currency) },
            "default_source": null, "delinquent": delinquent, "description": null, "discount": null,
            "email": format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), i),
            "invoice_prefix": format!("{:08X}", rng.u32(..)),
            "invoice_settings": { "custom_fields": null, "default_payment_method": null, "footer": null, "rendering_options": null },
            "livemode": false, "metadata": {}, "name": format!("{first} {last}"), "phone": null,
            "preferred_locales": [], "shipping": null, "tax_exempt": "none", "test_clock": null
        }));
    }

    /// One subscription with its invoices and payments. True when it left the customer owing.
    fn subscription(
        &mut self,
        rng: &mut fastrand::Rng,
        customer: &str,
        currency: &str,
        start: i64,
    ) -> bool {
        let plan_index = match rng.u8(..20) {
            0..=6 => 0,
            7 => 1,
            8..=10 => 2,
            11 => 3,
            12 | 13 => 4,
            14 => 5,
            15 | 16 => 6,
            17 | 18 => 8,
            _ => 9,
        };
        let plan = &PLANS[plan_index];
        // Daily passes are recent; everything else may be old.
        let start = if plan.interval == "day" {
            start.max(NOW - 40 * DAY)
        } else {
            start
        };
        let status = match rng.u8(..100) {
            0..=61 => "active",
            62..=67 => "past_due",
            68..=70 => "unpaid",
            71..=82 => "canceled",
            83..=88 => "trialing",
            89 | 90 => "incomplete",
            91 | 92 => "incomplete_expired",
            93 | 94 => "paused",
            _ => "active",
        };
        let period = period_seconds(plan.interval, plan.interval_count);
        let had_trial = status == "trialing" || rng.u8(..5) == 0;
        let trial_end = if status == "trialing" {
            Some(NOW + rng.i64(DAY..14 * DAY))
        } else if had_trial {
            Some(start + 14 * DAY)
        } else {
            None
        };
        let start = if status == "trialing" {
            trial_end.unwrap() - 14 * DAY
        } else {
            start
        };
        let billing_start = trial_end.unwrap_or(start).min(NOW);

        // Items: the plan, plus a metered add-on or extra seats on some monthly plans.
        let mut items = vec![(
            plan_index,
            if plan.kind == PlanKind::Seats {
                rng.i64(2..21)
            } else if plan.kind == PlanKind::Tiered {
                rng.i64(3..30)
            } else {
                1
            },
        )];
        if plan.interval == "month" && plan.interval_count == 1 && plan.kind == PlanKind::Flat {
            match rng.u8(..10) {
                0 | 1 => items.push((7, 1)),
                2 => items.push((6, rng.i64(1..6))),
                _ => {}
            }
        }
        let sub_id = id("sub", rng);
        let item_objects: Vec<Value> = items
            .iter()
            .map(|(p, q)| {
                let price = self.price(*p, currency);
                let metered = price["recurring"]["usage_type"] == "metered";
                json!({
                    "id": id("si", rng), "object": "subscription_item", "created": start,
                    "metadata": {}, "price": price, "quantity": if metered { Value::Null } else { json!(q) },
                    "subscription": sub_id, "tax_rates": [], "discounts": []
                })
            })
            .collect();

        // A coupon on some subscriptions (the amount-off one only where it is in dollars).
        let coupon = match rng.u8(..100) {
            0..=14 => Some(0),
            15..=19 if currency == "usd" => Some(1),
            20..=27 => Some(2),
            28..=34 => Some(3),
            _ => None,
        };
        let discount = coupon.map(|c| {
            let coupon = self.coupons[c].clone();
            let end = match coupon["duration"].as_str() {
                Some("repeating") => json!(start + 3 * 30 * DAY),
                Some("once") => json!(start + period),
                _ => Value::Null,
            };
            json!({
                "id": format!("di_{}", &id("x", rng)[2..]), "object": "discount", "coupon": coupon,
                "customer": customer, "end": end, "start": start, "subscription": sub_id,
                "invoice": null, "invoice_item": null, "promotion_code": null, "checkout_session": null
            })
        });

        // When billing stopped, for the ones that stopped.
        let (mut canceled_at, mut ended_at, mut cancel_at, mut cancel_at_period_end) =
            (None, None, None, false);
        let mut pause = Value::Null;
        match status {
            "canceled" => {
                let at = billing_start + rng.i64(0..(NOW - billing_start).max(1));
                canceled_at = Some(at);
                ended_at = Some(at);
            }
            "incomplete_expired" => ended_at = Some(start + DAY),
            "active" => match rng.u8(..100) {
                0..=5 => {
                    cancel_at_period_end = true;
                    canceled_at = Some(NOW - rng.i64(DAY..10 * DAY));
                }
                6 | 7 => {
                    let at = NOW + rng.i64(5 * DAY..90 * DAY);
                    cancel_at = Some(at);
                    canceled_at = Some(NOW - rng.i64(DAY..5 * DAY));
                }
                8..=10 => pause = json!({ "behavior": "void", "resumes_at": null }),
                _ => {}
            },
            _ => {}
        }

        // Periods from the end of the trial up to now (or the end).
        let last_billable = ended_at.unwrap_or(NOW).min(NOW);
        let mut period_start = billing_start;
        let mut n = 0;
        let mut owing = false;
        while status != "trialing" && status != "incomplete_expired" && period_start < last_billable
        {
            let is_last = period_start + period >= NOW;
            let paid = !(is_last && matches!(status, "past_due" | "unpaid" | "incomplete"));
            let mut amount = 0i64;
            for (item, (p, q)) in item_objects.iter().zip(&items) {
                let price = &item["price"];
                amount += match PLANS[*p].kind {
                    PlanKind::Metered => scale(5, currency) * rng.i64(0..2_000),
                    PlanKind::Tiered => graduated(price, *q),
                    _ => price["unit_amount"].as_i64().unwrap_or(0) * q,
                };
            }
            if let Some(d) = &discount {
                let coupon = &d["coupon"];
                let applies = match coupon["duration"].as_str() {
                    Some("once") => n == 0,
                    Some("repeating") => period_start < start + 3 * 30 * DAY,
                    _ => true,
                };
                if applies {
                    if let Some(pct) = coupon["percent_off"].as_f64() {
                        amount -= (amount as f64 * pct / 100.0).round() as i64;
                    } else if let Some(off) = coupon["amount_off"].as_i64() {
                        amount = (amount - off).max(0);
                    }
                }
            }
            if pause.is_null() || !is_last {
                self.invoice(
                    rng,
                    customer,
                    &sub_id,
                    currency,
                    amount,
                    period_start,
                    period_start + period,
                    paid,
                );
            }
            owing |= !paid;
            period_start += period;
            n += 1;
        }
        let current_start = period_start - period;
        let current_start = if current_start < billing_start {
            billing_start
        } else {
            current_start
        };
        self.subscriptions.push(json!({
            "id": sub_id, "object": "subscription",
            "application": null, "billing_cycle_anchor": billing_start,
            "cancel_at": cancel_at, "cancel_at_period_end": cancel_at_period_end,
            "canceled_at": canceled_at,
            "cancellation_details": { "comment": null, "feedback": null, "reason": if canceled_at.is_some() { json!("cancellation_requested") } else { Value::Null } },
            "collection_method": "charge_automatically", "created": start, "currency": currency,
            "current_period_end": if status == "trialing" { json!(trial_end) } else { json!(current_start + period) },
            "current_period_start": if status == "trialing" { json!(start) } else { json!(current_start) },
            "customer": customer, "days_until_due": null, "default_payment_method": null,
            "description": null,
            "discount": discount.clone().unwrap_or(Value::Null),
            "discounts": discount.iter().map(|d| d["id"].clone()).collect::<Vec<_>>(),
            "ended_at": ended_at,
            "items": { "object": "list", "data": item_objects, "has_more": false, "total_count": items.len(), "url": format!("/v1/subscription_items?subscription={sub_id}") },
            "latest_invoice": null, "livemode": false, "metadata": {},
            "pause_collection": pause, "start_date": start, "status": status,
            "test_clock": null, "trial_end": trial_end,
            "trial_start": if trial_end.is_some() { json!(start) } else { Value::Null }
        }));
        owing
    }

    #[allow(clippy::too_many_arguments)]
    fn invoice(
        &mut self,
        rng: &mut fastrand::Rng,
        customer: &str,
        sub: &str,
        currency: &str,
        amount: i64,
        start: i64,
        end: i64,
        paid: bool,
    ) {
        let invoice_id = id("in", rng);
        let created = start;
        let charge = if amount > 0 {
            self.payment(
                rng,
                customer,
                currency,
                amount,
                created + 3_600,
                Some(&invoice_id),
                paid,
            )
        } else {
            None
        };
        self.invoices.push(json!({
            "id": invoice_id, "object": "invoice",
            "amount_due": amount, "amount_paid": if paid { amount } else { 0 },
            "amount_remaining": if paid { 0 } else { amount },
            "attempt_count": if paid { 1 } else { 3 }, "attempted": true,
            "billing_reason": "subscription_cycle", "charge": charge,
            "collection_method": "charge_automatically", "created": created, "currency": currency,
            "customer": customer, "livemode": false, "metadata": {},
            "paid": paid, "period_end": end, "period_start": start,
            "status": if paid { "paid" } else { "open" },
            "status_transitions": { "paid_at": if paid { json!(created + 3_600) } else { Value::Null }, "finalized_at": created, "voided_at": null, "marked_uncollectible_at": null },
            "subscription": sub, "subtotal": amount, "total": amount, "tax": null
        }));
    }

    /// A payment intent with its charge; refunds on some. Returns the charge id.
    #[allow(clippy::too_many_arguments)]
    fn payment(
        &mut self,
        rng: &mut fastrand::Rng,
        customer: &str,
        currency: &str,
        amount: i64,
        at: i64,
        invoice: Option<&str>,
        succeeds: bool,
    ) -> Option<String> {
        let pi = id("pi", rng);
        let ch = id("ch", rng);
        let mut refunded = 0;
        if succeeds {
            match rng.u8(..100) {
                0..=3 => refunded = (amount / 2).max(1),
                4..=6 => refunded = amount,
                _ => {}
            }
        }
        if refunded > 0 {
            let when = (at + rng.i64(DAY..20 * DAY)).min(NOW - 60);
            // A refund that failed first, on a few, does not count.
            if rng.u8(..10) == 0 {
                self.refunds.push(refund(
                    rng,
                    &ch,
                    &pi,
                    currency,
                    refunded,
                    when - 30,
                    "failed",
                ));
            }
            self.refunds
                .push(refund(rng, &ch, &pi, currency, refunded, when, "succeeded"));
        }
        let status = if succeeds { "succeeded" } else { "failed" };
        self.charges.push(json!({
            "id": ch, "object": "charge", "amount": amount, "amount_captured": if succeeds { amount } else { 0 },
            "amount_refunded": refunded, "balance_transaction": null, "captured": succeeds,
            "created": at, "currency": currency, "customer": customer, "description": null,
            "disputed": false, "failure_code": if succeeds { Value::Null } else { json!("card_declined") },
            "failure_message": if succeeds { Value::Null } else { json!("Your card was declined.") },
            "invoice": invoice, "livemode": false, "metadata": {},
            "outcome": { "network_status": if succeeds { "approved_by_network" } else { "declined_by_network" }, "type": if succeeds { "authorized" } else { "issuer_declined" } },
            "paid": succeeds, "payment_intent": pi, "refunded": refunded == amount && refunded > 0,
            "status": status
        }));
        self.payment_intents.push(json!({
            "id": pi, "object": "payment_intent", "amount": amount,
            "amount_received": if succeeds { amount } else { 0 }, "canceled_at": null,
            "cancellation_reason": null, "capture_method": "automatic", "created": at - 5,
            "currency": currency, "customer": customer, "description": null, "invoice": invoice,
            "last_payment_error": if succeeds { Value::Null } else { json!({ "code": "card_declined", "message": "Your card was declined.", "type": "card_error" }) },
            "latest_charge": ch, "livemode": false, "metadata": {},
            "status": if succeeds { "succeeded" } else { "requires_payment_method" }
        }));
        Some(ch)
    }

    /// The latest `created` in the account: changes made later happen after it.
    pub fn latest(&self) -> i64 {
        [
            &self.customers,
            &self.subscriptions,
            &self.invoices,
            &self.charges,
            &self.payment_intents,
            &self.refunds,
            &self.events,
        ]
        .iter()
        .flat_map(|list| list.iter().filter_map(|o| o["created"].as_i64()))
        .max()
        .unwrap_or(NOW)
        .max(NOW)
    }

    /// Every list newest first (`created` descending, then id), as Stripe serves them.
    fn sort(&mut self) {
        for list in [
            &mut self.customers,
            &mut self.products,
            &mut self.prices,
            &mut self.coupons,
            &mut self.subscriptions,
            &mut self.invoices,
            &mut self.charges,
            &mut self.payment_intents,
            &mut self.refunds,
        ] {
            list.sort_by(|a, b| {
                b["created"]
                    .as_i64()
                    .cmp(&a["created"].as_i64())
                    .then_with(|| b["id"].as_str().cmp(&a["id"].as_str()))
            });
        }
    }

    /// `*.created` events for what was created in the last 30 days (Stripe keeps 30 days).
    fn initial_events(&self, rng: &mut fastrand::Rng) -> Vec<Value> {
        let since = NOW - 30 * DAY;
        let mut events = Vec::new();
        for (kind, list) in [
            ("customer.created", &self.customers),
            ("customer.subscription.created", &self.subscriptions),
            ("invoice.created", &self.invoices),
            ("charge.succeeded", &self.charges),
            ("payment_intent.created", &self.payment_intents),
            ("refund.created", &self.refunds),
        ] {
            for object in list
                .iter()
                .filter(|o| o["created"].as_i64().unwrap_or(0) >= since)
            {
                let kind = if kind == "charge.succeeded" && object["status"] == "failed" {
                    "charge.failed"
                } else {
                    kind
                };
                events.push(event(
                    rng,
                    kind,
                    object,
                    object["created"].as_i64().unwrap_or(NOW),
                ));
            }
        }
        events.sort_by(|a, b| {
            b["created"]
                .as_i64()
                .cmp(&a["created"].as_i64())
                .then_with(|| b["id"].as_str().cmp(&a["id"].as_str()))
        });
        events
    }
}

fn refund(
    rng: &mut fastrand::Rng,
    charge: &str,
    pi: &str,
    currency: &str,
    amount: i64,
    at: i64,
    status: &str,
) -> Value {
    json!({
        "id": id("re", rng), "object": "refund", "amount": amount, "balance_transaction": null,
        "charge": charge, "created": at, "currency": currency, "metadata": {},
        "payment_intent": pi, "reason": "requested_by_customer", "receipt_number": null,
        "source_transfer_reversal": null, "status": status, "transfer_reversal": null
    })
}

/// A Stripe event wrapping a snapshot of `object`.
pub fn event(rng: &mut fastrand::Rng, kind: &str, object: &Value, created: i64) -> Value {
    json!({
        "id": id("evt", rng), "object": "event", "api_version": "2024-06-20",
        "created": created, "data": { "object": object }, "livemode": false,
        "pending_webhooks": 1, "request": { "id": null, "idempotency_key": null },
        "type": kind
    })
}

/// A graduated tiered price's amount for `quantity`.
fn graduated(price: &Value, quantity: i64) -> i64 {
    let mut total = 0;
    let mut below = 0;
    for tier in price["tiers"].as_array().into_iter().flatten() {
        if quantity <= below {
            break;
        }
        let top = tier["up_to"].as_i64().unwrap_or(i64::MAX).min(quantity);
        total += tier["unit_amount"].as_i64().unwrap_or(0) * (top - below)
            + tier["flat_amount"].as_i64().unwrap_or(0);
        below = top;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_has_every_case_the_metrics_must_handle() {
        let d = Dataset::generate(
            42,
            &StripeConfig {
                customers: 2_000,
                api_keys: vec![],
            },
        );
        let subs = &d.subscriptions;
        let count = |f: &dyn Fn(&Value) -> bool| subs.iter().filter(|s| f(s)).count();
        for status in [
            "active",
            "past_due",
            "unpaid",
            "canceled",
            "trialing",
            "incomplete",
            "incomplete_expired",
            "paused",
        ] {
            assert!(count(&|s| s["status"] == status) > 0, "{status}");
        }
        assert!(count(&|s| s["cancel_at_period_end"] == true) > 0);
        assert!(count(&|s| !s["cancel_at"].is_null()) > 0);
        assert!(count(&|s| !s["pause_collection"].is_null()) > 0);
        assert!(count(&|s| s["items"]["data"].as_array().unwrap().len() > 1) > 0);
        for duration in ["forever", "once", "repeating"] {
            assert!(
                count(&|s| s["discount"]["coupon"]["duration"] == duration) > 0,
                "{duration}"
            );
        }
        for (interval, n) in [
            ("month", 1),
            ("year", 1),
            ("week", 1),
            ("month", 3),
            ("day", 1),
        ] {
            assert!(
                count(
                    &|s| s["items"]["data"][0]["price"]["recurring"]["interval"] == interval
                        && s["items"]["data"][0]["price"]["recurring"]["interval_count"] == n
                ) > 0,
                "{interval}/{n}"
            );
        }
        assert!(
            count(&|s| s["items"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["price"]["recurring"]["usage_type"] == "metered"))
                > 0
        );
        assert!(count(&|s| s["items"]["data"][0]["price"]["billing_scheme"] == "tiered") > 0);
        for currency in CURRENCIES {
            assert!(count(&|s| s["currency"] == currency) > 0, "{currency}");
        }
        assert!(d.charges.iter().any(|c| c["status"] == "failed"));
        assert!(d.charges.iter().any(|c| c["refunded"] == true));
        assert!(d
            .charges
            .iter()
            .any(|c| c["amount_refunded"].as_i64().unwrap() > 0 && c["refunded"] == false));
        assert!(d.refunds.iter().any(|r| r["status"] == "failed"));
        assert!(!d.events.is_empty());
        assert!(d.customers.len() == 2_000);
    }

    #[test]
    fn lists_are_newest_first() {
        let d = Dataset::generate(1, &StripeConfig::default());
        for list in [
            &d.customers,
            &d.subscriptions,
            &d.invoices,
            &d.charges,
            &d.events,
        ] {
            assert!(list
                .windows(2)
                .all(|w| w[0]["created"].as_i64() >= w[1]["created"].as_i64()));
        }
    }
}
