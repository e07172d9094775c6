//! `barrack`, the command-line client of the Barrack API.
//!
//! The command tree is clap's derive; [`command`] adds to each command's help the API operations it calls,
//! from [`OPERATIONS`], so the help and the OpenAPI coverage test read one table.

mod commands;
mod config;
mod error;
mod operations;
mod output;
mod wait;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::{
    Ctx, account, admin, ai, api_keys, balance, billing, catalog, completions, configure, deposits,
    events, firewalls, health, images, instances, login, scripts, snapshots, ssh_keys,
    transactions, volumes, webhooks,
};
use crate::config::Settings;
pub use crate::error::{CliError, EXIT_CODES_HELP, exit};
pub use crate::operations::{OPERATIONS, Operation};
use crate::output::{Format, Output};

/// Options every command takes, listed apart from the command's own.
const GLOBAL: &str = "Global options";

#[derive(Debug, Parser)]
#[command(
    name = "barrack",
    version,
    about = "Manage Barrack GPU cloud resources from the command line",
    long_about = "Manage Barrack GPU cloud resources from the command line.\n\n\
                  Connection settings come from the profile (`barrack configure`), overridden by \
                  BARRACK_API_URL and BARRACK_API_KEY.",
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Profile of the config file to use [default: default]
    #[arg(long, global = true, env = "BARRACK_PROFILE", value_name = "NAME", help_heading = GLOBAL)]
    profile: Option<String>,
    /// Output format
    #[arg(short, long, global = true, value_enum, default_value_t = Format::Table, help_heading = GLOBAL)]
    output: Format,
    /// Print only identifiers, one per line (list and create commands); a secret shown only once, such as
    /// a new API key's, is printed instead of its id
    #[arg(short, long, global = true, conflicts_with = "output", help_heading = GLOBAL)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store the API URL and key in a profile
    #[command(after_help = "Examples:\n  \
        barrack configure\n  \
        barrack configure --profile staging --api-url https://barrack.example.com --api-key sk_...")]
    Configure(configure::Args),
    /// Sign in with email and password, create an API key, and save it in a profile
    #[command(after_help = "Examples:\n  \
        barrack login --email ada@example.com\n  \
        barrack login --email ada@example.com --api-url http://127.0.0.1:8080/api/ --profile local\n  \
        printf '%s\\n' \"$PASSWORD\" | barrack login --email ada@example.com --key-name laptop")]
    Login(login::Args),
    /// Regions, GPU models, stock, OS images and prices
    #[command(subcommand, after_help = "Example:\n  barrack catalog regions")]
    Catalog(catalog::Command),
    /// Deploy GPU instances and manage their lifecycle, addresses, rules and SSH sessions
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack instances list\n  \
        barrack instances deploy --name trainer --gpu-model H100-SXM5-80GB --region FINLAND-1 \\\n    \
        --image 'Ubuntu 24.04 + CUDA 12.8 Open + Docker' --ssh-key laptop --wait"
    )]
    Instances(instances::Command),
    /// Import, generate and delete the SSH keys instances are deployed with
    #[command(
        subcommand,
        name = "ssh-keys",
        after_help = "Example:\n  barrack ssh-keys import --name laptop --file ~/.ssh/id_ed25519.pub"
    )]
    SshKeys(ssh_keys::Command),
    /// Startup scripts run on instances at first boot
    #[command(
        subcommand,
        after_help = "Example:\n  barrack scripts create --name setup --file setup.sh"
    )]
    Scripts(scripts::Command),
    /// AI chat: hosted models, billed per token from your credits
    #[command(
        subcommand,
        after_help = "Example:\n  barrack ai chat --model barrack-sim-small 'What is NVLink?'"
    )]
    Ai(ai::Command),
    /// Block storage volumes: create, grow, clone, delete, attach to instances
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack volumes create --name datasets --size 500 --region FINLAND-1 --type NVMe\n  \
        barrack volumes attach --instance BRK-A1B2C3D BRK-A1B2C3V"
    )]
    Volumes(volumes::Command),
    /// Firewalls: rule sets attached to instances of their region
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack firewalls create --name web --region FINLAND-1 --rule ingress:tcp:443\n  \
        barrack firewalls attach BRK-A1B2C3F BRK-A1B2C3D"
    )]
    Firewalls(firewalls::Command),
    /// Snapshots of running instances, and restoring them into new instances
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack snapshots create --instance BRK-A1B2C3D --name nightly\n  \
        barrack snapshots restore BRK-A1B2C3S --wait"
    )]
    Snapshots(snapshots::Command),
    /// Custom images made from snapshots, to deploy instances from
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack images create --snapshot BRK-A1B2C3S --name golden\n  \
        barrack instances deploy --name copy --gpu-model H100-SXM5-80GB --region FINLAND-1 \\\n    \
        --image golden --ssh-key laptop --wait"
    )]
    Images(images::Command),
    /// List the account's events: instance state changes and who caused them; --follow streams them
    #[command(
        after_help = "Examples:\n  barrack events\n  barrack events --page 2 --limit 100 -o json\n  \
        barrack events --follow\n  barrack events --follow --after evt-0123456789abcdef -o json"
    )]
    Events(events::Args),
    /// Endpoints the account's events are sent to, signed; their deliveries and replays
    #[command(
        subcommand,
        after_help = "Examples:\n  \
        barrack webhooks create --url http://hooks.example.com/barrack --event-type 'instance.*'\n  \
        barrack webhooks deliveries whk-0123456789abcdef"
    )]
    Webhooks(webhooks::Command),
    /// Show the credit balance
    #[command(after_help = "Examples:\n  barrack balance\n  barrack balance -o json")]
    Balance(balance::Args),
    /// List credit ledger entries
    #[command(after_help = "Examples:\n  \
        barrack transactions --type grant\n  \
        barrack transactions --from 2025-01-01T00:00:00Z --limit 100 -o json")]
    Transactions(transactions::Args),
    /// Buy credits: open a deposit, pay it at its checkout; it completes when the payment arrives
    #[command(
        subcommand,
        after_help = "Examples:\n  barrack deposits create --amount 25.00\n  barrack deposits list"
    )]
    Deposits(deposits::Command),
    /// Billing records per instance, volume and snapshot, and totals over a time range
    #[command(subcommand, after_help = "Example:\n  barrack billing instances")]
    Billing(billing::Command),
    /// Create, list and revoke API keys
    #[command(
        subcommand,
        name = "api-keys",
        after_help = "Example:\n  barrack api-keys list"
    )]
    ApiKeys(api_keys::Command),
    /// Sign up, sign in, and the billing profile
    #[command(subcommand, after_help = "Example:\n  barrack account show")]
    Account(account::Command),
    /// Operator commands: accounts, credits, GPU capacity, jobs, simulated faults
    #[command(subcommand, after_help = "Example:\n  barrack admin users")]
    Admin(admin::Command),
    /// Check that the API answers
    #[command(after_help = "Example:\n  barrack health")]
    Health,
    /// Print a shell completion script
    #[command(after_help = "Examples:\n  \
        barrack completions bash > ~/.local/share/bash-completion/completions/barrack\n  \
        barrack completions zsh > \"${fpath[1]}/_barrack\"\n  \
        barrack completions fish > ~/.config/fish/completions/barrack.fish")]
    Completions(completions::Args),
}

/// The command tree, with each command's API operations appended to its help.
pub fn command() -> clap::Command {
    annotate(Cli::command(), &mut Vec::new())
}

fn annotate(mut cmd: clap::Command, path: &mut Vec<String>) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .collect();
    for name in names {
        path.push(name.clone());
        cmd = cmd.mut_subcommand(&name, |sub| annotate(sub, path));
        path.pop();
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match operations::help_for(&path) {
        Some(api) => {
            let help = cmd
                .get_after_help()
                .map(|h| format!("{h}\n\n"))
                .unwrap_or_default();
            cmd.after_help(format!("{help}{api}"))
        }
        None => cmd,
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let (format, quiet) = (cli.output, cli.quiet);
    let result = runtime.block_on(run(cli)).and_then(|output| {
        match output.print(format, quiet) {
            // A reader that stopped early (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.map_err(CliError::from)?,
        }
        // What succeeded is printed; what failed is reported as an error, with its exit code.
        output.into_failure().map_or(Ok(()), Err)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", output::printable(&e.to_string(), true));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<Output, CliError> {
    let profile = cli.profile.as_deref();
    let format = cli.output;
    let progress = !cli.quiet && matches!(cli.output, Format::Table);
    let ctx = || {
        Settings::resolve(profile, config::process_env)
            .and_then(Ctx::new)
            .map(|ctx| Ctx { progress, ..ctx })
    };
    match cli.command {
        Command::Configure(args) => configure::run(args, profile),
        Command::Login(args) => login::run(args, profile).await,
        Command::Completions(args) => completions::run(args, command()),
        Command::Catalog(command) => catalog::run(command, &ctx()?).await,
        Command::Instances(command) => instances::run(command, &ctx()?).await,
        Command::SshKeys(command) => ssh_keys::run(command, &ctx()?).await,
        Command::Scripts(command) => scripts::run(command, &ctx()?).await,
        Command::Ai(command) => ai::run(command, &ctx()?, format).await,
        Command::Volumes(command) => volumes::run(command, &ctx()?).await,
        Command::Firewalls(command) => firewalls::run(command, &ctx()?).await,
        Command::Snapshots(command) => snapshots::run(command, &ctx()?).await,
        Command::Images(command) => images::run(command, &ctx()?).await,
        Command::Events(args) => events::run(args, &ctx()?, format, cli.quiet).await,
        Command::Webhooks(command) => webhooks::run(command, &ctx()?).await,
        Command::Balance(args) => balance::run(args, &ctx()?).await,
        Command::Transactions(args) => transactions::run(args, &ctx()?).await,
        Command::Deposits(command) => deposits::run(command, &ctx()?).await,
        Command::Billing(command) => billing::run(command, &ctx()?).await,
        Command::ApiKeys(command) => api_keys::run(command, &ctx()?).await,
        Command::Account(command) => account::run(command, &ctx()?).await,
        Command::Admin(command) => admin::run(command, &ctx()?).await,
        Command::Health => health::run(&ctx()?).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        command().debug_assert();
    }

    /// Every command's `--help` shows how to use it.
    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: String) {
            let help = cmd
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Example"),
                "`{path}` has no example in its help"
            );
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                walk(sub, format!("{path} {}", sub.get_name()));
            }
        }
        let cmd = command();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, format!("barrack {}", sub.get_name()));
        }
        assert!(
            cmd.get_after_help()
                .unwrap()
                .to_string()
                .contains("Exit codes")
        );
    }

    /// A command's own option with the id of a global one (`--output`) silently replaces it there, so
    /// `-o json` would stop working on that command.
    #[test]
    fn no_command_shadows_a_global_option() {
        fn walk(cmd: &clap::Command, globals: &[String], path: String) {
            for arg in cmd.get_arguments().filter(|a| !a.is_global_set()) {
                assert!(
                    !globals.iter().any(|g| g == arg.get_id().as_str()),
                    "`{path}` has its own --{}, hiding the global option",
                    arg.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                walk(sub, globals, format!("{path} {}", sub.get_name()));
            }
        }
        let cmd = Cli::command();
        let globals: Vec<String> = cmd
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(globals.contains(&"output".to_string()));
        for sub in cmd.get_subcommands() {
            walk(sub, &globals, format!("barrack {}", sub.get_name()));
        }
    }

    #[test]
    fn help_lists_the_api_operations_of_a_command() {
        let mut cmd = command();
        let update = cmd
            .find_subcommand_mut("account")
            .unwrap()
            .find_subcommand_mut("update")
            .unwrap();
        let help = update.render_long_help().to_string();
        assert!(help.contains("PATCH /api/account/profile/ (update_profile)"));
        assert!(help.contains("PUT /api/account/profile/ (replace_profile, with --replace)"));
    }
}
