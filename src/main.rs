//! `proxmox-monitor`: the server (broker + gateway, recorder, dashboard) and its CLI.

mod alerts_cli;
mod demo;
mod doctor;
mod ha_cli;
mod rules_cli;
mod tokens_cli;

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use base64::Engine;
use clap::{Parser, Subcommand};
use proxmox_monitor::{config, Listeners, ServerConfig};
use proxmox_monitor_agent::daemon::{self, shutdown_signal};
use rand::RngCore;
use serde_json::json;

/// Fleet monitor for Proxmox VE: an embedded MQTT broker that agents push to, a SQLite
/// recorder and a live web dashboard.
///
/// Configuration comes from the environment: DATABASE_PATH, SECRET_KEY_BASE,
/// DASHBOARD_PASSWORD_HASH, PUBLIC_HOST, BIND, PORT, MQTT_PORT, MQTTS_PORT, TLS_CERT,
/// TLS_KEY, RETENTION_HOURS, ROLLUP_MINUTE_DAYS, ROLLUP_HOUR_DAYS, BACKUP_MAX_AGE_HOURS, METRICS_PUBLIC,
/// METRICS_GUESTS, HA_DISCOVERY, HA_DISCOVERY_PREFIX (see
/// deploy/proxmox-monitor.env.example). PORT, MQTT_PORT
/// and MQTTS_PORT may be 0 for any free port: `serve` prints where it listens.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything: broker + gateway, recorder, dashboard. Applies migrations first.
    ///
    /// Once every listener is bound it prints one line on stdout, e.g.
    /// `listening http=127.0.0.1:4000 mqtt=127.0.0.1:1883` (then ` mqtts=ADDR` when
    /// MQTTS_PORT is set; no `mqtt=` with MQTT_PORT=off), with port 0 resolved. Logs go
    /// to stderr.
    Serve,
    /// Try it out: a server on a temporary database with a simulated fleet of a dozen hosts.
    Demo {
        /// HTTP port for the dashboard (falls back to a free one if taken).
        #[arg(long, default_value_t = 4000)]
        port: u16,
    },
    /// Apply database migrations and exit (the systemd ExecStartPre).
    Migrate,
    /// Read a password from stdin and print its argon2id hash for DASHBOARD_PASSWORD_HASH.
    HashPassword,
    /// Print a fresh 64-byte base64 secret for SECRET_KEY_BASE.
    GenSecret,
    /// Register, rotate, remove and list hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Read-only MQTT credentials, for mosquitto_sub and debugging.
    #[command(subcommand)]
    Observer(ObserverCommand),
    /// Home Assistant's MQTT credential: add, remove, list (discovery: HA_DISCOVERY=1).
    #[command(subcommand)]
    Ha(ha_cli::HaCommand),
    /// Notification channels (webhook, ntfy, gotify, discord, slack, telegram, email): add,
    /// test, list, remove.
    #[command(subcommand)]
    Channel(alerts_cli::ChannelCommand),
    /// Alerts: list, acknowledge.
    #[command(subcommand)]
    Alert(alerts_cli::AlertCommand),
    /// Silences: add (a host's alerts for a while), list, remove.
    #[command(subcommand)]
    Silence(alerts_cli::SilenceCommand),
    /// Alert rules: list, set numbers, disable, enable, reset (globally, per host, per subject).
    #[command(subcommand)]
    Rule(rules_cli::RuleCommand),
    /// Read-only API tokens (Bearer) for /api/v1 and /metrics: add, remove, list.
    #[command(subcommand)]
    Token(tokens_cli::TokenCommand),
    /// Check this server's configuration; one line per problem with its fix, or `ok`.
    Doctor(doctor::DoctorArgs),
    /// Write a consistent copy of the database to PATH, safe while the server runs.
    Backup {
        /// Where to write the copy (must not exist).
        path: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum HostCommand {
    /// Register a host and print its token (shown only once).
    Add {
        name: String,
        /// Print `{"host_id":..,"token":..}` for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Give a host a new token (printed once); its live session is closed at once.
    Rotate {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove a host and everything recorded about it; its live session is closed.
    Remove { name: String },
    /// List hosts with status and last seen.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ObserverCommand {
    /// Create a read-only MQTT credential and print its token (shown only once).
    Add {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // rumqttd's router opens an ERROR-level span per publish, with the topic in its
    // fields, and formatting them is a visible share of the server's CPU under load
    // (docs/PERFORMANCE.md). Its events still log; only their span context goes. It also
    // logs routine disconnects at ERROR, hence `warn`.
    // The demo's twelve simulated agents connect at once: their routine connection lines
    // (the gateway's and the agents' own) would push the banner with the URL and password
    // off the screen, so they are debug there. RUST_LOG still overrides both.
    let filter = match cli.command {
        Command::Demo { .. } => "info,rumqttd=warn,broker::gateway=warn,proxmox_monitor_agent::publisher=warn",
        _ => "info,rumqttd=warn",
    };
    daemon::init_tracing(filter, &["rumqttd"]);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<proxmox_monitor::registry::DatabaseReplaced>() {
                Some(_) => ExitCode::from(proxmox_monitor::registry::DatabaseReplaced::EXIT_STATUS),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("failed to start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => {
            let config = ServerConfig::from_env()?;
            runtime()?.block_on(async {
                let listeners = Listeners::bind(&config).await?;
                println!("{}", listeners.bound());
                proxmox_monitor::run(config, listeners, shutdown_signal()).await
            })
        }
        Command::Demo { port } => runtime()?.block_on(demo::run(port)),
        Command::Migrate => {
            let path = config::database();
            let mut conn = recorder::db::open(&path)?;
            let applied = recorder::db::migrate(&mut conn)?;
            println!(
                "{}: {applied} migration(s) applied, schema version {}",
                path.display(),
                recorder::db::SCHEMA_VERSION
            );
            Ok(())
        }
        Command::HashPassword => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password).context("failed to read the password from stdin")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                anyhow::bail!(
                    "empty password on stdin; try: read -rs PW; printf %s \"$PW\" | proxmox-monitor hash-password"
                );
            }
            println!("{}", hash_password(password)?);
            Ok(())
        }
        Command::GenSecret => {
            println!("{}", gen_secret());
            Ok(())
        }
        Command::Host(cmd) => host(cmd),
        Command::Ha(cmd) => ha_cli::ha(cmd),
        Command::Channel(cmd) => alerts_cli::channel(cmd),
        Command::Alert(cmd) => alerts_cli::alert(cmd),
        Command::Silence(cmd) => alerts_cli::silence(cmd),
        Command::Rule(cmd) => rules_cli::rule(cmd),
        Command::Token(cmd) => tokens_cli::token(cmd),
        Command::Doctor(args) => doctor::run(args),
        Command::Observer(ObserverCommand::Add { name, json }) => {
            let mut conn = open_db()?;
            let token = recorder::hosts::add_observer(&mut conn, &name)?;
            if json {
                println!("{}", json!({"observer": name, "token": token}));
            } else {
                println!("observer {name} added. Its token (shown only once):\n{token}");
            }
            Ok(())
        }
        Command::Backup { path } => {
            if path.exists() {
                anyhow::bail!("{} already exists; choose a new file name", path.display());
            }
            let conn = open_db()?;
            backup(&conn, &path).with_context(|| format!("backup to {} failed", path.display()))?;
            println!("backed up {} to {}", config::database().display(), path.display());
            Ok(())
        }
    }
}

/// Copies the whole database in one backup step: one read transaction, so the copy is
/// consistent even while the recorder commits (a stepwise copy would restart on every
/// commit and might never finish). The copy gets a registry id of its own, so that a
/// server it is restored under (in place) installs its credentials whatever its version.
fn backup(src: &rusqlite::Connection, path: &std::path::Path) -> anyhow::Result<()> {
    let mut dst = rusqlite::Connection::open(path)?;
    rusqlite::backup::Backup::new(src, &mut dst)?.step(-1)?;
    recorder::hosts::new_registry_id(&dst)?;
    Ok(())
}

/// A fresh 64-byte random secret, base64: what `SECRET_KEY_BASE` should hold.
pub fn gen_secret() -> String {
    let mut bytes = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

/// The database for a CLI command, migrated, so that the CLI works before `serve` ever ran.
fn open_db() -> anyhow::Result<rusqlite::Connection> {
    recorder::db::open_and_migrate(&config::database())
}

fn host(cmd: HostCommand) -> anyhow::Result<()> {
    let mut conn = open_db()?;
    match cmd {
        HostCommand::Add { name, json } => {
            let (host, token) = recorder::hosts::add_host(&mut conn, &name)?;
            if json {
                println!("{}", json!({"host_id": host.as_str(), "token": token}));
            } else {
                println!("host {host} added. Its token (shown only once):\n{token}");
            }
        }
        HostCommand::Rotate { name, json } => {
            let token = recorder::hosts::rotate_host(&mut conn, &name)?;
            if json {
                println!("{}", json!({"host_id": name, "token": token}));
            } else {
                println!("host {name} has a new token (shown only once); its old token no longer works:\n{token}");
            }
        }
        HostCommand::Remove { name } => {
            recorder::hosts::remove_host(&mut conn, &name)?;
            println!("host {name} removed");
        }
        HostCommand::List { json } => {
            let states = recorder::read::parse_states(&conn)?;
            // Judged with the operator's rule overrides, as the server's cards are.
            let overrides = alerting::store::overrides(&conn)?;
            recorder::status::limits::set_current(alerting::overrides::Overrides::new(overrides));
            let now = wire::now_ms();
            if json {
                let rows: Vec<_> = states
                    .iter()
                    .map(|s| {
                        json!({
                            "host_id": s.host_id,
                            "status": s.health(now).level,
                            "last_seen": s.last_seen_ms.map(|ms| ms / 1000),
                            "agent_version": s.agent_version,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if states.is_empty() {
                println!("No hosts registered yet. Add one with `proxmox-monitor host add NAME`.");
            } else {
                println!("{:<24} {:<9} LAST SEEN", "HOST", "STATUS");
                for s in &states {
                    let seen = s
                        .last_seen_ms
                        .map(|ms| format!("{}s ago", (now - ms) / 1000))
                        .unwrap_or_else(|| "never".into());
                    println!("{:<24} {:<9} {seen}", s.host_id, s.health(now).level.as_str());
                }
            }
        }
    }
    Ok(())
}
