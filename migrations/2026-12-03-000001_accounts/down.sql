DROP TABLE audit_log;
DROP FUNCTION audit_log_is_append_only();
DROP TABLE invitations;
DROP TABLE api_keys;
DROP TABLE sessions;
DROP TABLE memberships;
DROP TABLE users;
DROP TABLE organizations;
