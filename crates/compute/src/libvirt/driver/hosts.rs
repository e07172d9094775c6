//! Connections to the configured hosts, and hosts lost: unreachable past the grace period.

use super::*;

impl Inner {
    pub(super) fn connect(&self, host: &HostConfig) -> Result<Connect, DriverError> {
        let mut connections = lock(&self.connections);
        if let Some(conn) = connections.get(&host.name) {
            if conn.is_alive().unwrap_or(false) {
                return Ok(conn.clone());
            }
            connections.remove(&host.name);
        }
        let conn = match Connect::open(Some(&host.uri)) {
            Ok(conn) => conn,
            Err(error) => {
                lock(&self.unreachable_since)
                    .entry(host.name.clone())
                    .or_insert_with(Instant::now);
                return Err(DriverError::Transient(format!(
                    "host {} ({}) unreachable: {}",
                    host.name,
                    host.uri,
                    error.message()
                )));
            }
        };
        lock(&self.unreachable_since).remove(&host.name);
        connections.insert(host.name.clone(), conn.clone());
        Ok(conn)
    }

    /// Hosts unreachable for longer than `host_lost_after_secs`, with how long they have been.
    pub(super) fn lost_hosts(&self) -> Vec<(String, Duration)> {
        let grace = Duration::from_secs(self.config.host_lost_after_secs);
        lock(&self.unreachable_since)
            .iter()
            .map(|(name, since)| (name.clone(), since.elapsed()))
            .filter(|(_, down)| *down >= grace)
            .collect()
    }

    /// When a domain cannot be looked up because hosts do not answer, and every one of them has been
    /// gone past the grace period: the instance is on a lost host (the reachable ones do not have it).
    pub(super) fn on_lost_host(&self) -> Option<String> {
        let unreachable = lock(&self.unreachable_since).len();
        let lost = self.lost_hosts();
        if unreachable == 0 || lost.len() < unreachable {
            return None;
        }
        let names: Vec<String> = lost
            .iter()
            .map(|(name, down)| format!("{name} ({} s)", down.as_secs()))
            .collect();
        Some(format!(
            "host lost: unreachable for too long: {}",
            names.join(", ")
        ))
    }

    pub(super) fn is_local(host: &HostConfig) -> bool {
        let rest = host.uri.split_once("://").map(|(_, r)| r).unwrap_or("");
        rest.starts_with('/')
    }

    /// The configured GPUs of lost hosts by region and model ([`crate::ComputeDriver::lost_gpus`]).
    pub(super) fn lost_gpus(&self) -> Vec<crate::LostGpus> {
        let lost: HashSet<String> = self.lost_hosts().into_iter().map(|(n, _)| n).collect();
        crate::tally_lost_gpus(self.config.hosts.iter().flat_map(|host| {
            let gone = lost.contains(&host.name);
            host.gpus.iter().map(move |group| {
                (
                    host.region.as_str(),
                    group.model.as_str(),
                    group.addresses.len() as u32,
                    gone,
                )
            })
        }))
    }

    /// Every configured host with its GPUs in use; a host that does not answer shows as lost once it has
    /// been unreachable past the grace period.
    pub(super) fn host_statuses(&self) -> Vec<HostStatus> {
        let lost: HashSet<String> = self.lost_hosts().into_iter().map(|(n, _)| n).collect();
        self.config
            .hosts
            .iter()
            .map(|host| {
                let configured: HashSet<PciAddress> = host
                    .gpus
                    .iter()
                    .flat_map(|group| &group.addresses)
                    .filter_map(|a| PciAddress::parse(a).ok())
                    .collect();
                let used = self
                    .connect(host)
                    .ok()
                    .and_then(|conn| self.held(&conn).ok())
                    .map_or(0, |(gpus, _)| gpus.intersection(&configured).count());
                HostStatus {
                    name: host.name.clone(),
                    region: host.region.clone(),
                    gpu_model: host.gpus.first().map(|group| group.model.clone()),
                    gpus: configured.len() as u32,
                    gpus_used: used as u32,
                    lost: lost.contains(&host.name),
                }
            })
            .collect()
    }
}
