//! Request handlers, one module per group of interactions.

pub mod bundle;
pub mod crud;
pub mod everything;
pub mod export;
pub mod history;
pub mod search;
pub mod system;
