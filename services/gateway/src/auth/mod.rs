//! Who is calling, and what they may do in an organisation.
//!
//! A caller is a [`Principal`]: a person with a session (bearer token or the dashboard's cookie)
//! or an organisation API key. [`Principal::require`] turns an organisation id and a minimum role
//! into an [`Access`], answering 404 when the caller has no standing in that organisation (so its
//! existence is not revealed) and 403 when they do but their role is too low.

pub mod cookie;
pub mod csrf;
pub mod principal;

pub use principal::{Access, Principal};
