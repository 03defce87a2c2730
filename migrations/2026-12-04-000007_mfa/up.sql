-- TOTP second factor (RFC 6238) and single-use recovery codes.
-- The secret is sealed with the credential envelope (context `users.totp_secret:{id}`); it is
-- set at setup and only counts once confirmed (`totp_enabled_at`).
ALTER TABLE users ADD COLUMN totp_secret TEXT;
ALTER TABLE users ADD COLUMN totp_enabled_at TIMESTAMPTZ;
-- The last time step whose code was accepted: a code is accepted once, and never an older one.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;

CREATE TABLE mfa_recovery_codes (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 hex of the normalised code; the code itself is shown once and never stored.
    code_hash  TEXT NOT NULL,
    used_at    TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, code_hash)
);

-- Owners may require every member to have MFA on before reaching the organisation's data.
ALTER TABLE organizations ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT false;
