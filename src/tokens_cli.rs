//! `token add|remove|list`: read-only API tokens for scripts and Prometheus, sent as
//! `Authorization: Bearer <token>` to `/api/v1/*` and `/metrics`. Like `host`, they talk
//! to the database directly; a running `serve` sees a change at the next request.

use clap::Subcommand;
use recorder::api_tokens;
use serde_json::json;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a read-only API token and print it (shown only once).
    Add {
        name: String,
        /// Print `{"name":..,"token":..}` for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: its next request is refused.
    Remove { name: String },
    /// List tokens (names and creation times; the tokens themselves are not stored).
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn token(cmd: TokenCommand) -> anyhow::Result<()> {
    let mut conn = crate::open_db()?;
    match cmd {
        TokenCommand::Add { name, json } => {
            let token = api_tokens::add(&mut conn, &name)?;
            if json {
                println!("{}", json!({"name": name, "token": token}));
            } else {
                println!(
                    "API token {name} added. It reads /api/v1 and /metrics, sent as \
                     `Authorization: Bearer <token>`. Shown only once:\n{token}"
                );
            }
        }
        TokenCommand::Remove { name } => {
            api_tokens::remove(&conn, &name)?;
            println!("API token {name} removed");
        }
        TokenCommand::List { json } => {
            let rows = api_tokens::list(&conn)?;
            if json {
                let rows: Vec<_> =
                    rows.iter().map(|r| json!({"name": r.name, "created": r.created_ms / 1000})).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if rows.is_empty() {
                println!("No API tokens yet. Add one with `proxmox-monitor token add NAME`.");
            } else {
                let now = wire::now_ms();
                println!("{:<24} CREATED", "NAME");
                for r in &rows {
                    println!("{:<24} {}", r.name, dashboard::format::ago(Some(r.created_ms), now));
                }
            }
        }
    }
    Ok(())
}
