-- How this organisation's MRR treats discounts, scheduled cancellations and past-due
-- subscriptions (crates/core/src/metrics/mrr.rs `Convention`). `{}` is Stripe Billing's
-- convention; any field left out takes its default.
ALTER TABLE organizations ADD COLUMN mrr_convention JSONB NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(mrr_convention) = 'object');
