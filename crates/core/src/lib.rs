//! Barrack's domain services: validation, rules, state machines and money. No HTTP here: handlers in
//! `barrack-server` parse requests, call a service and render what it returns.

pub mod accounts;
pub mod auth;
pub mod balance_guard;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod countries;
pub mod error;
pub mod ids;
pub mod instance_worker;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod lifecycle;
pub mod money;
pub mod network;
pub mod scripts;
pub mod ssh_key;
pub mod ssh_keys;
pub mod validate;
pub mod volume_worker;
pub mod volumes;

use std::sync::Arc;

pub use barrack_store::Store;
pub use error::{Error, Result};

use barrack_compute::ComputeDriver;
use tokio::sync::Notify;

use crate::accounts::AccountService;
use crate::auth::Secrets;
use crate::catalog::CatalogService;
use crate::clock::Clock;
use crate::config::Config;
use crate::instances::InstanceService;
use crate::ledger::LedgerService;
use crate::scripts::ScriptService;
use crate::ssh_keys::SshKeyService;
use crate::volumes::VolumeService;

/// What every service shares.
pub struct Context {
    pub store: Store,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub secrets: Secrets,
    pub driver: Arc<dyn ComputeDriver>,
    /// Wakes the job runner when new work was committed.
    pub work: Arc<Notify>,
}

/// The services of one server process.
#[derive(Clone)]
pub struct Services {
    pub context: Arc<Context>,
    pub accounts: AccountService,
    pub catalog: CatalogService,
    pub ledger: LedgerService,
    pub instances: InstanceService,
    pub ssh_keys: SshKeyService,
    pub scripts: ScriptService,
    pub volumes: VolumeService,
}

impl Services {
    pub fn new(context: Context) -> Services {
        let context = Arc::new(context);
        Services {
            accounts: AccountService::new(context.clone()),
            catalog: CatalogService::new(context.clone()),
            ledger: LedgerService::new(context.clone()),
            instances: InstanceService::new(context.clone()),
            ssh_keys: SshKeyService::new(context.clone()),
            scripts: ScriptService::new(context.clone()),
            volumes: VolumeService::new(context.clone()),
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
