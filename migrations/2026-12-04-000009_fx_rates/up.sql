-- Exchange rates: 1 `base` = `rate` `quote` on `day`. Global rows (organization_id NULL) come
-- from the operator's `gateway load-fx-rates`; an organisation's admins may load their own,
-- which win over the global ones for that organisation.
CREATE TABLE fx_rates (
    id              BIGSERIAL PRIMARY KEY,
    organization_id UUID REFERENCES organizations (id) ON DELETE CASCADE,
    day             DATE NOT NULL,
    base            TEXT NOT NULL CHECK (base ~ '^[A-Z]{3}$'),
    quote           TEXT NOT NULL CHECK (quote ~ '^[A-Z]{3}$'),
    rate            NUMERIC NOT NULL CHECK (rate > 0),
    loaded_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX fx_rates_key ON fx_rates
    (COALESCE(organization_id, '00000000-0000-0000-0000-000000000000'::uuid), base, quote, day);
