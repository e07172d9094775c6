//! Runs the built `barrack` binary against a real server booted in-process.

mod common;

mod account;
mod api_keys;
mod catalog;
mod configure;
mod coverage;
mod instances;
mod scripts;
mod ssh_keys;
mod volumes;
