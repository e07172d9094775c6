//! The Barrack HTTP server: routing, middleware, handlers, and the process that runs them.
//!
//! Handlers are thin: they parse a request, call a service of `barrack-core`, and render the envelope.

pub mod ai_upstream;
pub mod app;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod private_files;
pub mod routes;
pub mod webhook_sender;

pub use app::{AppState, Running, StartOptions, start};
