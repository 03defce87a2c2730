-- The job pipeline: integrations, their sync runs (PostgreSQL is the record of truth; the Redis
-- queue only carries pointers to these rows), scheduler ticks, and synced Stripe objects.

CREATE TABLE integrations (
    id                    UUID PRIMARY KEY,
    organization_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    provider              TEXT NOT NULL CHECK (provider IN
                              ('stripe', 'shopify', 'woocommerce', 'google_analytics', 'facebook_ads')),
    status                TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disconnected', 'error')),
    display_name          TEXT NOT NULL DEFAULT '',
    -- The provider's id for the connected account (Stripe acct_…, a shop's domain, …).
    external_account_id   TEXT,
    -- The credentials as one JSON object inside the crypto envelope (AAD: integration id).
    -- NULL once disconnected: disconnecting deletes them.
    credentials           TEXT,
    settings              JSONB NOT NULL DEFAULT '{}',
    -- Where incremental syncs continue from (for Stripe: the newest event applied).
    sync_state            JSONB NOT NULL DEFAULT '{}',
    -- Seconds between scheduled incremental syncs.
    sync_interval_seconds INTEGER NOT NULL DEFAULT 900 CHECK (sync_interval_seconds >= 1),
    next_sync_at          TIMESTAMPTZ,
    last_synced_at        TIMESTAMPTZ,
    created_by            UUID REFERENCES users (id) ON DELETE SET NULL,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX integrations_org_idx ON integrations (organization_id);
CREATE INDEX integrations_due_idx ON integrations (next_sync_at) WHERE status = 'active';

CREATE TABLE sync_runs (
    id               UUID PRIMARY KEY,
    organization_id  UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id   UUID NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    mode             TEXT NOT NULL CHECK (mode IN ('full', 'incremental')),
    trigger          TEXT NOT NULL CHECK (trigger IN ('manual', 'schedule', 'connect')),
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    -- {resource: {fetched, stored}}, written with every stored page.
    progress         JSONB NOT NULL DEFAULT '{}',
    -- Where a resumed run starts: written in the same transaction as the page it follows.
    checkpoint       JSONB NOT NULL DEFAULT '{}',
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    -- A queued run is not taken before this (backoff, Retry-After).
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When the run was last pushed to the queue; the sweeper re-pushes runs nobody took.
    enqueued_at      TIMESTAMPTZ,
    -- The worker holding a running run, and until when. A lapsed lease means the worker died.
    lease_owner      TEXT,
    lease_expires_at TIMESTAMPTZ,
    error_code       TEXT,
    error            TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One sync per integration at a time.
CREATE UNIQUE INDEX sync_runs_one_active_idx ON sync_runs (integration_id) WHERE status IN ('queued', 'running');
CREATE INDEX sync_runs_integration_idx ON sync_runs (integration_id, created_at DESC);
CREATE INDEX sync_runs_org_idx ON sync_runs (organization_id, created_at DESC);
CREATE INDEX sync_runs_active_idx ON sync_runs (next_attempt_at) WHERE status IN ('queued', 'running');

-- A periodic job's tick is claimed by inserting its slot; only the replica whose insert won
-- enqueues it. Not customer data.
CREATE TABLE scheduler_ticks (
    job        TEXT NOT NULL,
    slot       TIMESTAMPTZ NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job, slot)
);

-- Stripe objects as synced (customers, subscriptions, invoices, charges, payment intents,
-- refunds), one row per object, upserted by Stripe id per integration. `raw` is the object as
-- Stripe sent it; the typed columns are what metrics filter and sum on. `version` is when the
-- information was true (the fetch time of a list page, or an event's `created`): a write with
-- an older version is ignored, so an event delivered late cannot roll an object back.
CREATE TABLE stripe_objects (
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_id  UUID NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    object_type     TEXT NOT NULL,
    stripe_id       TEXT NOT NULL,
    customer        TEXT,
    status          TEXT,
    currency        TEXT,
    amount          BIGINT,
    created         TIMESTAMPTZ NOT NULL,
    deleted         BOOLEAN NOT NULL DEFAULT false,
    raw             JSONB NOT NULL,
    version         BIGINT NOT NULL,
    synced_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, object_type, stripe_id)
);
CREATE INDEX stripe_objects_org_type_created_idx ON stripe_objects (organization_id, object_type, created);
