//! The `ha` commands: Home Assistant's MQTT credential. Like `host`, they talk to the
//! database directly; a running `serve` picks the change up within a second.

use clap::Subcommand;
use proxmox_monitor::config;
use serde_json::json;

#[derive(Subcommand)]
pub enum HaCommand {
    /// Create Home Assistant's MQTT credential and print its token (shown only once). It
    /// reads pmon/v1/# and the discovery prefix and may publish only `<prefix>/status`.
    Add {
        name: String,
        /// Print `{"ha":..,"token":..,"discovery_prefix":..}` for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Remove a Home Assistant credential; its live session is closed.
    Remove {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List Home Assistant credentials.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn ha(cmd: HaCommand) -> anyhow::Result<()> {
    let mut conn = recorder::db::open_and_migrate(&config::database())?;
    match cmd {
        HaCommand::Add { name, json } => {
            let prefix = config::ha_prefix(&config::process_env)?;
            let token = recorder::hosts::add_home_assistant(&mut conn, &name)?;
            if json {
                println!("{}", json!({"ha": name, "token": token, "discovery_prefix": prefix.as_str()}));
            } else {
                println!(
                    "Home Assistant credential {name} added. In Home Assistant, add the MQTT integration with\n\
                     this server's MQTT address (MQTT_PORT, or MQTTS_PORT with TLS), username {name} and\n\
                     this password (shown only once):\n{token}\n\
                     Discovery prefix: {prefix} (HA_DISCOVERY_PREFIX). The server publishes discovery only with HA_DISCOVERY=1."
                );
            }
        }
        HaCommand::Remove { name, json } => {
            recorder::hosts::remove_home_assistant(&mut conn, &name)?;
            if json {
                println!("{}", json!({"ha": name, "removed": true}));
            } else {
                println!("Home Assistant credential {name} removed");
            }
        }
        HaCommand::List { json } => {
            let rows = recorder::hosts::list_home_assistant(&conn)?;
            if json {
                let rows: Vec<_> = rows.iter().map(|r| json!({"ha": r.name, "created": r.created_ms / 1000})).collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if rows.is_empty() {
                println!("No Home Assistant credentials yet. Add one with `proxmox-monitor ha add NAME`.");
            } else {
                for r in rows {
                    println!("{}", r.name);
                }
            }
        }
    }
    Ok(())
}
