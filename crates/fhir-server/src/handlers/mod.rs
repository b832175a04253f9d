//! Request handlers, one module per group of interactions.

pub mod binary;
pub mod bundle;
pub mod crud;
pub mod document;
pub mod everything;
pub mod export;
pub mod expunge;
pub mod history;
pub mod idempotency;
pub mod import;
pub mod meta;
pub mod patch;
#[cfg(test)]
mod patch_fuzz;
pub mod search;
pub mod smart;
pub mod subscription_ops;
pub mod subscription_ws;
pub mod system;
pub mod terminology;
pub mod validate;
