//! Instances: deploying them, their actions and events, the worker that drives machines through the
//! compute driver, depletion (hibernating instances whose credit ran out, for `billing`) and the
//! simulation controls. The top domain: it may use every other one, and none uses it.

mod actions;
pub mod deploy;
pub mod instance_worker;
pub mod instances;
pub mod leases;
mod machines;
mod restore;
pub mod simulation;
mod views;
