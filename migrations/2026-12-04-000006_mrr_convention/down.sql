ALTER TABLE organizations DROP COLUMN mrr_convention;
