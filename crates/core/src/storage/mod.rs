//! Disks and what is made of them: volumes, snapshots, custom images, and the workers that finish their
//! jobs. Uses `platform`, `accounts`, `catalog` and `billing`; never `compute` or `network` (a disk does
//! not care which rules guard the machine it is attached to).

pub mod images;
pub mod snapshot_worker;
pub mod snapshots;
pub mod volume_worker;
pub mod volumes;
