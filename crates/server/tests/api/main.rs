//! Integration tests: each boots the real server and talks HTTP to it, on SQLite and on PostgreSQL.

mod common;

mod accounts;
mod binary;
mod catalog;
mod conventions;
mod instances;
mod jobs;
mod ledger;
mod openapi;
mod processes;
mod schema;
mod scripts;
mod volumes;
