//! Barrack's domain services: validation, rules, state machines and money. No HTTP here: handlers in
//! `barrack-server` parse requests, call a service and render what it returns.

pub mod accounts;
pub mod auth;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod countries;
pub mod error;
pub mod ids;
pub mod jobs;
pub mod ledger;
pub mod lifecycle;
pub mod money;
pub mod validate;

use std::sync::Arc;

pub use barrack_store::Store;
pub use error::{Error, Result};

use crate::accounts::AccountService;
use crate::auth::Secrets;
use crate::catalog::CatalogService;
use crate::clock::Clock;
use crate::config::Config;
use crate::ledger::LedgerService;

/// What every service shares.
pub struct Context {
    pub store: Store,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub secrets: Secrets,
}

/// The services of one server process.
#[derive(Clone)]
pub struct Services {
    pub context: Arc<Context>,
    pub accounts: AccountService,
    pub catalog: CatalogService,
    pub ledger: LedgerService,
}

impl Services {
    pub fn new(context: Context) -> Services {
        let context = Arc::new(context);
        Services {
            accounts: AccountService::new(context.clone()),
            catalog: CatalogService::new(context.clone()),
            ledger: LedgerService::new(context.clone()),
            context,
        }
    }

    pub fn store(&self) -> &Store {
        &self.context.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.context.clock
    }

    pub fn config(&self) -> &Config {
        &self.context.config
    }
}
