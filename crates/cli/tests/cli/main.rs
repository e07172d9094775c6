//! Runs the built `barrack` binary against a real server booted in-process.

mod common;

mod account;
mod ai;
mod api_keys;
mod catalog;
mod configure;
mod coverage;
mod deposits;
mod firewalls;
mod instances;
mod login;
mod scripts;
mod simulation;
mod snapshots;
mod ssh_keys;
mod user_journey;
mod volumes;
mod webhooks;
