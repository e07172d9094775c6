//! The table of machines. A large installation has a million instances, and the simulator holds every one
//! of them for the life of the process, so a machine is a small fixed-size record ([`Instance`]) in a slab,
//! found through a hash table of slab positions; its id is packed into the record's 16-byte key instead
//! of being a string of its own. What few machines have (a failure's reason, firewall rules, a boot in
//! progress) is kept beside the table, by key.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::Instance;

/// An instance's id packed into 16 bytes: up to 15 bytes inline (Barrack's ids have 11) with the length
/// in the last byte, or the number of a longer id the table keeps once (`LONG` in the last byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(super) struct MachineKey([u8; 16]);

/// The last byte of the key of an id longer than 15 bytes.
const LONG: u8 = u8::MAX;

impl MachineKey {
    fn inline(id: &str) -> Option<MachineKey> {
        let bytes = id.as_bytes();
        let mut key = [0u8; 16];
        key.get_mut(..bytes.len())?.copy_from_slice(bytes);
        key[15] = u8::try_from(bytes.len()).ok().filter(|&len| len < 16)?;
        Some(MachineKey(key))
    }

    fn long(number: u32) -> MachineKey {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&number.to_le_bytes());
        key[15] = LONG;
        MachineKey(key)
    }
}

/// Every machine the simulator holds, by id.
pub(super) struct Machines {
    slab: Vec<(MachineKey, Instance)>,
    /// Positions in `slab`, hashed by key.
    index: HashTable<u32>,
    hasher: RandomState,
    /// Ids longer than 15 bytes, numbered as they are first inserted (none of Barrack's own).
    long_ids: HashMap<Box<str>, u32>,
}

impl Machines {
    pub(super) fn new() -> Machines {
        Machines {
            slab: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            long_ids: HashMap::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    /// The key of `id`; `None` for a long id never inserted (so not in the table).
    pub(super) fn key(&self, id: &str) -> Option<MachineKey> {
        MachineKey::inline(id).or_else(|| self.long_ids.get(id).copied().map(MachineKey::long))
    }

    fn position(&self, key: MachineKey) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        let slab = &self.slab;
        let found = self.index.find(hash, |&at| slab[at as usize].0 == key)?;
        Some(*found as usize)
    }

    pub(super) fn contains(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    pub(super) fn get(&self, id: &str) -> Option<&Instance> {
        let at = self.position(self.key(id)?)?;
        Some(&self.slab[at].1)
    }

    pub(super) fn get_key_value(&self, id: &str) -> Option<(MachineKey, &Instance)> {
        let key = self.key(id)?;
        let at = self.position(key)?;
        Some((key, &self.slab[at].1))
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<(MachineKey, &mut Instance)> {
        let key = self.key(id)?;
        let at = self.position(key)?;
        Some((key, &mut self.slab[at].1))
    }

    /// Inserts or replaces the machine `id`; its key.
    pub(super) fn insert(&mut self, id: &str, instance: Instance) -> MachineKey {
        let key = match MachineKey::inline(id) {
            Some(key) => key,
            None => {
                let next = u32::try_from(self.long_ids.len()).expect("fewer than 2^32 long ids");
                MachineKey::long(*self.long_ids.entry(id.into()).or_insert(next))
            }
        };
        if let Some(at) = self.position(key) {
            self.slab[at].1 = instance;
            return key;
        }
        let at = u32::try_from(self.slab.len()).expect("fewer than 2^32 machines");
        self.slab.push((key, instance));
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.index.insert_unique(hasher.hash_one(key), at, |&at| {
            hasher.hash_one(slab[at as usize].0)
        });
        key
    }

    /// Takes the machine `id` out; its key and record.
    pub(super) fn remove(&mut self, id: &str) -> Option<(MachineKey, Instance)> {
        let key = self.key(id)?;
        let slab = &self.slab;
        let entry = self
            .index
            .find_entry(self.hasher.hash_one(key), |&at| slab[at as usize].0 == key)
            .ok()?;
        let (at, _) = entry.remove();
        let at = at as usize;
        let last = self.slab.len() - 1;
        if at != last {
            // The last record moves into the freed slot: its position in the index follows.
            let moved = self.slab[last].0;
            let hash = self.hasher.hash_one(moved);
            if let Some(position) = self.index.find_mut(hash, |&p| p as usize == last) {
                *position = u32::try_from(at).expect("fewer than 2^32 machines");
            }
        }
        let (key, instance) = self.slab.swap_remove(at);
        Some((key, instance))
    }

    /// The ids of the machines `wanted` picks.
    pub(super) fn ids_where(&self, wanted: impl Fn(&Instance) -> bool) -> Vec<String> {
        let long: HashMap<u32, &str> = self.long_ids.iter().map(|(id, n)| (*n, &**id)).collect();
        self.slab
            .iter()
            .filter(|(_, instance)| wanted(instance))
            .filter_map(|(MachineKey(key), _)| match key[15] {
                LONG => {
                    let number = u32::from_le_bytes(key[..4].try_into().expect("4 bytes"));
                    long.get(&number).map(|id| id.to_string())
                }
                len => std::str::from_utf8(&key[..usize::from(len)])
                    .ok()
                    .map(str::to_string),
            })
            .collect()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &(MachineKey, Instance)> {
        self.slab.iter()
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut (MachineKey, Instance)> {
        self.slab.iter_mut()
    }

    pub(super) fn clear(&mut self) {
        // Whole new allocations: a reset of a large simulation gives its memory back.
        *self = Machines::new();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Instance, Power};
    use super::Machines;

    fn machine(n: u32) -> Instance {
        Instance {
            host: Some(n % 7),
            gpu_count: n % 9,
            ram_gb: n,
            region: 0,
            power: Power::Running,
        }
    }

    /// Barrack's ids, short test ids and ids too long to pack, mixed.
    fn id(n: u32) -> String {
        match n % 3 {
            0 => format!("BRK-{n:06}D"),
            1 => format!("i-{n}"),
            _ => format!("an-instance-id-longer-than-fifteen-bytes-{n}"),
        }
    }

    /// Inserts, replacements and removals in an order that moves records around the slab, checked
    /// after each step against a plain map of the same ids.
    #[test]
    fn agrees_with_a_map_through_inserts_and_removals() {
        let mut table = Machines::new();
        let mut expected: HashMap<String, u32> = HashMap::new();
        // A fixed pseudo-random walk: some ids come and go several times.
        let mut seed = 0x2545_f491_u32;
        for step in 0..40_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = (seed >> 8) % 5_000;
            let id = id(n);
            if seed.is_multiple_of(4) {
                let removed = table.remove(&id).map(|(_, m)| m.ram_gb);
                assert_eq!(
                    removed,
                    expected.remove(&id),
                    "removing {id} at step {step}"
                );
            } else {
                table.insert(&id, machine(step));
                expected.insert(id.clone(), step);
            }
            assert_eq!(table.len(), expected.len());
            assert_eq!(table.get(&id).map(|m| m.ram_gb), expected.get(&id).copied());
        }
        for n in 0..5_000 {
            let id = id(n);
            assert_eq!(
                table.get(&id).map(|m| m.ram_gb),
                expected.get(&id).copied(),
                "{id}"
            );
            assert_eq!(table.contains(&id), expected.contains_key(&id));
        }
        let mut walked: Vec<u32> = table.iter().map(|(_, m)| m.ram_gb).collect();
        let mut values: Vec<u32> = expected.values().copied().collect();
        walked.sort_unstable();
        values.sort_unstable();
        assert_eq!(walked, values);
    }

    #[test]
    fn ids_of_fifteen_and_sixteen_bytes_are_told_apart() {
        let mut table = Machines::new();
        let fifteen = "BRK-AAAAAAAAAAD";
        let sixteen = "BRK-AAAAAAAAAAAD";
        table.insert(fifteen, machine(15));
        assert!(!table.contains(sixteen));
        table.insert(sixteen, machine(16));
        assert_eq!(table.get(fifteen).map(|m| m.ram_gb), Some(15));
        assert_eq!(table.get(sixteen).map(|m| m.ram_gb), Some(16));
        // A shorter id is not a prefix match of a longer one.
        assert!(!table.contains("BRK-AAAAAAAAAA"));
        assert_eq!(table.remove(sixteen).map(|(_, m)| m.ram_gb), Some(16));
        assert!(!table.contains(sixteen));
        assert_eq!(table.get(fifteen).map(|m| m.ram_gb), Some(15));
    }
}
