//! `barrack scripts`: startup scripts, kept by the API and copied into instances deployed with them.

use std::path::PathBuf;

use barrack_api::scripts::{Script, ScriptRequest};
use clap::Subcommand;

use super::{Ctx, Output, PageArgs, read_input_file};
use crate::error::CliError;
use crate::output::{Table, View};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List your startup scripts
    #[command(after_help = "Examples:\n  barrack scripts list\n  barrack scripts list -q")]
    List {
        #[command(flatten)]
        page: PageArgs,
    },
    /// Show a script with its content
    #[command(after_help = "Example:\n  barrack scripts show BRK-A1B2C3C")]
    Show {
        /// The script's id (BRK-...C)
        id: String,
    },
    /// Create a script from a file (at most 16384 bytes)
    #[command(
        after_help = "Example:\n  barrack scripts create --name 'install drivers' --file setup.sh"
    )]
    Create {
        /// Unique name: letters, digits, spaces, hyphens, underscores, dots
        #[arg(long)]
        name: String,
        /// The script file
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Replace a script's name and content
    #[command(
        after_help = "Example:\n  barrack scripts update BRK-A1B2C3C --name setup-v2 --file setup.sh"
    )]
    Update {
        /// The script's id (BRK-...C)
        id: String,
        /// Its name from now on (the same name to keep it): letters, digits, spaces, hyphens,
        /// underscores, dots
        #[arg(long)]
        name: String,
        /// The file holding its new content
        #[arg(long, value_name = "PATH")]
        file: PathBuf,
    },
    /// Delete one or more scripts; instances deployed with them keep their copy
    #[command(
        after_help = "Examples:\n  barrack scripts delete BRK-A1B2C3C\n  barrack scripts delete BRK-A1B2C3C BRK-D4E5F6C"
    )]
    Delete {
        /// Script ids (BRK-...C)
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::List { page } => {
            let data = ctx.call(client.scripts(&page.query())).await?.data;
            let mut table = Table::new(&["ID", "NAME", "BYTES", "UPDATED"], "No scripts.");
            for s in &data.scripts {
                table.row([
                    s.id.clone(),
                    s.name.clone(),
                    s.size_bytes.to_string(),
                    s.updated_at.clone(),
                ]);
            }
            let view = super::paged(table, &data.pagination);
            let ids: Vec<String> = data.scripts.iter().map(|s| s.id.clone()).collect();
            Ok(Output::new(&data, view).ids(ids))
        }
        Command::Show { id } => {
            let data = ctx.call(client.script(&id)).await?.data;
            Ok(script_output(&data))
        }
        Command::Create { name, file } => {
            let request = ScriptRequest {
                name,
                script: read_input_file(&file)?,
            };
            let data = ctx.call(client.create_script(&request)).await?.data;
            Ok(script_output(&data))
        }
        Command::Update { id, name, file } => {
            let request = ScriptRequest {
                name,
                script: read_input_file(&file)?,
            };
            let data = ctx.call(client.update_script(&id, &request)).await?.data;
            Ok(script_output(&data))
        }
        Command::Delete { ids } => {
            // One id is the single delete; several go in one bulk request.
            let data = if let [id] = ids.as_slice() {
                ctx.call(client.delete_script(id)).await?.data
            } else {
                ctx.call(client.delete_scripts(&ids)).await?.data
            };
            let lines: Vec<String> = data
                .deleted
                .iter()
                .map(|id| format!("Deleted script {id}"))
                .collect();
            let view = if lines.is_empty() {
                View::Sections(Vec::new())
            } else {
                View::Text(lines.join("\n"))
            };
            let output = Output::new(&data, view).ids(data.deleted.clone());
            // Some not found is a failure, as with one id: reported on stderr after what was deleted,
            // and the exit code says so (4).
            if data.not_found.is_empty() {
                Ok(output)
            } else {
                Ok(output.failure(CliError::ids_not_found("script", &data.not_found)))
            }
        }
    }
}

fn script_output(script: &Script) -> Output {
    let view = View::Fields(vec![
        ("ID", script.id.clone()),
        ("Name", script.name.clone()),
        ("Size", format!("{} bytes", script.size_bytes)),
        ("Updated", script.updated_at.clone()),
    ]);
    // The content whole, under the fields, with its own line breaks and indentation.
    let view = View::Sections(vec![view, View::Text(script.script.clone())]);
    Output::new(script, view).ids([script.id.clone()])
}
