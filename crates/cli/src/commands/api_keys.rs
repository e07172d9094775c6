//! `barrack api-keys`: keys for programs; each acts in the tier it was created with.

use barrack_api::Tier;
use clap::Subcommand;

use super::{Ctx, Output, tier_parser};
use crate::error::CliError;
use crate::output::{Table, View, or_dash};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List your API keys (never their secrets)
    #[command(after_help = "Examples:\n  barrack api-keys list\n  barrack api-keys list -q")]
    List,
    /// Create an API key; its secret is shown only once (alone with -q)
    #[command(after_help = "Examples:\n  \
        barrack api-keys create --name ci --tier advanced\n  \
        barrack api-keys create --name ci --tier legacy -q > ci.key")]
    Create {
        /// A name to recognise the key by
        #[arg(long)]
        name: String,
        /// The tier requests made with the key act in
        #[arg(long, value_parser = tier_parser())]
        tier: Tier,
    },
    /// Revoke an API key; requests with it fail from then on
    #[command(after_help = "Example:\n  barrack api-keys delete BRK-A1B2C3A")]
    Delete {
        /// The key's id (BRK-...A)
        id: String,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List => {
            let data = ctx.call(client.api_keys()).await?.data;
            let mut table = Table::new(
                &["ID", "NAME", "TIER", "PREFIX", "CREATED", "LAST USED"],
                "No API keys.",
            );
            for k in &data.api_keys {
                table.row([
                    k.id.clone(),
                    k.name.clone(),
                    k.tier.to_string(),
                    k.prefix.clone(),
                    k.created_at.clone(),
                    or_dash(k.last_used_at.as_ref()),
                ]);
            }
            let ids: Vec<String> = data.api_keys.iter().map(|k| k.id.clone()).collect();
            Ok(Output::new(&data, View::Table(table)).ids(ids))
        }
        Command::Create { name, tier } => {
            let data = ctx.call(client.create_api_key(&name, tier)).await?.data;
            let view = View::Fields(vec![
                ("ID", data.id.clone()),
                ("Name", data.name.clone()),
                ("Tier", data.tier.to_string()),
                ("Key", data.key.clone()),
            ]);
            // `-q` prints the secret, which is shown only this once; the id can be listed any time.
            Ok(Output::new(&data, view)
                .ids([data.key.clone()])
                .notice("Store the key now: it is not shown again."))
        }
        Command::Delete { id } => {
            let data = ctx.call(client.delete_api_key(&id)).await?.data;
            let view = View::Text(format!("Deleted API key {}", data.id));
            Ok(Output::new(&data, view).ids([data.id.clone()]))
        }
    }
}
