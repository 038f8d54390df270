//! `proxmox-monitor-agent`: collects this Proxmox host's state and pushes it over MQTT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use proxmox_monitor_agent::collect::Collectors;
use proxmox_monitor_agent::config::{self, Config, Settings};
use proxmox_monitor_agent::daemon::{self, shutdown_signal};
use proxmox_monitor_agent::outbox::Outbox;
use proxmox_monitor_agent::publisher;
use proxmox_monitor_agent::schedule::{self, Envelopes, Intervals};
use proxmox_monitor_agent::source::{HostSource, Source};
use tokio::sync::mpsc;
use wire::Kind;

/// Collects host, ZFS, storage and guest state of this Proxmox VE host and pushes it to a
/// Proxmox Monitor server over MQTT. Read-only: it never changes the host.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The agent's config file.
    #[arg(long, value_name = "PATH", env = "PROXMOX_MONITOR_AGENT_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Collect every tier once, print the payloads as JSON and exit; no network.
    #[arg(long, conflicts_with = "check")]
    once: bool,
    /// With `--once`: collect only this tier (fast, medium or slow).
    #[arg(long, value_name = "TIER", requires = "once", value_parser = ["fast", "medium", "slow"])]
    tier: Option<String>,
    /// Validate the config, try one authenticated connection and print a one-line verdict
    /// (ok, invalid_token, unreachable, tls_error, protocol_error); exit 0 only for ok.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    daemon::init_tracing("info,rumqttc=warn", &[]);
    // One thread: the agent is idle between cycles and its collectors never block for long
    // (procfs and sysfs reads; commands are awaited with timeouts), while every worker
    // thread would cost its stack and a glibc malloc arena of resident memory (issue 14:
    // RSS at most 1/3 of node_exporter's).
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = Config::load(&args.config)?;
    if args.check {
        let verdict = publisher::check(&settings, Duration::from_secs(10)).await;
        println!("{}", verdict.line());
        return Ok(if verdict == publisher::Verdict::Ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    let source = HostSource(Collectors::new(settings.node.clone()));
    if args.once {
        print_once(&settings, source, args.tier.as_deref()).await?;
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!(host_id = %settings.host_id, node = %settings.node, "starting");
    let outbox = Outbox::open(&settings.state_dir, settings.buffer_max_bytes)
        .with_context(|| format!("cannot open the outage buffer in {} (state_dir)", settings.state_dir.display()))?;
    let (tx, rx) = mpsc::channel(64);
    let intervals = Intervals { fast: settings.fast, medium: settings.medium, slow: settings.slow };
    let envelopes = Envelopes::new(settings.host_id.clone(), outbox.dropped.clone());
    tokio::spawn(schedule::run(source, envelopes, intervals, tx));
    publisher::run(&settings, rx, outbox, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `--once`: every tier (or only `only`), as `{"fast": {..}, "medium": {..}, "slow": {..}}`.
async fn print_once(settings: &Settings, mut source: HostSource, only: Option<&str>) -> anyhow::Result<()> {
    let mut envelopes = Envelopes::new(settings.host_id.clone(), Default::default());
    let mut out = serde_json::Map::new();
    for (tier, every) in [(Kind::Fast, settings.fast), (Kind::Medium, settings.medium), (Kind::Slow, settings.slow)] {
        if only.is_some_and(|name| name != tier.to_string()) {
            continue;
        }
        let (data, errors) = source.collect(tier, schedule::collect_timeout(every)).await;
        let message = envelopes.wrap(data, errors);
        out.insert(tier.to_string(), serde_json::from_slice(&message.payload)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
