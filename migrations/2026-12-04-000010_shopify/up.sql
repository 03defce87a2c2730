-- Shopify's orders, products and customers as synced, one row per object, upserted by Shopify
-- id per integration; a write with an older `updated_at` than the row is ignored, so a late
-- webhook or an overlapping page never rolls an object back.
CREATE TABLE shopify_objects (
    organization_id  UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id   UUID NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('order', 'product', 'customer')),
    shopify_id       BIGINT NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- Orders: when the sale counts (`processed_at`), the buyer (NULL for guests), and the latest
    -- instant that moves a metric (the sale, a refund, the cancellation): rollups from a day on
    -- read only orders active since then.
    processed_at     TIMESTAMPTZ,
    customer_id      BIGINT,
    last_activity_at TIMESTAMPTZ,
    -- A `customers/redact` erased the personal fields of this object (amounts are kept).
    redacted         BOOLEAN NOT NULL DEFAULT false,
    raw              JSONB NOT NULL,
    synced_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, kind, shopify_id)
);
CREATE INDEX shopify_objects_activity_idx
    ON shopify_objects (organization_id, kind, last_activity_at);
CREATE INDEX shopify_objects_customer_idx
    ON shopify_objects (integration_id, customer_id) WHERE kind = 'order';

-- Exports produced for `customers/data_request`: what we hold about one customer of a shop, for
-- the merchant to hand over.
CREATE TABLE shopify_data_requests (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id      UUID NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    shopify_request_id  BIGINT,
    shopify_customer_id BIGINT NOT NULL,
    export              JSONB NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX shopify_data_requests_org_idx ON shopify_data_requests (organization_id, created_at DESC);

-- Sales per product and day (organisation's time zone), for "top products": the API sums a range
-- of days instead of reading orders. Money in the shop's currency, minor units.
CREATE TABLE commerce_product_daily (
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    source          TEXT NOT NULL,
    day             DATE NOT NULL,
    product_id      TEXT NOT NULL,
    currency        TEXT NOT NULL,
    title           TEXT NOT NULL,
    units_sold      BIGINT NOT NULL,
    units_returned  BIGINT NOT NULL,
    gross           NUMERIC NOT NULL,
    discounts       NUMERIC NOT NULL,
    returns         NUMERIC NOT NULL,
    PRIMARY KEY (organization_id, source, day, product_id, currency)
);
