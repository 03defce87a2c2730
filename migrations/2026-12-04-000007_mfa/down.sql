ALTER TABLE organizations DROP COLUMN require_mfa;
DROP TABLE mfa_recovery_codes;
ALTER TABLE users DROP COLUMN totp_last_step;
ALTER TABLE users DROP COLUMN totp_enabled_at;
ALTER TABLE users DROP COLUMN totp_secret;
