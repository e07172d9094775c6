//! `barrack account`: signing up, session tokens, and the billing profile.

use barrack_api::Tier;
use barrack_api::account::{ProfileUpdate, RegisterRequest, TokenObtainPair, UserProfile};
use clap::{ArgGroup, Subcommand};

use super::{Ctx, Output, ask_secret, read_password, tier_parser};
use crate::error::CliError;
use crate::output::{View, or_dash, yes_no};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show your account and billing profile
    #[command(
        after_help = "Examples:\n  barrack account show\n  barrack account show -q   # the account id"
    )]
    Show,
    /// Change billing profile fields; an empty value clears a field
    #[command(after_help = "Examples:\n  \
        barrack account update --address-line '1 Main St' --postal-code 10001 --country US\n  \
        barrack account update --phone ''\n  \
        barrack account update --replace --name 'Ada Lovelace' --country GB")]
    Update(UpdateArgs),
    /// Create an account (the password is read from the terminal or stdin)
    #[command(after_help = "Examples:\n  \
        barrack account register --email ada@example.com --name 'Ada Lovelace'\n  \
        printf '%s\\n' \"$PASSWORD\" | barrack account register --email ada@example.com --name Ada")]
    Register {
        /// Sign-in email address
        #[arg(long)]
        email: String,
        /// Full name
        #[arg(long)]
        name: String,
    },
    /// Sign in and print a session's access and refresh tokens (for `Authorization: Bearer`)
    #[command(after_help = "Examples:\n  \
        barrack account token --email ada@example.com\n  \
        barrack account token --email ada@example.com --tier advanced -o json | jq -r .access")]
    Token {
        /// The account's email address
        #[arg(long)]
        email: String,
        /// The tier the session acts in [default: legacy]
        #[arg(long, value_parser = tier_parser())]
        tier: Option<Tier>,
    },
    /// Exchange a refresh token for a new access token
    #[command(after_help = "Examples:\n  \
        barrack account refresh-token          # asks for the token\n  \
        barrack account refresh-token < refresh.txt")]
    RefreshToken,
    /// End a session: its access and refresh tokens stop working
    #[command(after_help = "Examples:\n  \
        barrack account logout                 # asks for the session's refresh token\n  \
        barrack account logout < refresh.txt")]
    Logout,
    /// Change your password (asks for the current and the new one); ends every session, keys stay
    #[command(after_help = "Examples:\n  \
        barrack account password\n  \
        printf '%s\\n%s\\n' \"$OLD\" \"$NEW\" | barrack account password")]
    Password,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("fields").required(true).multiple(true)
    .args(["name", "phone", "address_line", "city", "state", "postal_code", "country"])))]
pub struct UpdateArgs {
    /// Full name (letters, spaces, hyphens, apostrophes)
    #[arg(long)]
    name: Option<String>,
    /// Phone number
    #[arg(long)]
    phone: Option<String>,
    /// Street address (up to 255 characters)
    #[arg(long)]
    address_line: Option<String>,
    /// City
    #[arg(long)]
    city: Option<String>,
    /// State, province or region
    #[arg(long)]
    state: Option<String>,
    /// Postal code (letters, digits, hyphens, spaces)
    #[arg(long)]
    postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 code (US, DE, IN); sets the account's currency
    #[arg(long)]
    country: Option<String>,
    /// Replace the whole profile: fields not given are cleared (--name is required)
    #[arg(long)]
    replace: bool,
}

impl UpdateArgs {
    fn update(self) -> ProfileUpdate {
        // Given and empty means "clear it", which the API spells `null`.
        let field = |value: Option<String>| value.map(|v| Some(v).filter(|v| !v.is_empty()));
        ProfileUpdate {
            name: field(self.name),
            phone: field(self.phone),
            address_line: field(self.address_line),
            city: field(self.city),
            state: field(self.state),
            postal_code: field(self.postal_code),
            country: field(self.country),
        }
    }
}

pub async fn run(command: Command, ctx: &Ctx) -> Result<Output, CliError> {
    let client = &ctx.client;
    match command {
        Command::Show => {
            let data = ctx.call(client.profile()).await?.data;
            Ok(profile_output(data))
        }
        Command::Update(args) => {
            let replace = args.replace;
            let update = args.update();
            let data = if replace {
                ctx.call(client.replace_profile(&update)).await?.data
            } else {
                ctx.call(client.update_profile(&update)).await?.data
            };
            Ok(profile_output(data))
        }
        Command::Register { email, name } => {
            let password = read_password()?;
            let request = RegisterRequest {
                email,
                password,
                name,
            };
            let data = ctx
                .call_anonymous(client.anonymous().register(&request))
                .await?
                .data;
            Ok(profile_output(data))
        }
        Command::Token { email, tier } => {
            let password = read_password()?;
            let request = TokenObtainPair {
                email,
                password,
                tier,
            };
            let data = ctx
                .call_anonymous(client.anonymous().obtain_token(&request))
                .await?
                .data;
            let view = View::Fields(vec![
                ("Access", data.access.clone()),
                ("Refresh", data.refresh.clone()),
            ]);
            Ok(Output::new(&data, view))
        }
        Command::RefreshToken => {
            // Read, not an argument: a 30-day token does not belong in shell history.
            let refresh = ask_secret("Refresh token")?;
            if refresh.trim().is_empty() {
                return Err(CliError::Usage("a refresh token is required".into()));
            }
            let data = ctx
                .call_anonymous(client.anonymous().refresh_token(refresh.trim()))
                .await?
                .data;
            // The refresh token presented is spent: the new one replaces it.
            let view = View::Fields(vec![
                ("Access", data.access.clone()),
                ("Refresh", data.refresh.clone()),
            ]);
            Ok(Output::new(&data, view))
        }
        Command::Logout => {
            let refresh = ask_secret("Refresh token")?;
            if refresh.trim().is_empty() {
                return Err(CliError::Usage("a refresh token is required".into()));
            }
            let data = ctx
                .call_anonymous(client.anonymous().logout(refresh.trim()))
                .await?
                .data;
            let view = View::Fields(vec![("Sessions ended", data.sessions_revoked.to_string())]);
            Ok(Output::new(&data, view))
        }
        Command::Password => {
            let current = ask_secret("Current password")?;
            let new = ask_secret("New password")?;
            if current.is_empty() || new.is_empty() {
                return Err(CliError::Usage(
                    "the current and the new password are required".into(),
                ));
            }
            let data = ctx.call(client.change_password(&current, &new)).await?.data;
            let view = View::Fields(vec![("Sessions ended", data.sessions_revoked.to_string())]);
            Ok(Output::new(&data, view))
        }
    }
}

/// An account as fields; `-q` prints its id.
pub fn profile_output(p: UserProfile) -> Output {
    let view = View::Fields(vec![
        ("ID", p.id.clone()),
        ("Email", p.email.clone()),
        ("Name", p.name.clone()),
        ("Phone", or_dash(p.phone.as_ref())),
        ("Address line", or_dash(p.address_line.as_ref())),
        ("City", or_dash(p.city.as_ref())),
        ("State", or_dash(p.state.as_ref())),
        ("Postal code", or_dash(p.postal_code.as_ref())),
        ("Country", or_dash(p.country.as_ref())),
        ("Currency", p.currency.to_string()),
        ("Profile complete", yes_no(p.profile_complete)),
        ("Operator", yes_no(p.admin)),
        ("Created", p.created_at.clone()),
    ]);
    Output::new(&p, view).ids([p.id.clone()])
}
