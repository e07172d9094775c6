//! Barrack's domain services: validation, rules, state machines and money. No HTTP here: handlers in
//! `barrack-server` parse requests, call a service and render what it returns.
//!
//! The services are grouped by domain, and calls between domains go one way (`tests/domains.rs` keeps it
//! so): `platform` below everything; `accounts` and `catalog` on it; `billing` on those; `network` and
//! `storage` on those; `compute` on top. This file wires them together.

pub mod accounts;
pub mod ai;
pub mod billing;
pub mod catalog;
pub mod compute;
pub mod network;
pub mod platform;
pub mod storage;

// The modules' former flat paths, so callers outside the crate keep their imports.
pub use accounts::{auth, scripts, ssh_key, ssh_keys};
pub use billing::{balance_guard, deposits, ledger, payments};
pub use compute::{instance_worker, instances, leases, simulation};
pub use network::{firewall_worker, firewalls, packets};
pub use platform::{
    clock, config, countries, error, idempotency, ids, jobs, labels, lifecycle, money, validate,
};
pub use storage::{images, snapshot_worker, snapshots, volume_worker, volumes};

use std::sync::Arc;

pub use barrack_store::Store;
pub use platform::error::{Error, Result};

use barrack_compute::ComputeDriver;
use tokio::sync::Notify;

use crate::accounts::AccountService;
use crate::accounts::auth::Secrets;
use crate::accounts::event_stream::EventStreamService;
use crate::accounts::scripts::ScriptService;
use crate::accounts::ssh_keys::SshKeyService;
use crate::accounts::webhooks::WebhookService;
use crate::billing::BillingService;
use crate::billing::deposits::DepositService;
use crate::billing::ledger::LedgerService;
use crate::catalog::CatalogService;
use crate::compute::instances::InstanceService;
use crate::compute::simulation::SimulationService;
use crate::network::firewalls::FirewallService;
use crate::platform::clock::Clock;
use crate::platform::config::Config;
use crate::storage::images::ImageService;
use crate::storage::snapshots::SnapshotService;
use crate::storage::volumes::VolumeService;

/// What every service shares.
pub struct Context {
    pub store: Store,
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub secrets: Secrets,
    pub driver: Arc<dyn ComputeDriver>,
    /// Wakes the job runner when new work was committed.
    pub work: Arc<Notify>,
    /// Turns true when the server stops: long-lived answers (event streams) end then.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The simulation's resets this process knows of: in-memory limits start over when it moves.
    pub resets_seen: Arc<platform::resets::ResetsSeen>,
}

/// The services of one server process.
#[derive(Clone)]
pub struct Services {
    pub context: Arc<Context>,
    pub accounts: AccountService,
    pub ai: ai::AiService,
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
    pub event_stream: EventStreamService,
    pub webhooks: WebhookService,
}

impl Services {
    pub fn new(context: Context) -> Services {
        let context = Arc::new(context);
        let billing = BillingService::new(context.clone());
        let instances = InstanceService::new(context.clone());
        Services {
            simulation: SimulationService::new(
                context.clone(),
                billing.clone(),
                instances.clone(),
                CatalogService::new(context.clone()),
            ),
            accounts: AccountService::new(context.clone()),
            ai: ai::AiService::new(context.clone()),
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
            event_stream: EventStreamService::new(context.clone()),
            webhooks: WebhookService::new(context.clone()),
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
