//! `barrackd`: the Barrack server.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use barrack_api::{Currency, Tier};
use barrack_core::clock::{Clock, OffsetClock, format_ms};
use barrack_core::config::{Config, LogFormat, barrack_env};
use barrack_server::app::{
    StartOptions, driver, open_installation, open_installation_database, open_store, services,
};
use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

// Requests allocate and free many small buffers from every worker thread (rows, JSON, responses);
// mimalloc's per-thread pages serve them with far less work than the system allocator's arenas
// (.cargo/config.toml builds it to commit arena memory as it is used, not up front).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "barrackd", version, about = "The Barrack GPU cloud server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArgs {
    /// Configuration file (TOML). Default: barrack.toml in the data directory, if present.
    #[arg(long, env = "BARRACK_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory for the SQLite database, the server secret and the first admin credentials.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://...); default: SQLite in the data directory.
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (SQLite and the simulated data centre unless configured otherwise).
    #[command(
        after_help = "Examples:\n  barrackd serve\n  barrackd serve --listen 0.0.0.0:8080 --data-dir /var/lib/barrack\n  BARRACK_DATABASE_URL=postgres://barrack@db/barrack barrackd serve"
    )]
    Serve {
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Export or import the whole state of an installation as one file.
    #[command(
        after_help = "Examples:\n  barrackd state export dev.jsonl --data-dir ~/.barrack\n  barrackd state import dev.jsonl --database-url postgres://barrack@db/barrack\n\nStop the servers on the database before an import."
    )]
    State {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        task: StateTask,
    },
    /// Operator tasks on the database.
    Admin {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(subcommand)]
        task: AdminTask,
    },
}

#[derive(Subcommand)]
enum AdminTask {
    /// Create an account.
    CreateUser {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Password (at least 8 characters).
        #[arg(long, env = "BARRACK_NEW_USER_PASSWORD")]
        password: String,
        /// Make the account an operator.
        #[arg(long)]
        admin: bool,
    },
    /// Create an API key for an account and print it.
    CreateKey {
        /// The account: its id or its email.
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = parse_tier, default_value = "legacy")]
        tier: Tier,
    },
    /// Add credits to an account (a grant entry in its ledger).
    GrantCredits {
        /// The account: its id or its email.
        #[arg(long, visible_alias = "email", value_name = "ID|EMAIL")]
        user: String,
        /// Exact decimal amount, e.g. 25.00.
        #[arg(long)]
        amount: String,
        #[arg(long, value_parser = parse_currency)]
        currency: Currency,
        #[arg(long)]
        note: Option<String>,
    },
    /// List accounts.
    ListUsers,
}

#[derive(Subcommand)]
enum StateTask {
    /// Write every table (accounts, resources, ledger, jobs, capacity, the simulated clock) to FILE
    /// (`-` for standard output): JSON lines that name the schema version.
    Export { file: PathBuf },
    /// Read a file written by `state export` into the database (an empty one is set up first). The
    /// servers on the database must be stopped; the file must be of this barrackd's schema version.
    Import {
        file: PathBuf,
        /// Discard what the database holds instead of refusing.
        #[arg(long)]
        replace: bool,
    },
}

/// The application name an import connects to PostgreSQL under, so it can tell its own sessions from a
/// server's.
const IMPORT_SESSION: &str = "barrackd-state-import";

fn parse_tier(s: &str) -> Result<Tier, String> {
    Tier::parse(s).ok_or_else(|| "tier must be legacy or advanced".into())
}

fn parse_currency(s: &str) -> Result<Currency, String> {
    Currency::parse(&s.to_uppercase()).ok_or_else(|| "currency must be USD, EUR or INR".into())
}

fn load_config(args: &ConfigArgs, listen: Option<String>) -> Result<Config> {
    let mut env = barrack_env();
    // Flags win over the environment and the file.
    let mut set = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            env.retain(|(k, _)| k != name);
            env.push((name.to_string(), v));
        }
    };
    set(
        "BARRACK_DATA_DIR",
        args.data_dir.as_ref().map(|p| p.display().to_string()),
    );
    set("BARRACK_DATABASE_URL", args.database_url.clone());
    set("BARRACK_LISTEN", listen);
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => {
            let defaults = Config::load(None, &env)?;
            Some(defaults.data_dir.join("barrack.toml")).filter(|p| p.exists())
        }
    };
    let config = Config::load(file.as_deref(), &env)?;
    barrack_core::network::check_pools(&config)?;
    Ok(config)
}

/// Log lines carry the server's clock, the one events, billing and every timestamp of the API use: real
/// time until an operator moves the simulated clock, then marked `sim:` (it runs ahead of real time).
struct ServerTime(Arc<OffsetClock>);

impl FormatTime for ServerTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let ms = self.0.now_ms();
        let seconds = format_ms(ms);
        let mark = if self.0.offset_ms() > 0 { "sim:" } else { "" };
        // format_ms gives whole seconds ("...:00Z"); logs want milliseconds.
        let whole = seconds.strip_suffix('Z').unwrap_or(&seconds);
        write!(w, "{mark}{whole}.{:03}Z", ms.rem_euclid(1000))
    }
}

fn init_logging(format: LogFormat, clock: Arc<OffsetClock>) {
    let filter =
        EnvFilter::try_from_env("BARRACK_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only for a person watching: a log file or a journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_timer(ServerTime(clock))
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`barrackd openapi | head`): nothing left to say to anyone.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("barrackd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether the error is a write to a pipe whose reader closed it.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Openapi => {
            // Not `print!`, which panics when the reader is gone.
            let mut out = std::io::stdout().lock();
            out.write_all(barrack_server::openapi::document_json().as_bytes())?;
            out.flush()?;
            Ok(())
        }
        Command::Serve { config, listen } => {
            let config = load_config(&config, listen)?;
            let clock = Arc::new(OffsetClock::default());
            init_logging(config.log_format, clock.clone());
            let running = barrack_server::start(StartOptions {
                clock: Some(clock as Arc<dyn Clock>),
                ..StartOptions::new(config)
            })
            .await?;
            if let Some(b) = &running.bootstrap {
                let path = running.services.config().data_dir.join("admin-credentials");
                println!("Created the operator account {} on first start.", b.email);
                println!(
                    "Its API key (shown once, also saved in {}):",
                    path.display()
                );
                println!();
                println!("    {}", b.key.key);
                println!();
            }
            println!("Barrack API listening on http://{}/api/", running.addr);
            running.serve_until_signal().await;
            Ok(())
        }
        Command::Migrate { config } => {
            let config = load_config(&config, None)?;
            init_logging(config.log_format, Arc::new(OffsetClock::default()));
            let store = open_store(&config).await?;
            println!(
                "Database is up to date ({} backend).",
                store.backend().name()
            );
            Ok(())
        }
        Command::State { config, task } => {
            let config = load_config(&config, None)?;
            state(config, task).await
        }
        Command::Admin { config, task } => {
            let config = load_config(&config, None)?;
            let store = open_installation(&config).await?;
            let (driver, _) = driver(&config)?;
            // The servers' clock: a simulating server runs at the offset stored in the database, and
            // what these commands write is dated by it too.
            let services = services(config, store, Arc::new(OffsetClock::default()), driver)?;
            services.simulation.catch_up().await.map_err(explain)?;
            admin(&services, task).await
        }
    }
}

async fn admin(services: &barrack_core::Services, task: AdminTask) -> Result<()> {
    let account = |user: String| async move {
        services
            .accounts
            .account_by_id_or_email(&user)
            .await
            .map_err(explain)
    };
    match task {
        AdminTask::CreateUser {
            email,
            name,
            password,
            admin,
        } => {
            let user = services
                .accounts
                .create_account(&email, &password, &name, admin)
                .await
                .map_err(explain)?;
            println!(
                "Created {} ({}){}",
                user.email,
                user.id,
                if admin { " as an operator" } else { "" }
            );
        }
        AdminTask::CreateKey { user, name, tier } => {
            let account = account(user).await?;
            let key = services
                .accounts
                .create_api_key(&account.id, &name, tier)
                .await
                .map_err(explain)?;
            println!("{}", key.key);
        }
        AdminTask::GrantCredits {
            user,
            amount,
            currency,
            note,
        } => {
            let account = account(user).await?;
            let amount = barrack_api::decimal::parse(&amount).map_err(anyhow::Error::msg)?;
            let entry = services
                .ledger
                .grant("cli", &account.id, amount, currency, note)
                .await
                .map_err(explain)?;
            println!(
                "Granted {} {}; balance now {} ({})",
                entry.amount, entry.currency, entry.balance_after, entry.id
            );
        }
        AdminTask::ListUsers => {
            let mut page = 1;
            loop {
                let request = barrack_api::PageRequest { page, limit: 100 };
                let (users, pagination) = services
                    .accounts
                    .list_accounts(request)
                    .await
                    .map_err(explain)?;
                // Not `println!`, which panics when the reader is gone (`| head`).
                let mut out = std::io::stdout().lock();
                if page == 1 && users.is_empty() {
                    writeln!(out, "No accounts in this database.")?;
                }
                for user in users {
                    let u = user.profile;
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}{}",
                        u.id,
                        u.email,
                        u.name,
                        if u.admin { "operator" } else { "user" },
                        if user.disabled { "\tdisabled" } else { "" }
                    )?;
                }
                out.flush()?;
                if page >= pagination.total_pages {
                    break;
                }
                page += 1;
            }
        }
    }
    Ok(())
}

async fn state(mut config: Config, task: StateTask) -> Result<()> {
    match task {
        StateTask::Export { file } => {
            let store = open_installation_database(&config).await?;
            let now = format_ms(barrack_core::clock::system_now_ms());
            let counts = if file.as_os_str() == "-" {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                store.export_state(&mut out, &now).await?
            } else {
                // Password and key hashes are in it: the owner's eyes only.
                let mut out = barrack_server::private_files::PrivateFile::create(&file)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                let counts = store.export_state(&mut out, &now).await?;
                out.commit()
                    .with_context(|| format!("cannot write {}", file.display()))?;
                counts
            };
            store.close().await;
            eprintln!(
                "Exported {} rows of {} tables (schema version {}).",
                counts.rows(),
                counts.tables.len(),
                barrack_store::state::schema_version()
            );
            Ok(())
        }
        StateTask::Import { file, replace } => {
            let input: Box<dyn std::io::BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::BufReader::new(std::io::stdin()))
            } else {
                let opened = std::fs::File::open(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                Box::new(std::io::BufReader::new(opened))
            };
            let url = config.database_url()?;
            if url.starts_with("postgres") && !url.contains("application_name=") {
                let joiner = if url.contains('?') { '&' } else { '?' };
                config.database_url =
                    Some(format!("{url}{joiner}application_name={IMPORT_SESSION}"));
            }
            let store = open_store(&config).await?;
            if let Some(others) = store.other_sessions(IMPORT_SESSION).await?
                && others > 0
            {
                store.close().await;
                anyhow::bail!(
                    "{others} other sessions are connected to this database (a running barrackd?): \
                     stop the servers on it before importing"
                );
            }
            let imported = store.import_state(input, replace).await;
            store.close().await;
            let counts = imported?;
            println!(
                "Imported {} rows of {} tables. API keys and sessions in it work on servers that use the \
                 server secret of the installation that exported it.",
                counts.rows(),
                counts.tables.len()
            );
            Ok(())
        }
    }
}

/// A domain error with its field messages, for the terminal.
fn explain(e: barrack_core::Error) -> anyhow::Error {
    let mut text = e.public_message();
    if let Some(fields) = e.field_errors() {
        for (field, messages) in fields {
            text.push_str(&format!("\n  {field}: {}", messages.join("; ")));
        }
    }
    anyhow::Error::msg(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(clock: &Arc<OffsetClock>) -> String {
        let mut text = String::new();
        ServerTime(clock.clone())
            .format_time(&mut Writer::new(&mut text))
            .unwrap();
        text
    }

    #[test]
    fn log_times_follow_the_server_clock_and_say_when_it_was_moved() {
        let clock = Arc::new(OffsetClock::default());
        let real = stamp(&clock);
        assert!(!real.starts_with("sim:") && real.ends_with('Z'), "{real}");
        clock.advance_ms(30 * 24 * 3_600_000);
        let moved = stamp(&clock);
        assert!(moved.starts_with("sim:"), "{moved}");
        let shown = barrack_core::clock::parse_iso(moved.trim_start_matches("sim:")).unwrap();
        let ahead = shown - barrack_core::clock::system_now_ms();
        assert!(ahead > 29 * 24 * 3_600_000, "{moved} runs a month ahead");
    }
}
