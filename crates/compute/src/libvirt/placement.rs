//! Best-fit placement of an instance's GPUs across hosts, from the GPUs each host's domains already hold.

use std::collections::HashSet;

use super::xml::PciAddress;

/// A host that could take the instance: its configured GPUs of the wanted model, in configured order,
/// and those its domains hold.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub host: String,
    pub gpus: Vec<PciAddress>,
    pub used: HashSet<PciAddress>,
}

impl Candidate {
    pub fn free(&self) -> Vec<PciAddress> {
        self.gpus
            .iter()
            .filter(|gpu| !self.used.contains(gpu))
            .copied()
            .collect()
    }
}

/// The host with the fewest free GPUs that still has `count` (ties to the first listed), and the GPUs to
/// give: the first free ones in configured order. Packing hosts keeps whole hosts free for large instances.
pub fn best_fit(candidates: &[Candidate], count: usize) -> Option<(String, Vec<PciAddress>)> {
    candidates
        .iter()
        .map(|candidate| (candidate, candidate.free()))
        .filter(|(_, free)| free.len() >= count)
        .min_by_key(|(_, free)| free.len())
        .map(|(candidate, free)| {
            (
                candidate.host.clone(),
                free.into_iter().take(count).collect(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpus(bus: u8, n: u8) -> Vec<PciAddress> {
        (0..n)
            .map(|slot| PciAddress {
                domain: 0,
                bus,
                slot,
                function: 0,
            })
            .collect()
    }

    #[test]
    fn the_fullest_host_that_fits_wins() {
        let empty = Candidate {
            host: "empty".into(),
            gpus: gpus(1, 8),
            used: HashSet::new(),
        };
        let busy = Candidate {
            host: "busy".into(),
            gpus: gpus(2, 8),
            used: gpus(2, 6).into_iter().collect(),
        };
        let candidates = [empty, busy];
        let (host, chosen) = best_fit(&candidates, 2).unwrap();
        assert_eq!(host, "busy");
        assert_eq!(chosen, gpus(2, 8)[6..].to_vec());
        let (host, chosen) = best_fit(&candidates, 8).unwrap();
        assert_eq!(host, "empty");
        assert_eq!(chosen.len(), 8);
        assert!(best_fit(&candidates, 9).is_none());
    }
}
