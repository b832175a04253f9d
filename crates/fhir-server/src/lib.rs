//! The FHIR server's HTTP layer: routing, content negotiation, conditional headers,
//! `Prefer`, errors as OperationOutcomes (all mapped in [`error`]), and start-up.
//!
//! A request goes: actix-web route ([`routes`]) → handler ([`handlers`]) → checks of
//! URL, headers and body (definitions from `fhir-model`) → blocking store call on the
//! blocking pool ([`state::AppState::blocking`]) → response built from the stored JSON
//! text ([`http::respond`]).

pub mod access;
pub mod audit;
pub mod auth;
pub mod bulk_import;
pub mod capability;
pub mod cli;
pub mod commands;
pub mod conditions;
pub mod config;
pub mod config_file;
pub mod console;
pub mod error;
pub mod export;
pub mod guard;
pub mod handlers;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod recorder;
pub mod routes;
pub mod serve;
pub mod state;
pub mod stored_terminology;
pub mod subscriptions;
pub mod telemetry;
pub mod tenancy;
pub mod tls;
pub mod validation;
