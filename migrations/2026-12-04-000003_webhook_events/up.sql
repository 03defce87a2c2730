-- Webhook events as received: stored (verified, unique per provider event id) before the
-- provider gets its 2xx, then applied by a worker. A stored event whose job was lost is queued
-- again by the sweeper, so nothing accepted is lost.
CREATE TABLE webhook_events (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id  UUID NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    provider        TEXT NOT NULL,
    -- The provider's id for the event (Stripe `evt_…`, Shopify's X-Shopify-Webhook-Id).
    external_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The body exactly as received.
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    enqueued_at     TIMESTAMPTZ,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    processed_at    TIMESTAMPTZ,
    error           TEXT,
    UNIQUE (integration_id, provider, external_id)
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (received_at) WHERE status = 'pending';
CREATE INDEX webhook_events_org_idx ON webhook_events (organization_id, received_at DESC);
