-- Metric rollups: one value per organisation, metric, day (in the organisation's time zone)
-- and dimension (a currency for money, a status for counts by status, '' otherwise). The API
-- reads these, never the raw provider objects.
CREATE TABLE metric_daily (
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    metric          TEXT NOT NULL,
    day             DATE NOT NULL,
    dimension       TEXT NOT NULL DEFAULT '',
    -- Money in minor units (exact), counts, or rates.
    value           NUMERIC NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, metric, day, dimension)
);

-- Which organisations' rollups are stale, and from which day: written in the same transaction
-- as the data that made them stale; a worker recomputes from that day on and clears it.
CREATE TABLE metric_dirty (
    organization_id UUID PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    dirty_from      DATE NOT NULL,
    marked_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
