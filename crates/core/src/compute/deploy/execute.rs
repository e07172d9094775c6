//! Deploy, step three: the plan written in one transaction — the custom image held, the instance (or a
//! hold's taken over), its rules, attached and new volumes, its event and its job, the account's
//! committed burn checked (first when the deploy takes over rows others change, else after its own
//! writes), then its address and its GPUs taken. A conflict found here (balance committed elsewhere
//! 402, a name taken, a hold gone or a volume or image changed 409, no address 503, no stock 503) rolls
//! everything back. The caller commits the transaction (a deploy) or drops it (a preflight, which so
//! makes every check a deploy makes). On PostgreSQL a plain deploy's last step, the account's lock that
//! every deploy of the account waits for, is sent with the COMMIT ([`InstanceService::execute_and_commit`]).

use barrack_api::Currency;
use barrack_api::instances::DeployedInstance;
use barrack_store::admission::{self, Admission, Committed};
use barrack_store::images::{self, ImageRow};
use barrack_store::instances::InstanceRow;
use barrack_store::volumes::VolumeRow;
use barrack_store::{Backend, Tx};
use rust_decimal::Decimal;

use super::plan::DeployPlan;
use crate::accounts::{Caller, actor};
use crate::billing::commitments::{
    commitment_prices, refused, require_commitment, require_commitments_cover,
};
use crate::compute::instances::{InstanceService, JobAction, insert_rule, record_event};
use crate::network::candidate_address;
use crate::platform::config::GpuModelConfig;
use crate::platform::idempotency;
use crate::platform::labels::{Labelled, write as write_labels};
use crate::platform::lifecycle::InstanceState;
use crate::{Error, Result};

/// What a deploy's writes leave for its last steps.
struct Written<'c> {
    model: &'c GpuModelConfig,
    row: InstanceRow,
    /// Its data volumes: those it attaches, then those created with it.
    data: Vec<VolumeRow>,
    currency: Currency,
    first_hour: Decimal,
    /// Whether it takes over a hold's GPUs and address.
    held: bool,
    takes_over: bool,
    now: i64,
}

impl InstanceService {
    /// The plan written in a transaction, with every check the deploy makes; the caller commits it (a
    /// deploy the long way) or drops it (a preflight).
    pub(super) async fn execute(
        &self,
        caller: &Caller,
        plan: DeployPlan<'_>,
    ) -> Result<(Tx, DeployedInstance)> {
        let (mut tx, written) = self.write(caller, plan).await?;
        let row = &written.row;
        let gpus_taken = if written.takes_over {
            self.take_address(&mut tx, row, written.held).await?;
            // The region's stock, which every deploy of its model takes from, comes last: on PostgreSQL
            // its row stays locked from here to the commit, so the deploys of other accounts wait the least.
            written.held || self.allocate_gpus(&mut tx, row, written.now).await?
        } else {
            self.admit(
                &mut tx,
                row,
                written.currency,
                written.first_hour,
                written.now,
            )
            .await?
        };
        if !gpus_taken {
            drop(tx);
            return Err(self.no_stock(&written).await);
        }
        let deployed = self.deployed(
            written.row,
            written.model,
            &written.data,
            written.currency,
            written.now,
        );
        Ok((tx, deployed))
    }

    /// The plan written and committed, with the response stored for a retry with the same key. On
    /// PostgreSQL a plain deploy (one that takes nothing over) has its commitment checked in the
    /// database and commits in the same round trip ([`Self::commit_admitted`]).
    pub(super) async fn execute_and_commit(
        &self,
        caller: &Caller,
        plan: DeployPlan<'_>,
    ) -> Result<DeployedInstance> {
        if self.context.store.backend() == Backend::Postgres
            && !plan.takes_over()
            && let Some(deployed) = self.commit_admitted(caller, plan.clone()).await?
        {
            return Ok(deployed);
        }
        let (tx, deployed) = self.execute(caller, plan).await?;
        idempotency::commit(tx, &deployed).await?;
        Ok(deployed)
    }

    /// PostgreSQL, a plain deploy: its writes, then its admission with the commitment checked in the
    /// database, sent with the COMMIT ([`admission::admit_and_commit`]), so the account is held for no
    /// round trip back here; the same answers as the long way (402 with the same figures, 503 for
    /// stock). `None` when the address it tried was taken meanwhile: nothing was written, and the
    /// caller deploys the long way, which searches the pool for another.
    async fn commit_admitted(
        &self,
        caller: &Caller,
        plan: DeployPlan<'_>,
    ) -> Result<Option<DeployedInstance>> {
        let (mut tx, written) = self.write(caller, plan).await?;
        let Written {
            row,
            currency,
            first_hour,
            now,
            ..
        } = &written;
        let deployed = self.deployed(row.clone(), written.model, &written.data, *currency, *now);
        let recorded = idempotency::record(&mut tx, &deployed).await?;
        let address = self.candidate_address(row);
        let admission = admission_of(row, *currency, address.as_deref(), *now);
        let prices = commitment_prices(&self.context, *currency, *first_hour);
        match admission::admit_and_commit(tx, &admission, &prices).await? {
            Committed::Done => {
                idempotency::committed(recorded);
                Ok(Some(deployed))
            }
            Committed::AddressTaken => Ok(None),
            Committed::NoStock => Err(self.no_stock(&written).await),
            Committed::Refused { balance, burn } => Err(refused(
                &self.context,
                *currency,
                balance,
                &burn,
                *first_hour,
            )),
        }
    }

    /// The plan's writes in a new transaction: the custom image held, the instance (or a hold's taken
    /// over), its rules, attached and new volumes, its event, job, labels and lease. A deploy that takes
    /// over rows others change checks the account's commitment first (402).
    async fn write<'c>(&self, caller: &Caller, plan: DeployPlan<'c>) -> Result<(Tx, Written<'c>)> {
        let takes_over = plan.takes_over();
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
        let written = Written {
            model,
            row,
            data: existing.into_iter().chain(created).collect(),
            currency,
            first_hour,
            held: hold.is_some(),
            takes_over,
            now,
        };
        Ok((tx, written))
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
        let address = self.candidate_address(row);
        let admission = admission_of(row, currency, address.as_deref(), now);
        let admitted = admission::admit(tx, &admission).await?;
        require_commitments_cover(&self.context, &admitted.commitments, currency, first_hour)?;
        if row.public_ip && !admitted.address_taken {
            // Taken meanwhile, or the pool is nearly full: searched for another.
            self.take_address(tx, row, false).await?;
        }
        Ok(admitted.gpus_taken)
    }

    /// An address of the region's pool for the instance to try first, when it asked for one.
    fn candidate_address(&self, row: &InstanceRow) -> Option<String> {
        row.public_ip
            .then(|| candidate_address(self.config(), &row.region))
            .flatten()
            .map(|address| address.to_string())
    }

    /// The 503 for a deploy whose GPUs were not free, saying where the model has them.
    async fn no_stock(&self, written: &Written<'_>) -> Error {
        let row = &written.row;
        match self
            .stock_message(&row.region, written.model, row.gpu_count as u32)
            .await
        {
            Ok(message) => Error::GpuUnavailable(message),
            Err(e) => e,
        }
    }
}

/// What a plain deploy of `row` asks the store for once its instance is written.
fn admission_of<'r>(
    row: &'r InstanceRow,
    currency: Currency,
    address: Option<&'r str>,
    now: i64,
) -> Admission<'r> {
    Admission {
        account_id: &row.account_id,
        currency: currency.as_str(),
        instance_id: &row.id,
        region: &row.region,
        gpu_model: &row.gpu_model,
        gpu_count: row.gpu_count,
        address,
        now,
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
