//! What the compute driver says about machines, read live: the hosts (for operators) and an instance's
//! utilisation (for its owner).

use barrack_api::instances::{Host, InstanceMetrics, Job, JobList, JobQuery};
use barrack_api::{PageQuery, Pagination};
use barrack_compute::DriverError;
use barrack_store::instances::InstanceRow;

use crate::accounts::Caller;
use crate::catalog::recognize_capacity;
use crate::compute::instances::InstanceService;
use crate::platform::clock::format_ms;
use crate::platform::lifecycle::{InstanceState, recorded_power};
use crate::platform::validate::{Validator, unknown_status};
use crate::{Error, Result};

/// A driver that cannot answer is an upstream failure (502), not ours.
fn unavailable(error: DriverError) -> Error {
    Error::BadGateway(format!("The compute driver could not answer: {error}"))
}

impl InstanceService {
    /// Tells the driver what the database says about the instance (see `ComputeDriver::recognize`).
    fn recognize(&self, row: &InstanceRow) {
        if let Some(power) = recorded_power(row) {
            self.context.driver.recognize(
                &row.id,
                &row.region,
                row.gpu_count as u32,
                row.host.as_deref(),
                power,
            );
        }
    }

    /// `GET /api/admin/jobs/`: a page of the jobs operators follow (pending, running, dead-lettered),
    /// oldest first; `status` narrows it to one of those states.
    pub async fn operator_jobs(&self, query: JobQuery) -> Result<JobList> {
        const STATUSES: [&str; 3] = ["pending", "running", "failed"];
        let mut v = Validator::new();
        let page = match (PageQuery {
            page: query.page,
            limit: query.limit,
        })
        .validate()
        {
            Ok(page) => Some(page),
            Err((field, message)) => {
                v.add(field, message);
                None
            }
        };
        if let Some(status) = &query.status {
            v.check(
                STATUSES.contains(&status.as_str()),
                "status",
                unknown_status(status, &STATUSES),
            );
        }
        v.finish()?;
        let page = page.expect("validated");
        let (rows, total) = self
            .context
            .store
            .jobs_for_operators_page(query.status.as_deref(), page.offset(), page.limit)
            .await?;
        let jobs = rows
            .into_iter()
            .map(|j| Job {
                id: j.id,
                kind: j.kind,
                resource_id: j.resource_id,
                status: j.status,
                attempts: u32::try_from(j.attempts).unwrap_or(0),
                max_attempts: u32::try_from(j.max_attempts).unwrap_or(0),
                last_error: j.last_error,
                run_after: format_ms(j.run_after),
                created_at: format_ms(j.created_at),
                updated_at: format_ms(j.updated_at),
            })
            .collect();
        Ok(JobList {
            jobs,
            pagination: Pagination::new(page, total),
        })
    }

    /// `GET /api/admin/hosts/`: every machine instances are placed on, in the driver's order. A
    /// simulated data centre lives in each server's memory, where a machine placed or released through
    /// another server shows late: its GPUs in use are the database's count of the instances on it, the
    /// same on every server.
    pub async fn hosts(&self) -> Result<Vec<Host>> {
        recognize_capacity(&self.context).await?;
        let mut hosts = self.context.driver.hosts().await.map_err(unavailable)?;
        if self.context.driver.is_simulated() {
            let used = self.context.store.gpus_used_by_host().await?;
            for host in &mut hosts {
                host.gpus_used = used
                    .get(&host.name)
                    .map_or(0, |n| u32::try_from(*n).unwrap_or(u32::MAX));
            }
        }
        Ok(hosts
            .into_iter()
            .map(|host| Host {
                gpus_free: if host.lost {
                    0
                } else {
                    host.gpus.saturating_sub(host.gpus_used)
                },
                name: host.name,
                region: host.region,
                gpu_model: host.gpu_model,
                gpus: host.gpus,
                gpus_used: host.gpus_used,
                lost: host.lost,
            })
            .collect())
    }

    /// `GET /api/instances/{id}/metrics/`: sampled from the driver; only a running (ACTIVE) instance has
    /// any (409 otherwise).
    pub async fn metrics(&self, caller: &Caller, id: &str) -> Result<InstanceMetrics> {
        let row = self.owned(caller, id).await?;
        if row.status != InstanceState::Active.as_str() {
            return Err(Error::conflict(
                "INVALID_STATE",
                format!(
                    "Instance '{id}' is {}; metrics are sampled from ACTIVE instances only",
                    row.status
                ),
            ));
        }
        recognize_capacity(&self.context).await?;
        self.recognize(&row);
        let sampled = self
            .context
            .driver
            .instance_metrics(&row.id)
            .await
            .map_err(unavailable)?;
        let Some(metrics) = sampled else {
            return Err(Error::conflict(
                "INVALID_STATE",
                format!("Instance '{id}' is not running on its host"),
            ));
        };
        Ok(InstanceMetrics {
            instance_id: row.id,
            sampled_at: format_ms(self.now()),
            cpu_percent: metrics.cpu_percent,
            memory_total_bytes: metrics.memory_total_bytes,
            memory_used_bytes: metrics.memory_used_bytes,
            network_rx_bytes_per_sec: metrics.network_rx_bytes_per_sec,
            network_tx_bytes_per_sec: metrics.network_tx_bytes_per_sec,
            disk_read_bytes_per_sec: metrics.disk_read_bytes_per_sec,
            disk_write_bytes_per_sec: metrics.disk_write_bytes_per_sec,
            gpu_percent: metrics.gpu_percent,
        })
    }
}
