//! Barrack's domain services: validation, rules, state machines and money. No HTTP here: handlers in
//! `barrack-server` parse requests, call a service and render what it returns.

pub mod accounts;
pub mod auth;
pub mod balance_guard;
pub mod billing;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod countries;
pub mod deposits;
pub mod error;
pub mod firewall_worker;
pub mod firewalls;
pub mod ids;
pub mod images;
pub mod instance_worker;
pub mod instances;
pub mod jobs;
pub mod ledger;
pub mod lifecycle;
pub mod money;
pub mod network;
pub mod packets;
pub mod payments;
pub mod scripts;
pub mod simulation;
pub mod snapshot_worker;
pub mod snapshots;
pub mod ssh_key;
pub mod ssh_keys;
pub mod validate;
pub mod volume_worker;
pub mod volumes;
pub mod web_sessions;

use std::sync::Arc;

pub use barrack_store::Store;
pub use error::{Error, Result};

use barrack_compute::ComputeDriver;
use tokio::sync::Notify;

use crate::accounts::AccountService;
use crate::auth::Secrets;
use crate::billing::BillingService;
use crate::catalog::CatalogService;
use crate::clock::Clock;
use crate::config::Config;
use crate::deposits::DepositService;
use crate::firewalls::FirewallService;
use crate::images::ImageService;
use crate::instances::InstanceService;
use crate::ledger::LedgerService;
use crate::scripts::ScriptService;
use crate::simulation::SimulationService;
use crate::snapshots::SnapshotService;
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
    pub deposits: DepositService,
    pub instances: InstanceService,
    pub billing: BillingService,
    pub ssh_keys: SshKeyService,
    pub scripts: ScriptService,
    pub volumes: VolumeService,
    pub firewalls: FirewallService,
    pub snapshots: SnapshotService,
    pub images: ImageService,
    pub simulation: SimulationService,
}

impl Services {
    pub fn new(context: Context) -> Services {
        let context = Arc::new(context);
        let billing = BillingService::new(context.clone());
        let instances = InstanceService::new(context.clone());
        Services {
            simulation: SimulationService::new(context.clone(), billing.clone(), instances.clone()),
            accounts: AccountService::new(context.clone()),
            catalog: CatalogService::new(context.clone()),
            ledger: LedgerService::new(context.clone()),
            deposits: DepositService::new(context.clone()),
            instances,
            billing,
            ssh_keys: SshKeyService::new(context.clone()),
            scripts: ScriptService::new(context.clone()),
            volumes: VolumeService::new(context.clone()),
            firewalls: FirewallService::new(context.clone()),
            snapshots: SnapshotService::new(context.clone()),
            images: ImageService::new(context.clone()),
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
