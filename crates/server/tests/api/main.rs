//! Integration tests: each boots the real server and talks HTTP to it, on SQLite and on PostgreSQL.

mod common;

mod accounts;
mod ai;
mod billing;
mod billing_commitments;
mod billing_depletion;
mod billing_partial_minutes;
mod billing_property;
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
mod ledger;
mod limits;
mod meter_crash;
mod openapi;
mod processes;
mod schema;
mod scripts;
mod security;
mod sessions;
mod snapshots;
mod ssh_keys;
mod volumes;
