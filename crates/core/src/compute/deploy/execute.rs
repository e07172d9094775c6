//! Deploy, step three: the plan written in one transaction — the custom image held, the instance (or a
//! hold's taken over), its rules, attached and new volumes, its event and its job, the account's
//! committed burn checked (first when the deploy takes over rows others change, else after its own
//! writes), then its address and its GPUs taken. A conflict found here (balance committed elsewhere
//! 402, a name taken, a hold gone or a volume or image changed 409, no address 503, no stock 503) rolls
//! everything back. The caller commits the transaction (a deploy) or drops it (a preflight, which so
//! makes every check a deploy makes).

use barrack_api::Currency;
use barrack_api::instances::DeployedInstance;
use barrack_store::Tx;
use barrack_store::admission::{self, Admission};
use barrack_store::images::{self, ImageRow};
use barrack_store::instances::InstanceRow;
use barrack_store::volumes::VolumeRow;
use rust_decimal::Decimal;

use super::plan::DeployPlan;
use crate::accounts::{Caller, actor};
use crate::billing::commitments::{require_commitment, require_commitments_cover};
use crate::compute::instances::{InstanceService, JobAction, insert_rule, record_event};
use crate::network::candidate_address;
use crate::platform::labels::{Labelled, write as write_labels};
use crate::platform::lifecycle::InstanceState;
use crate::{Error, Result};

impl InstanceService {
    pub(super) async fn execute(
        &self,
        caller: &Caller,
        plan: DeployPlan<'_>,
    ) -> Result<(Tx, DeployedInstance)> {
        let DeployPlan {
            model,
            instance: mut row,
            custom_image,
            rules,
            boot_volume,
            existing_volumes: existing,
            new_volumes: mut created,
            currency,
            first_hour,
            hold,
            now,
            labels,
            lease,
        } = plan;
        tracing::debug!(instance = %row.id, %first_hour, "deploy planned");
        let mut tx = self.context.store.begin().await?;
        // The account is held (on PostgreSQL, its row locked) from the commitment's check to the commit. A
        // deploy that takes over rows other requests change while they hold the account (a hold, an image,
        // volumes) holds it first, as they do, so that no two wait on each other; one that writes only
        // rows of its own checks last, with its address and GPUs in the same step ([`Self::admit`]), so
        // an account's deploys overlap in all but that step and the commit.
        let takes_over = hold.is_some()
            || custom_image.is_some()
            || boot_volume.is_some()
            || !existing.is_empty();
        if takes_over {
            let account = caller.account_id();
            require_commitment(&mut tx, &self.context, account, currency, first_hour, None).await?;
        }
        if let Some(image) = &custom_image {
            hold_image(&mut tx, image).await?;
        }
        self.write_new(&mut tx, &mut row, hold.as_ref(), now)
            .await?;
        // The id may have been drawn again.
        for volume in &mut created {
            volume.instance_id = Some(row.id.clone());
        }
        for rule in &rules {
            insert_rule(&mut tx, &row.id, rule, now).await?;
        }
        let who = actor(caller);
        for volume in boot_volume.iter().chain(existing.iter()) {
            if !crate::storage::volumes::attach_at_deploy(
                &self.context.config,
                &mut tx,
                volume,
                &row.id,
                &who,
                now,
            )
            .await?
            {
                return Err(Error::conflict(
                    "CONFLICT",
                    format!("Volume {} changed while deploying; try again", volume.id),
                ));
            }
        }
        let max_attempts = i64::from(self.config().jobs.max_attempts);
        for volume in &mut created {
            crate::storage::volumes::create_at_deploy(
                &self.context.config,
                &mut tx,
                volume,
                &who,
                max_attempts,
                now,
            )
            .await?;
        }
        record_event(
            &self.context.config,
            &mut tx,
            &row,
            None,
            InstanceState::Creating,
            &actor(caller),
            "deploy requested",
            now,
        )
        .await?;
        self.enqueue(&mut tx, &row.id, JobAction::Create, row.generation, now)
            .await?;
        write_labels(
            &mut tx,
            Labelled::Instance,
            &row.id,
            &row.account_id,
            &labels,
        )
        .await?;
        if let Some(lease) = &lease {
            self.write_lease(&mut tx, &row.id, lease, now).await?;
        }
        let gpus_taken = if takes_over {
            self.take_address(&mut tx, &row, hold.is_some()).await?;
            // The region's stock, which every deploy of its model takes from, comes last: on PostgreSQL
            // its row stays locked from here to the commit, so the deploys of other accounts wait the least.
            hold.is_some() || self.allocate_gpus(&mut tx, &row, now).await?
        } else {
            self.admit(&mut tx, &row, currency, first_hour, now).await?
        };
        if !gpus_taken {
            drop(tx);
            return Err(Error::GpuUnavailable(
                self.stock_message(&row.region, model, row.gpu_count as u32)
                    .await?,
            ));
        }
        let data: Vec<VolumeRow> = existing.into_iter().chain(created).collect();
        let deployed = self.deployed(row, model, &data, currency, now);
        Ok((tx, deployed))
    }

    /// A plain deploy's last steps, after its writes: the account held and its commitment checked (402),
    /// the address (503) and the GPUs, in that order, as one step of the store (one round trip on
    /// PostgreSQL, where the account is held from here to the commit); whether the GPUs were free.
    async fn admit(
        &self,
        tx: &mut Tx,
        row: &InstanceRow,
        currency: Currency,
        first_hour: Decimal,
        now: i64,
    ) -> Result<bool> {
        let address = row
            .public_ip
            .then(|| candidate_address(self.config(), &row.region))
            .flatten()
            .map(|address| address.to_string());
        let admission = Admission {
            account_id: &row.account_id,
            currency: currency.as_str(),
            instance_id: &row.id,
            region: &row.region,
            gpu_model: &row.gpu_model,
            gpu_count: row.gpu_count,
            address: address.as_deref(),
            now,
        };
        let admitted = admission::admit(tx, &admission).await?;
        require_commitments_cover(&self.context, &admitted.commitments, currency, first_hour)?;
        if row.public_ip && !admitted.address_taken {
            // Taken meanwhile, or the pool is nearly full: searched for another.
            self.take_address(tx, row, false).await?;
        }
        Ok(admitted.gpus_taken)
    }
}

/// Holds a custom image a deploy boots from until the deploy's transaction ends (409 when it changed
/// since it was read, e.g. deleted).
async fn hold_image(tx: &mut Tx, image: &ImageRow) -> Result<()> {
    if images::hold(tx, &image.id, image.generation).await? {
        return Ok(());
    }
    Err(Error::conflict(
        "CONFLICT",
        format!("Image '{}' changed while deploying; try again", image.name),
    ))
}
