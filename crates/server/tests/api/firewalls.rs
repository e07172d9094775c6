//! Firewalls against the simulated data centre in step mode: create, list, rules, attach to and detach
//! from instances, delete; what the driver is asked to program; the documented rules and their status
//! codes. Also: public addresses are never handed to two instances.
//!
//! A file per topic: [`access`], [`addresses`], [`attachments`], [`create`], [`driver`], [`validation`].

mod access;
mod addresses;
mod attachments;
mod create;
mod driver;
mod validation;

use barrack_api::firewalls::CreateFirewallRequest;
use barrack_api::instances::{DeployRequest, SecurityRuleRequest};
use barrack_api::ssh_keys::CreateSshKeyRequest;
use barrack_client::{Client, ClientError};
use barrack_compute::PacketRule;
use serde_json::{Value, json};

use crate::common::{TestApp, deploy_id};

const IMAGE: &str = "Ubuntu 24.04 + CUDA 12.8 Open + Docker";

/// (status, code, fields at fault) of an error.
fn failure(e: ClientError) -> (u16, String, Vec<String>) {
    (
        e.status().unwrap(),
        e.code().unwrap_or_default().to_string(),
        e.field_errors()
            .map(|f| f.keys().cloned().collect())
            .unwrap_or_default(),
    )
}

fn rule(direction: &str, protocol: Option<&str>, port: Option<u32>) -> SecurityRuleRequest {
    SecurityRuleRequest {
        direction: direction.into(),
        protocol: protocol.map(str::to_string),
        ethertype: None,
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: None,
    }
}

fn packet(direction: &str, protocol: Option<&str>, port: Option<u16>) -> PacketRule {
    PacketRule {
        direction: direction.into(),
        ethertype: "IPv4".into(),
        protocol: protocol.map(str::to_string),
        port_range_min: port,
        port_range_max: port,
        remote_ip_prefix: None,
    }
}

fn firewall(name: &str, region: &str, rules: Vec<SecurityRuleRequest>) -> CreateFirewallRequest {
    CreateFirewallRequest {
        name: name.into(),
        description: Some(format!("{name} rules")),
        region: region.into(),
        rules,
        labels: Default::default(),
    }
}

/// A firewall created and settled to SUCCESS; its id.
async fn ready_firewall(app: &TestApp, client: &Client, request: CreateFirewallRequest) -> String {
    let id = client.create_firewall(&request).await.unwrap().data.id;
    app.settle().await;
    assert_eq!(client.firewall(&id).await.unwrap().data.status, "SUCCESS");
    id
}

async fn key_name(client: &Client) -> String {
    let keys = client.ssh_keys().await.unwrap().data.ssh_keys;
    match keys.first() {
        Some(k) => k.name.clone(),
        None => {
            client
                .create_ssh_key(&CreateSshKeyRequest {
                    name: "laptop".into(),
                    public_key: None,
                })
                .await
                .unwrap()
                .data
                .key
                .name
        }
    }
}

fn deploy_request(name: &str, key: &str, region: &str, rules: Value) -> DeployRequest {
    serde_json::from_value(json!({
        "gpu_model": "H100-SXM5-80GB", "gpu_count": 1, "region": region, "instance_name": name,
        "image_name": IMAGE, "ssh_key": key, "security_rules": rules
    }))
    .unwrap()
}

/// An ACTIVE 1-GPU instance in `region` with `rules` of its own; its id.
async fn active_instance(
    app: &TestApp,
    client: &Client,
    name: &str,
    region: &str,
    rules: Value,
) -> String {
    let key = key_name(client).await;
    let request = deploy_request(name, &key, region, rules);
    let id = deploy_id(client, &request).await;
    app.settle().await;
    assert_eq!(client.instance(&id).await.unwrap().data.status, "ACTIVE");
    id
}

/// The attachment status of `instance` on the firewall, if attached.
async fn attachment(client: &Client, firewall: &str, instance: &str) -> Option<String> {
    client
        .firewall(firewall)
        .await
        .unwrap()
        .data
        .instances
        .into_iter()
        .find(|a| a.instance_id == instance)
        .map(|a| a.status)
}
