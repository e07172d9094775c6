//! `barrack admin`: operator commands. They need an operator account's key; others get exit code 3.

use barrack_api::account::{AdminCreateUser, GrantCredits};
use barrack_api::catalog::{CapacityList, CapacitySetting, SetCapacityRequest};
use barrack_api::simulation::ScenarioSpec;
use barrack_api::{Currency, PageQuery, Tier};
use clap::{ArgGroup, Subcommand};
use rust_decimal::Decimal;

use super::account::profile_output;
use super::{Ctx, Output, currency_parser, read_password, tier_parser};
use crate::error::CliError;
use crate::output::{Table, View, money, or_dash, yes_no};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List accounts
    #[command(
        after_help = "Examples:\n  barrack admin users\n  barrack admin users --page 2 --limit 100 -q"
    )]
    Users {
        /// Page number, from 1
        #[arg(long)]
        page: Option<u32>,
        /// Accounts per page, 1 to 100 [default: 20]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Create an account (the password is read from the terminal or stdin)
    #[command(after_help = "Examples:\n  \
        barrack admin create-user --email ada@example.com --name 'Ada Lovelace'\n  \
        printf '%s\\n' \"$PASSWORD\" | barrack admin create-user --email ops@example.com --name Ops --admin -q")]
    CreateUser {
        /// Sign-in email address
        #[arg(long)]
        email: String,
        /// Full name
        #[arg(long)]
        name: String,
        /// Make the account an operator
        #[arg(long)]
        admin: bool,
    },
    /// Create an API key for an account; its secret is shown only once (alone with -q)
    #[command(after_help = "Example:\n  \
        barrack admin create-key --user BRK-A1B2C3U --name ci --tier advanced\n  \
        barrack admin create-key --user ada@example.com --name ci --tier legacy")]
    CreateKey {
        /// The account: its id or its sign-in email
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
        /// A name to recognise the key by
        #[arg(long)]
        name: String,
        /// The tier requests made with the key act in
        #[arg(long, value_parser = tier_parser())]
        tier: Tier,
    },
    /// Disable an account: its sessions and API keys are revoked and it can no longer sign in
    #[command(after_help = "Example:\n  barrack admin disable-user --user BRK-...")]
    DisableUser {
        /// The account: its id or its sign-in email
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
    },
    /// Enable a disabled account again (its revoked API keys stay revoked)
    #[command(after_help = "Example:\n  barrack admin enable-user --user BRK-...")]
    EnableUser {
        /// The account: its id or its sign-in email
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
    },
    /// Grant credits to an account (a ledger entry of type grant)
    #[command(after_help = "Example:\n  \
        barrack admin grant-credits --user BRK-A1B2C3U --amount 25.00 --currency USD --note 'trial'")]
    GrantCredits {
        /// The account: its id or its sign-in email
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
        /// Exact decimal amount, e.g. 25.00
        #[arg(long, allow_negative_numbers = true, value_parser = barrack_api::decimal::parse)]
        amount: Decimal,
        /// Currency of the credits
        #[arg(long, value_parser = currency_parser())]
        currency: Currency,
        /// Shown in the account's transactions
        #[arg(long)]
        note: Option<String>,
    },
    /// Complete a pending deposit: credit the account as a confirmed payment would (once)
    #[command(after_help = "Example:\n  barrack admin complete-deposit BRK-A1B2C3P")]
    CompleteDeposit {
        /// The deposit's id (BRK-...P)
        id: String,
    },
    /// Show GPU capacity per region and model
    #[command(after_help = "Example:\n  barrack admin capacity")]
    Capacity,
    /// List pending, running and failed (dead-lettered) jobs: the operations behind instance states
    #[command(
        after_help = "Examples:\n  barrack admin jobs\n  barrack admin jobs --status failed --limit 100 -o json"
    )]
    Jobs {
        /// Only jobs in this state: pending, running or failed
        #[arg(long)]
        status: Option<String>,
        /// Page number, from 1
        #[arg(long)]
        page: Option<u32>,
        /// Jobs per page, 1 to 100 [default: 20]
        #[arg(long)]
        limit: Option<u32>,
    },
    /// List the machines instances run on: GPUs, GPUs in use, and whether each is lost
    #[command(after_help = "Examples:\n  barrack admin hosts\n  barrack admin hosts -o json")]
    Hosts,
    /// Arm a fault in the simulated data centre, to rehearse retries and the ERROR path
    #[command(
        name = "inject-fault",
        after_help = "Examples:\n  \
        barrack admin inject-fault --kind fail_nth --operation create_instance --nth 1 --permanent\n  \
        barrack admin inject-fault --kind hang --operation stop_instance --count 2\n  \
        barrack admin inject-fault --kind lose_host --host finland-1-h100-sxm5-80gb-01\n  \
        barrack admin inject-fault --json '{\"kind\": \"fail_nth\", \"operation\": \"start_instance\", \"nth\": 2}'\n\n\
        Operations: create_instance, start_instance, stop_instance, reboot_instance, hibernate_instance,\n\
        restore_instance, delete_instance, create_volume, delete_volume, resize_volume, clone_volume,\n\
        attach_volume, detach_volume, create_snapshot, delete_snapshot, apply_security_rules"
    )]
    InjectFault(FaultArgs),
    /// Move the simulated clock forward and bill the minutes that passed (simulation mode)
    #[command(after_help = "Example:\n  barrack admin advance-clock --minutes 43200   # a month")]
    AdvanceClock {
        /// Minutes to move forward (1 to 525600)
        #[arg(long)]
        minutes: u32,
    },
    /// Reset the simulated installation to the state of a first start, for test suites: every account but
    /// the operators' goes with everything it had; operators and their keys stay (simulation mode)
    #[command(after_help = "Example:\n  barrack admin reset")]
    Reset,
    /// List the scenarios in force in the simulated data centre
    #[command(
        after_help = "Examples:\n  barrack admin scenarios\n  barrack admin scenarios -o json"
    )]
    Scenarios,
    /// Apply a scenario to the simulated data centre: GPU scarcity, a region's outage, a slow host
    #[command(
        name = "add-scenario",
        after_help = "Examples:\n  \
        barrack admin add-scenario --kind gpu_scarcity --region FINLAND-1 --gpu-model H100-SXM5-80GB --available 2\n  \
        barrack admin add-scenario --kind region_outage --region CANADA-1\n  \
        barrack admin add-scenario --kind slow_host --host finland-1-h100-sxm5-80gb-01 --factor 10\n  \
        barrack admin add-scenario --json '{\"kind\": \"region_outage\", \"region\": \"FINLAND-2\"}'"
    )]
    AddScenario(ScenarioArgs),
    /// End a scenario, giving back what it held
    #[command(
        name = "remove-scenario",
        after_help = "Example:\n  barrack admin remove-scenario BRK-A1B2C3E"
    )]
    RemoveScenario {
        /// The scenario's id (see `barrack admin scenarios`)
        id: String,
    },
    /// Set the GPU capacity of regions and models; others stay as they are
    #[command(after_help = "Example:\n  \
        barrack admin set-capacity CANADA-1/RTX-A6000=16 FINLAND-1/H100-SXM5-80GB=64")]
    SetCapacity {
        /// REGION/GPU-MODEL=TOTAL, one or more
        #[arg(required = true, value_name = "REGION/MODEL=TOTAL", value_parser = parse_setting)]
        settings: Vec<CapacitySetting>,
    },
}

/// A fault as the API takes it: whole, as JSON, or from flags.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("fault").required(true).args(["json", "kind"])))]
pub struct FaultArgs {
    /// The fault as the API's JSON object
    #[arg(long, value_parser = parse_json, conflicts_with = "kind")]
    json: Option<serde_json::Value>,
    /// What goes wrong: the nth call fails, calls hang, or a host is lost
    #[arg(long, value_parser = ["fail_nth", "hang", "lose_host"])]
    kind: Option<String>,
    /// The driver operation the fault hits (fail_nth, hang)
    #[arg(long, requires = "kind")]
    operation: Option<String>,
    /// Which call from now fails, 1 for the next (fail_nth)
    #[arg(long, requires = "kind")]
    nth: Option<u32>,
    /// Fail for good rather than transiently, so no retry helps (fail_nth)
    #[arg(long, requires = "kind")]
    permanent: bool,
    /// How many calls hang [default: 1] (hang)
    #[arg(long, requires = "kind")]
    count: Option<u32>,
    /// The simulated host to lose (lose_host)
    #[arg(long, requires = "kind")]
    host: Option<String>,
}

impl FaultArgs {
    /// The request body; the API checks that the fields fit the kind.
    fn body(self) -> serde_json::Value {
        if let Some(json) = self.json {
            return json;
        }
        let mut body = serde_json::Map::new();
        body.insert("kind".into(), self.kind.into());
        if let Some(operation) = self.operation {
            body.insert("operation".into(), operation.into());
        }
        if let Some(nth) = self.nth {
            body.insert("nth".into(), nth.into());
        }
        if self.permanent {
            body.insert("permanent".into(), true.into());
        }
        if let Some(count) = self.count {
            body.insert("count".into(), count.into());
        }
        if let Some(host) = self.host {
            body.insert("host".into(), host.into());
        }
        body.into()
    }
}

/// A scenario as the API takes it: whole, as JSON, or from flags.
#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("scenario").required(true).args(["json", "kind"])))]
pub struct ScenarioArgs {
    /// The scenario as the API's JSON object
    #[arg(long, value_parser = parse_json, conflicts_with = "kind")]
    json: Option<serde_json::Value>,
    /// What happens: fewer GPUs in stock, a region down, or a host slow
    #[arg(long, value_parser = ["gpu_scarcity", "region_outage", "slow_host"])]
    kind: Option<String>,
    /// The region (gpu_scarcity, region_outage)
    #[arg(long, requires = "kind")]
    region: Option<String>,
    /// The GPU model; every model of the region without it (gpu_scarcity)
    #[arg(long, requires = "kind")]
    gpu_model: Option<String>,
    /// GPUs left in stock (gpu_scarcity)
    #[arg(long, requires = "kind")]
    available: Option<u32>,
    /// The simulated host (slow_host)
    #[arg(long, requires = "kind")]
    host: Option<String>,
    /// How many times slower the host's machines are, 1 to 1000 (slow_host)
    #[arg(long, requires = "kind")]
    factor: Option<f64>,
}

impl ScenarioArgs {
    /// The request body; the API checks that the fields fit the kind.
    fn body(self) -> serde_json::Value {
        if let Some(json) = self.json {
            return json;
        }
        let mut body = serde_json::Map::new();
        body.insert("kind".into(), self.kind.into());
        let fields = [
            ("region", self.region.map(serde_json::Value::from)),
            ("gpu_model", self.gpu_model.map(serde_json::Value::from)),
            ("available", self.available.map(serde_json::Value::from)),
            ("host", self.host.map(serde_json::Value::from)),
            ("factor", self.factor.map(serde_json::Value::from)),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                body.insert(name.into(), value);
            }
        }
        body.into()
    }
}

fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("it must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    execute(command, ctx).await.map_err(|e| match e.status() {
        Some(403) => e.with_hint("admin commands need the key of an operator account"),
        _ => e,
    })
}

async fn execute(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Users { page, limit } => {
            let data = ctx
                .call(client.admin_users(&PageQuery { page, limit }))
                .await?
                .data;
            let mut table = Table::new(
                &[
                    "ID", "EMAIL", "NAME", "CURRENCY", "COMPLETE", "OPERATOR", "DISABLED",
                    "CREATED",
                ],
                "No accounts.",
            );
            for user in &data.users {
                let u = &user.profile;
                table.row([
                    u.id.clone(),
                    u.email.clone(),
                    u.name.clone(),
                    u.currency.to_string(),
                    yes_no(u.profile_complete),
                    yes_no(u.admin),
                    yes_no(user.disabled),
                    u.created_at.clone(),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.users.iter().map(|u| u.profile.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::CreateUser { email, name, admin } => {
            let password = read_password()?;
            let request = AdminCreateUser {
                email,
                password,
                name,
                admin,
            };
            let data = ctx.call(client.admin_create_user(&request)).await?.data;
            Ok(profile_output(data))
        }
        Command::CreateKey { user, name, tier } => {
            let data = ctx
                .call(client.admin_create_api_key(&user, &name, tier))
                .await?
                .data;
            let view = View::Fields(vec![
                ("ID", data.key.id.clone()),
                ("Account", data.user_id.clone()),
                ("Name", data.key.name.clone()),
                ("Tier", data.key.tier.to_string()),
                ("Key", data.key.key.clone()),
            ]);
            // `-q` prints the secret, which is shown only this once; the id can be listed any time.
            Ok(Output::new(&data, view)
                .ids([data.key.key.clone()])
                .notice("Store the key now: it is not shown again."))
        }
        Command::DisableUser { user } => {
            let data = ctx.call(client.admin_disable_user(&user)).await?.data;
            Ok(access_output(data))
        }
        Command::EnableUser { user } => {
            let data = ctx.call(client.admin_enable_user(&user)).await?.data;
            Ok(access_output(data))
        }
        Command::GrantCredits {
            user,
            amount,
            currency,
            note,
        } => {
            let grant = GrantCredits {
                amount,
                currency,
                note,
            };
            let data = ctx
                .call(client.admin_grant_credits(&user, &grant))
                .await?
                .data;
            let view = View::Text(format!(
                "Granted {} {} to {user} ({}); balance now {} {}",
                money(data.amount),
                data.currency,
                data.id,
                money(data.balance_after),
                data.currency
            ));
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
        Command::CompleteDeposit { id } => {
            let data = ctx.call(client.admin_complete_deposit(&id)).await?.data;
            Ok(super::deposits::deposit_output(&data))
        }
        Command::Capacity => {
            let data = ctx.call(client.admin_capacity()).await?.data;
            Ok(capacity_output(data))
        }
        Command::Jobs {
            status,
            page,
            limit,
        } => {
            let query = barrack_api::instances::JobQuery {
                page,
                limit,
                status,
            };
            let data = ctx.call(client.admin_jobs_page(&query)).await?.data;
            let mut table = Table::new(
                &[
                    "ID",
                    "KIND",
                    "RESOURCE",
                    "STATUS",
                    "ATTEMPTS",
                    "RUN AFTER",
                    "LAST ERROR",
                ],
                "No pending, running or failed jobs.",
            );
            for j in &data.jobs {
                table.row([
                    j.id.clone(),
                    j.kind.clone(),
                    j.resource_id.clone(),
                    j.status.clone(),
                    format!("{}/{}", j.attempts, j.max_attempts),
                    j.run_after.clone(),
                    or_dash(j.last_error.as_ref()),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.jobs.iter().map(|j| j.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Hosts => {
            let data = ctx.call(client.admin_hosts()).await?.data;
            let mut table = Table::new(
                &[
                    "NAME",
                    "REGION",
                    "GPU MODEL",
                    "GPUS",
                    "USED",
                    "FREE",
                    "LOST",
                ],
                "No hosts.",
            );
            for h in &data.hosts {
                table.row([
                    h.name.clone(),
                    h.region.clone(),
                    or_dash(h.gpu_model.as_ref()),
                    h.gpus.to_string(),
                    h.gpus_used.to_string(),
                    h.gpus_free.to_string(),
                    if h.lost { "yes" } else { "no" }.to_string(),
                ]);
            }
            let names: Vec<String> = data.hosts.iter().map(|h| h.name.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(names))
        }
        Command::InjectFault(args) => {
            let data = ctx
                .call(client.admin_inject_fault(&args.body()))
                .await?
                .data;
            let view = View::Text(format!("Injected fault {}", data.fault));
            Ok(Output::new(&data, view))
        }
        Command::AdvanceClock { minutes } => {
            let data = ctx.call(client.admin_advance_clock(minutes)).await?.data;
            let view = View::Text(format!(
                "Clock now {}; {} billing periods charged",
                data.now, data.periods_billed
            ));
            Ok(Output::new(&data, view))
        }
        Command::Reset => {
            let data = ctx.call(client.admin_reset()).await?.data;
            let view = View::Text(format!(
                "Reset to a first start; {} operator accounts kept with their keys",
                data.operators_kept
            ));
            Ok(Output::new(&data, view))
        }
        Command::Scenarios => {
            let data = ctx.call(client.admin_scenarios()).await?.data;
            let mut table = Table::new(&["ID", "SCENARIO", "SINCE"], "No scenarios.");
            for s in &data.scenarios {
                table.row([
                    s.id.clone(),
                    describe_scenario(&s.spec),
                    s.created_at.clone(),
                ]);
            }
            let ids: Vec<String> = data.scenarios.iter().map(|s| s.id.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::AddScenario(args) => {
            let data = ctx
                .call(client.admin_add_scenario_json(&args.body()))
                .await?
                .data;
            let view = View::Text(format!(
                "Scenario {}: {}",
                data.id,
                describe_scenario(&data.spec)
            ));
            Ok(Output::new(&data, view).ids(vec![data.id.clone()]))
        }
        Command::RemoveScenario { id } => {
            let data = ctx.call(client.admin_remove_scenario(&id)).await?.data;
            let view = View::Text(format!(
                "Removed scenario {}: {}",
                data.id,
                describe_scenario(&data.spec)
            ));
            Ok(Output::new(&data, view))
        }
        Command::SetCapacity { settings } => {
            let request = SetCapacityRequest { capacity: settings };
            let data = ctx.call(client.admin_set_capacity(&request)).await?.data;
            Ok(capacity_output(data))
        }
    }
}

fn describe_scenario(spec: &ScenarioSpec) -> String {
    match spec {
        ScenarioSpec::GpuScarcity {
            region,
            gpu_model,
            available,
        } => format!(
            "{available} {} GPUs left in {region}",
            gpu_model.as_deref().unwrap_or("of each model's")
        ),
        ScenarioSpec::RegionOutage { region } => format!("{region} is down"),
        ScenarioSpec::SlowHost { host, factor } => format!("{host} is {factor}x slower"),
    }
}

fn capacity_output(data: CapacityList) -> Output {
    let mut table = Table::new(
        &[
            "REGION",
            "GPU MODEL",
            "TOTAL",
            "ALLOCATED",
            "LOST",
            "AVAILABLE",
        ],
        "No GPU capacity.",
    );
    for c in &data.capacity {
        table.row([
            c.region.clone(),
            c.gpu_model.clone(),
            c.total.to_string(),
            c.allocated.to_string(),
            c.lost.to_string(),
            c.available.to_string(),
        ]);
    }
    Output::new(&data, View::Table(table))
}

/// `REGION/GPU-MODEL=TOTAL`: region and model names hold neither `/` nor `=`.
fn parse_setting(text: &str) -> Result<CapacitySetting, String> {
    let malformed = || format!("'{text}' is not REGION/MODEL=TOTAL, e.g. CANADA-1/RTX-A6000=16");
    let (place, total) = text.split_once('=').ok_or_else(malformed)?;
    let (region, gpu_model) = place.split_once('/').ok_or_else(malformed)?;
    if region.is_empty() || gpu_model.is_empty() {
        return Err(malformed());
    }
    let total = total
        .trim()
        .parse()
        .map_err(|_| format!("'{total}' is not a whole number of GPUs"))?;
    Ok(CapacitySetting {
        region: region.trim().to_string(),
        gpu_model: gpu_model.trim().to_string(),
        total,
    })
}

/// Whether an account may authenticate, and what a disable revoked.
fn access_output(data: barrack_api::account::AccountAccess) -> Output {
    let view = View::Fields(vec![
        ("Account", data.user_id.clone()),
        ("Disabled", yes_no(data.disabled)),
        ("Sessions revoked", data.sessions_revoked.to_string()),
        ("API keys revoked", data.api_keys_revoked.to_string()),
    ]);
    Output::new(&data, view).ids([data.user_id.clone()])
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::{FaultArgs, parse_setting};

    #[derive(Parser)]
    struct Fault {
        #[command(flatten)]
        args: FaultArgs,
    }

    fn fault(args: &[&str]) -> Result<serde_json::Value, clap::Error> {
        let argv = std::iter::once("inject-fault").chain(args.iter().copied());
        Fault::try_parse_from(argv).map(|f| f.args.body())
    }

    #[test]
    fn faults_come_from_flags_or_json() {
        assert_eq!(
            fault(&[
                "--kind",
                "fail_nth",
                "--operation",
                "create_instance",
                "--nth",
                "1",
                "--permanent"
            ])
            .unwrap(),
            json!({"kind": "fail_nth", "operation": "create_instance", "nth": 1, "permanent": true})
        );
        assert_eq!(
            fault(&["--json", r#"{"kind": "lose_host", "host": "h1"}"#]).unwrap(),
            json!({"kind": "lose_host", "host": "h1"})
        );
        assert!(fault(&[]).is_err(), "a fault is required");
        assert!(fault(&["--json", "{}", "--kind", "hang"]).is_err());
        assert!(fault(&["--json", "[1]"]).is_err());
        assert!(fault(&["--kind", "explode"]).is_err());
    }

    #[test]
    fn an_account_is_named_with_user_or_email() {
        use clap::Parser;
        for flag in ["--user", "--email"] {
            let parsed = crate::Cli::try_parse_from([
                "barrack",
                "admin",
                "grant-credits",
                flag,
                "ana@example.com",
                "--amount",
                "1.00",
                "--currency",
                "USD",
            ]);
            assert!(parsed.is_ok(), "{flag}: {:?}", parsed.err());
        }
    }

    #[test]
    fn capacity_settings_parse() {
        let s = parse_setting("FINLAND-1/H100-SXM5-80GB=64").unwrap();
        assert_eq!(
            (s.region.as_str(), s.gpu_model.as_str(), s.total),
            ("FINLAND-1", "H100-SXM5-80GB", 64)
        );
        assert!(parse_setting("FINLAND-1=64").is_err());
        assert!(parse_setting("/L40=1").is_err());
        assert!(parse_setting("CANADA-1/L40=-1").is_err());
    }
}
