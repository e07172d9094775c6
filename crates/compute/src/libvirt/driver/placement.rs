//! Where an instance goes: the GPUs and ports a host's domains hold, the GPUs a host has configured, the
//! best-fitting host of the region, and the vCPUs and memory the instance gets within the configured caps.

use super::super::placement::{Candidate, best_fit};
use super::*;

impl Inner {
    /// GPUs and forwarded ports held by the domains on a host (stopped ones keep theirs; shelved
    /// passthrough domains have none in their definition).
    pub(super) fn held(
        &self,
        conn: &Connect,
    ) -> Result<(HashSet<PciAddress>, HashSet<u16>), DriverError> {
        let mut gpus = HashSet::new();
        let mut ports = HashSet::new();
        for domain in self.own_domains(conn)? {
            let definition = match domain.xml_desc(sys::VIR_DOMAIN_XML_INACTIVE) {
                Ok(xml) => xml,
                Err(error) if is_missing(&error) => continue,
                Err(error) => return Err(driver_error("domain XML", error)),
            };
            gpus.extend(xml::hostdevs(&definition));
            gpus.extend(Metadata::from_domain_xml(&definition).map_or_else(Vec::new, |m| m.gpus));
            ports.extend(xml::forwarded_ssh_port(&definition));
        }
        Ok((gpus, ports))
    }

    /// The GPUs of `model` this host has configured, parsed.
    pub(super) fn configured_gpus(host: &HostConfig, model: &str) -> Vec<PciAddress> {
        host.gpu_addresses(model)
            .iter()
            .filter_map(|a| PciAddress::parse(a).ok())
            .collect()
    }

    /// Best fit across the region's hosts that can be reached.
    pub(super) fn place(
        &self,
        spec: &InstanceSpec,
    ) -> Result<(HostConfig, Vec<PciAddress>), DriverError> {
        let mut candidates = Vec::new();
        let mut unreachable = Vec::new();
        for host in self
            .config
            .hosts
            .iter()
            .filter(|host| host.region == spec.region)
        {
            let gpus = Self::configured_gpus(host, &spec.gpu_model);
            if (gpus.len() as u32) < spec.gpu_count {
                continue;
            }
            let conn = match self.connect(host) {
                Ok(conn) => conn,
                Err(error) => {
                    unreachable.push(error.to_string());
                    continue;
                }
            };
            let (used, _) = self.held(&conn)?;
            candidates.push(Candidate {
                host: host.name.clone(),
                gpus,
                used,
            });
        }
        match best_fit(&candidates, spec.gpu_count as usize) {
            Some((name, gpus)) => Ok((
                self.config
                    .host(&name)
                    .cloned()
                    .expect("candidates come from the configured hosts"),
                gpus,
            )),
            None if !unreachable.is_empty() => Err(DriverError::Transient(unreachable.join("; "))),
            None => Err(DriverError::NoCapacity(format!(
                "no host in {} has {} free {} GPUs",
                spec.region, spec.gpu_count, spec.gpu_model
            ))),
        }
    }

    pub(super) fn shape(&self, spec: &InstanceSpec) -> (u32, u64) {
        let vcpus = spec
            .vcpus
            .max(1)
            .min(self.config.max_vcpus.unwrap_or(u32::MAX));
        let memory = (u64::from(spec.ram_gb.max(1)) * 1024)
            .min(u64::from(self.config.max_memory_mb.unwrap_or(u32::MAX)));
        (vcpus, memory)
    }
}
