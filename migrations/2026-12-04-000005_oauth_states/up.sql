-- One-time OAuth `state` values: bound to the organisation and user who started the flow,
-- stored as a SHA-256 (the state itself travels through the browser), valid for 10 minutes and
-- for one callback.
CREATE TABLE oauth_states (
    id              UUID PRIMARY KEY,
    state_hash      TEXT NOT NULL UNIQUE,
    provider        TEXT NOT NULL,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id         UUID REFERENCES users (id) ON DELETE CASCADE,
    -- Provider-specific context (the Shopify shop, …).
    context         JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ
);
CREATE INDEX oauth_states_org_idx ON oauth_states (organization_id);
