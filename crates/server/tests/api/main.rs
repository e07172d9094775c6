//! Integration tests: each boots the real server and talks HTTP to it, on SQLite and on PostgreSQL.

mod common;

mod accounts;
mod address_pools;
mod ai;
mod billing;
mod billing_commitments;
mod billing_currency;
mod billing_depletion;
mod billing_partial_minutes;
mod billing_property;
mod billing_records;
mod binary;
mod browser;
mod catalog;
mod contract;
mod conventions;
mod dashboard;
mod deposits;
mod fidelity;
mod firewalls;
mod instances;
mod jobs;
mod key_revocation;
mod ledger;
#[cfg(feature = "libvirt")]
mod libvirt;
mod lifecycle;
mod limits;
mod machines;
mod meter_crash;
mod metrics;
mod openapi;
mod operator_commands;
mod processes;
mod provisioning;
mod schema;
mod scripts;
mod security;
mod sessions;
mod snapshots;
mod ssh_keys;
mod volumes;
