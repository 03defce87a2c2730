//! Organisations, people and how they get in: one module per table.

pub mod api_keys;
pub mod invitations;
pub mod memberships;
pub mod mfa;
pub mod organizations;
pub mod password_resets;
pub mod role;
pub mod sessions;
pub mod users;

pub use role::Role;
