//! What a guest is doing: its power state, whether its SSH server answers, and its utilisation.

use super::*;

/// How long the SSH readiness probe waits for a banner.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Inner {
    pub(super) fn observe(&self, id: &str) -> Result<Observation, DriverError> {
        let found = match self.find(id) {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Ok(Observation {
                    state: PowerState::Missing,
                    host: None,
                });
            }
            Err(error) => {
                return match self.on_lost_host() {
                    Some(reason) => Ok(Observation {
                        state: PowerState::Failed(reason),
                        host: None,
                    }),
                    None => Err(error),
                };
            }
        };
        let (state, _) = found
            .domain
            .state()
            .map_err(|e| driver_error("domain state", e))?;
        let state = match state.unwrap_or(DomainState::NoState) {
            DomainState::Running
            | DomainState::Blocked
            | DomainState::Paused
            | DomainState::Shutdown
            | DomainState::PMSuspended => PowerState::Running,
            DomainState::Crashed => PowerState::Failed("the guest crashed".into()),
            _ if self.is_hibernated(&found.domain) => PowerState::Hibernated,
            _ => PowerState::Stopped,
        };
        let host = (state != PowerState::Hibernated).then_some(found.host.name);
        Ok(Observation { state, host })
    }

    pub(super) fn endpoint(&self, found: &Found) -> Option<SshEndpoint> {
        match self.config.network.mode {
            NetworkMode::User => {
                let definition = found.domain.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE).ok()?;
                let port = xml::forwarded_ssh_port(&definition)?;
                let listen = &self.config.network.forward_address;
                let host = if listen == "0.0.0.0" || listen == "::" {
                    found.host.public_address()
                } else if Self::is_local(&found.host) || found.host.address.is_none() {
                    listen.clone()
                } else {
                    found.host.public_address()
                };
                Some(SshEndpoint { host, port })
            }
            mode => Some(SshEndpoint {
                host: network::guest_address(&found.domain, mode)?,
                port: 22,
            }),
        }
    }

    pub(super) fn readiness(&self, id: &str) -> Result<Readiness, DriverError> {
        let Some(found) = self.find(id)? else {
            return Ok(Readiness::NotRunning);
        };
        if !found.domain.is_active().unwrap_or(false) {
            return Ok(Readiness::NotRunning);
        }
        Ok(match self.endpoint(&found) {
            Some(endpoint)
                if network::ssh_answers(&endpoint.host, endpoint.port, PROBE_TIMEOUT) =>
            {
                Readiness::Ready
            }
            _ => Readiness::Booting,
        })
    }

    pub(super) fn metrics(&self, id: &str) -> Result<Option<InstanceMetrics>, DriverError> {
        let Some(found) = self.find(id)? else {
            return Ok(None);
        };
        if !found.domain.is_active().unwrap_or(false) {
            lock(&self.samples).remove(id);
            return Ok(None);
        }
        let previous = lock(&self.samples).get(id).copied();
        let earlier = match previous {
            Some(sample) if sample.at.elapsed() < Duration::from_secs(600) => sample,
            _ => {
                let sample = metrics::sample(&found.domain)?;
                std::thread::sleep(Duration::from_millis(500));
                sample
            }
        };
        let later = metrics::sample(&found.domain)?;
        lock(&self.samples).insert(id.to_string(), later);
        Ok(Some(metrics::between(&earlier, &later)))
    }
}
