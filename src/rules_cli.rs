//! `rule`: disable a rule or change its numbers globally, for a host, or for one subject
//! on a host. Like `channel`, it talks to the database directly; a running `serve` reads
//! the change within its next round (a few seconds).

use alerting::overrides::{Override, Scope};
use alerting::store;
use clap::{Args, Subcommand};
use recorder::status::{Direction, Rule, Thresholds};
use serde_json::json;

/// Which alerts a change applies to.
#[derive(Args)]
pub struct Target {
    /// A rule name: pool_state, pool_capacity, storage_full, guest_stopped, ...
    rule: String,
    /// Only this host (default: every host).
    #[arg(long)]
    host: Option<String>,
    /// Only this subject of the host: a pool, storage, guest (vm/101, ct/105), disk or sensor.
    #[arg(long, requires = "host")]
    subject: Option<String>,
    #[arg(long)]
    json: bool,
}

impl Target {
    fn scope(&self) -> anyhow::Result<Scope> {
        Ok(Scope { rule: store::parse_rule(&self.rule)?, host: self.host.clone(), subject: self.subject.clone() })
    }
}

#[derive(Subcommand)]
pub enum RuleCommand {
    /// Every rule with its built-in numbers, and the overrides set.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a rule's numbers; what is not given keeps its value at this scope.
    Set {
        #[command(flatten)]
        target: Target,
        /// Where it starts to warn. Numeric rules only: pool_capacity and storage_full
        /// (percent used), scrub_age (days since the last scrub), disk_wear (NVMe percent
        /// used), load (15-minute load per core), cpu_temperature and nvme_temperature (°C),
        /// clock_skew (seconds off, either way), disk_spare (NVMe percent spare left; lower
        /// is worse: warns below the trigger, built in: the drive's own threshold).
        #[arg(long)]
        trigger: Option<f64>,
        /// Where it becomes critical (scrub_age, disk_wear, load, clock_skew and disk_spare
        /// have no critical level until one is set).
        #[arg(long)]
        critical: Option<f64>,
        /// Where a firing alert clears (below --trigger; above it for disk_spare).
        #[arg(long)]
        clear: Option<f64>,
        /// How long the condition must hold before it fires: 0s, 90s, 5m, 1h.
        #[arg(long)]
        pending: Option<String>,
    },
    /// Stop alerting on a rule; its firing alerts resolve without a notification.
    Disable(Target),
    /// Undo a disable (or enable under a broader one).
    Enable(Target),
    /// Remove everything set at exactly this scope.
    Reset(Target),
}

fn pending_ms(text: &str) -> anyhow::Result<i64> {
    alerting::overrides::parse_pending(text)
        .ok_or_else(|| anyhow::anyhow!("invalid --pending {text}: use e.g. 0s, 90s, 5m, 1h"))
}

pub fn override_json(o: &Override) -> serde_json::Value {
    json!({
        "rule": o.scope.rule.as_str(),
        "host_id": o.scope.host,
        "subject": o.scope.subject,
        "enabled": o.enabled,
        "trigger": o.trigger,
        "critical": o.critical,
        "clear": o.clear,
        "pending_seconds": o.pending_ms.map(|ms| ms / 1000),
    })
}

pub fn rule(cmd: RuleCommand) -> anyhow::Result<()> {
    let conn = crate::open_db()?;
    let now = wire::now_ms();
    match cmd {
        RuleCommand::List { json } => list(&conn, json)?,
        RuleCommand::Set { target, trigger, critical, clear, pending } => {
            let pending_ms = pending.as_deref().map(pending_ms).transpose()?;
            let change = Override { trigger, critical, clear, pending_ms, ..Override::new(target.scope()?) };
            let stored = store::set_override(&conn, &change, now)?;
            if target.json {
                println!("{}", override_json(&stored));
            } else {
                println!("{} set; a running server applies it within seconds", stored.scope.describe());
            }
        }
        RuleCommand::Disable(target) => switch(&conn, &target, false, now)?,
        RuleCommand::Enable(target) => switch(&conn, &target, true, now)?,
        RuleCommand::Reset(target) => {
            let scope = target.scope()?;
            store::reset_override(&conn, &scope)?;
            if target.json {
                println!("{}", json!({"reset": scope.describe()}));
            } else {
                println!("{}: back to the broader settings", scope.describe());
            }
        }
    }
    Ok(())
}

fn switch(conn: &rusqlite::Connection, target: &Target, enabled: bool, now: i64) -> anyhow::Result<()> {
    let scope = target.scope()?;
    store::set_enabled(conn, &scope, enabled, now)?;
    if target.json {
        println!(
            "{}",
            json!({"rule": scope.rule.as_str(), "host_id": scope.host, "subject": scope.subject, "enabled": enabled})
        );
    } else if enabled {
        println!("{} enabled", scope.describe());
    } else {
        println!("{} disabled; its firing alerts resolve without a notification", scope.describe());
    }
    Ok(())
}

/// A rule's critical number as `rule list` prints it: `none` for a numeric rule that
/// never becomes critical, `-` for a rule without numbers.
fn critical(t: Option<Thresholds>) -> String {
    match t {
        Some(Thresholds { critical: Some(c), .. }) => format!("{c}"),
        Some(_) => "none".to_owned(),
        None => "-".to_owned(),
    }
}

fn list(conn: &rusqlite::Connection, json: bool) -> anyhow::Result<()> {
    let overrides = store::overrides(conn)?;
    let settings = alerting::Settings::default();
    if json {
        let rows: Vec<_> = Rule::ALL
            .iter()
            .map(|&rule| {
                let t = Thresholds::of(rule);
                // disk_spare's trigger is each drive's own: null here.
                let fixed = t.filter(|_| rule != Rule::DiskSpare);
                let own: Vec<_> = overrides.iter().filter(|o| o.scope.rule == rule).map(override_json).collect();
                json!({
                    "rule": rule.as_str(),
                    "trigger": fixed.map(|t| t.warning),
                    "critical": t.and_then(|t| t.critical),
                    "clear": fixed.map(|t| t.clear()),
                    "lower_is_worse": t.map(|t| t.direction == Direction::Below),
                    "pending_seconds": settings.for_duration(rule) / 1000,
                    "overrides": own,
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!("{:<18} {:>8} {:>8} {:>8} {:>8}", "RULE", "TRIGGER", "CRITICAL", "CLEAR", "PENDING");
    for &rule in &Rule::ALL {
        let t = Thresholds::of(rule);
        let n = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
        let (trigger, clear) = match t {
            Some(t) if rule == Rule::DiskSpare => ("drive".to_owned(), format!("drive+{}", t.clear_margin)),
            _ => (n(t.map(|t| t.warning)), n(t.map(|t| t.clear()))),
        };
        println!(
            "{:<18} {trigger:>8} {:>8} {clear:>8} {:>7}s",
            rule.as_str(),
            critical(t),
            settings.for_duration(rule) / 1000
        );
    }
    if overrides.is_empty() {
        println!("\nNo overrides. Change one with e.g. `proxmox-monitor rule set pool_capacity --host pve1 --trigger 85 --clear 80`.");
        return Ok(());
    }
    println!(
        "\n{:<40} {:<9} {:>8} {:>8} {:>8} {:>8}",
        "OVERRIDE", "ENABLED", "TRIGGER", "CRITICAL", "CLEAR", "PENDING"
    );
    for o in &overrides {
        let n = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}"));
        let enabled = o.enabled.map_or("-", |e| if e { "yes" } else { "no" });
        let pending = o.pending_ms.map_or_else(|| "-".to_owned(), |ms| format!("{}s", ms / 1000));
        println!(
            "{:<40} {enabled:<9} {:>8} {:>8} {:>8} {pending:>8}",
            o.scope.describe(),
            n(o.trigger),
            n(o.critical),
            n(o.clear)
        );
    }
    Ok(())
}
