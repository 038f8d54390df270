//! A host's page (`/hosts/<host_id>`) and the card every page shows of a host.

use std::collections::HashMap;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::Extension;
use axum_extra::extract::WithRejection;
use serde::Deserialize;

use crate::chart::Range;
use crate::error::AppError;
use crate::format::{ago, bytes, duration, opt_bytes, opt_f, pct};
use crate::history::{HostCharts, HostHistory, Sparklines};
use crate::routes::backups;
use crate::routes::hardware::{self, disk_of_vdev};
use crate::routes::{one_host, parse_query, read};
use crate::session::Session;
use crate::status::HostStatus;
use crate::AppState;
use recorder::state::{Card, Decoded, HostState};
use recorder::status::{pool_level, Level, Rule};
use wire::{Backups, Disk, Guest, Medium, Pool, Slow, Vdev};

/// A card as the template shows it.
pub struct CardView {
    pub id: String,
    /// The status rules' level: the card's colour, and what `data-status` says.
    pub status: &'static str,
    /// Presence and health, as every page shows them.
    pub host_status: HostStatus,
    pub reasons: String,
    pub last_seen: String,
    pub load: String,
    pub cpu: String,
    pub mem: String,
    pub mem_pct: String,
    pub arc: String,
    pub pools: String,
    pub guests: String,
    /// CPU and memory over the last hour, on the overview's cards (one query for the
    /// page's cards); empty on the host page and on live updates (the overview's script
    /// keeps the card's old ones).
    pub sparks: Sparklines,
}

impl CardView {
    pub fn new(c: &Card, now_ms: i64) -> CardView {
        let without_arc = c.mem_used_without_arc();
        CardView {
            id: c.host_id.clone(),
            status: c.status.as_str(),
            host_status: HostStatus::of(c),
            reasons: c.reasons.join("; "),
            last_seen: ago(c.last_seen_ms, now_ms),
            load: format!("{} / {}", opt_f(c.load1, 2), opt_f(c.load15, 2)),
            cpu: c.cpu_pct.map(|v| format!("{v:.0}%")).unwrap_or_else(|| "–".into()),
            mem: format!("{} / {}", opt_bytes(without_arc), opt_bytes(c.mem_total)),
            mem_pct: format!("{:.0}", pct(without_arc, c.mem_total).unwrap_or(0.0)),
            arc: c.arc_bytes.map(bytes).unwrap_or_default(),
            pools: if c.pools == 0 {
                "no pools".into()
            } else {
                format!("{}/{} pools healthy", c.pools_healthy, c.pools)
            },
            guests: format!("VMs {}/{} · CTs {}/{}", c.vms_running, c.vms_total, c.cts_running, c.cts_total),
            sparks: Vec::new(),
        }
    }
}

/// One card on its own, as SSE sends it.
#[derive(Template)]
#[template(path = "card.html")]
pub struct CardPartial {
    pub c: CardView,
}

pub struct Row {
    pub cells: Vec<String>,
    pub bad: bool,
}

pub struct Section {
    pub title: String,
    pub head: Vec<&'static str>,
    pub rows: Vec<Row>,
    pub empty: String,
}

#[derive(Template)]
#[template(path = "host.html")]
struct HostPage {
    c: CardView,
    /// Every range as a link: (value, label, whether it is the one shown).
    ranges: Vec<(&'static str, &'static str, bool)>,
    range_label: &'static str,
    charts: HostCharts,
    facts: Vec<(&'static str, String)>,
    sections: Vec<Section>,
    errors: Vec<(String, String)>,
    events: Vec<(String, String, String)>,
    csrf: String,
}

fn fast_facts(s: &HostState) -> Vec<(&'static str, String)> {
    let Some(p) = &s.fast else { return vec![("Fast tier", "no sample yet".into())] };
    let f = &p.data;
    vec![
        ("Load 1 / 5 / 15", format!("{} / {} / {}", opt_f(f.load1, 2), opt_f(f.load5, 2), opt_f(f.load15, 2))),
        ("CPUs", f.cpus.map(|c| c.to_string()).unwrap_or_else(|| "–".into())),
        ("CPU busy / iowait", format!("{}% / {}%", opt_f(f.cpu_pct, 1), opt_f(f.iowait_pct, 1))),
        ("Memory used (without ARC)", format!("{} of {}", opt_bytes(f.mem_used_without_arc()), opt_bytes(f.mem_total))),
        ("Memory used (kernel view, with ARC)", opt_bytes(f.mem_used)),
        ("ZFS ARC", opt_bytes(f.arc_bytes)),
        ("Swap", format!("{} of {}", opt_bytes(f.swap_used), opt_bytes(f.swap_total))),
        ("Root filesystem", format!("{} of {}", opt_bytes(f.rootfs_used), opt_bytes(f.rootfs_total))),
        ("Uptime", duration(f.uptime_s)),
        (
            "Agent",
            format!(
                "{} (last seen {})",
                s.agent_version.clone().unwrap_or_default(),
                ago(s.last_seen_ms, wire::now_ms())
            ),
        ),
        ("Clock", s.clock_skew_ms.map_or_else(|| "not measured yet".into(), recorder::clock::describe)),
    ]
}

impl Section {
    pub fn new(title: &str, head: Vec<&'static str>, empty: &str, rows: Vec<Row>) -> Section {
        Section { title: title.into(), head, rows, empty: empty.into() }
    }
}

/// The host page's tables, in the order the page shows them.
fn sections(s: &Decoded, now_ms: i64) -> Vec<Section> {
    let medium = s.medium_data();
    let slow = s.slow_data();
    let mut out = vec![pools_section(medium, slow, now_ms)];
    out.extend(hardware::sections(s));
    out.push(storages_section(&s.state.host_id, medium));
    let backups = Guests { backups: backups::of(medium), flagged: backups::flagged(s, now_ms), now_ms };
    out.push(guests_section("Virtual machines", "vm", medium.and_then(|m| m.vms.as_deref()), &backups));
    out.push(guests_section("Containers", "ct", medium.and_then(|m| m.cts.as_deref()), &backups));
    out.push(snapshots_section(slow, now_ms));
    out.extend(versions_section(slow));
    out
}

/// Each pool, followed by its vdevs indented by depth.
fn pools_section(medium: Option<&Medium>, slow: Option<&Slow>, now_ms: i64) -> Section {
    let disks = slow.and_then(|s| s.disks.as_deref()).unwrap_or_default();
    let mut rows = Vec::new();
    for p in medium.and_then(|m| m.pools.as_ref()).into_iter().flatten() {
        rows.push(pool_row(p, now_ms));
        rows.extend(p.vdevs.iter().map(|v| vdev_row(v, disks)));
    }
    let head = vec!["Pool / vdev", "State", "Used", "Frag", "Errors (R/W/C)", "Last scan"];
    Section::new("ZFS pools", head, "No pools reported.", rows)
}

fn pool_row(p: &Pool, now_ms: i64) -> Row {
    let scan = p.scan.as_ref().map(|sc| {
        let when = sc.end.or(sc.start).map(|t| ago(Some(t * 1000), now_ms)).unwrap_or_default();
        format!("{} {} {}", sc.function.as_str().to_lowercase(), sc.state.as_str().to_lowercase(), when)
    });
    let mut state = p.state.to_string();
    if let Some(status) = &p.status {
        state = format!("{state} — {status}");
    }
    Row {
        cells: vec![
            p.name.clone(),
            state,
            format!("{} of {} ({}%)", opt_bytes(p.alloc), opt_bytes(p.size), opt_f(p.cap_pct, 0)),
            format!("{}%", opt_f(p.frag_pct, 0)),
            format!("{} data errors", p.error_count),
            scan.unwrap_or_else(|| "never".into()),
        ],
        bad: pool_level(&p.state) != Level::Online,
    }
}

fn vdev_row(v: &Vdev, disks: &[Disk]) -> Row {
    // A leaf vdev names the disk it is on, so a failing vdev and its disk show together.
    let disk = disk_of_vdev(disks, &v.name).filter(|_| v.depth > 0);
    let on = disk.map_or_else(String::new, |d| {
        let health = match d.smart_passed {
            Some(false) => ", SMART FAILED",
            _ if d.standby => ", standby",
            _ => "",
        };
        format!(" → {}{health}", d.name)
    });
    Row {
        cells: vec![
            format!("{}└ {}{on}", "  ".repeat(v.depth as usize), v.name),
            v.state.to_string(),
            String::new(),
            String::new(),
            format!("{}/{}/{}", v.read_errors, v.write_errors, v.checksum_errors),
            String::new(),
        ],
        bad: pool_level(&v.state) != Level::Online
            || v.errors() > 0
            || disk.is_some_and(|d| d.smart_passed == Some(false)),
    }
}

fn storages_section(host: &str, medium: Option<&Medium>) -> Section {
    let limits = recorder::status::limits::current();
    let rows = medium.and_then(|m| m.storages.as_ref()).into_iter().flatten().map(|st| {
        let used = pct(st.used, st.total);
        Row {
            cells: vec![
                st.name.clone(),
                st.kind.clone(),
                if st.active { "yes".into() } else { "no".into() },
                format!("{} of {} ({}%)", opt_bytes(st.used), opt_bytes(st.total), opt_f(used, 0)),
                st.content.clone(),
            ],
            bad: (st.enabled && !st.active) || used.is_some_and(|u| limits.flags(host, Rule::StorageFull, &st.name, u)),
        }
    });
    let head = vec!["Storage", "Type", "Active", "Used", "Content"];
    Section::new("Storages", head, "No storages reported.", rows.collect())
}

/// What the guest tables need to show each guest's backup.
struct Guests<'a> {
    backups: Option<&'a Backups>,
    /// Subjects with a backup finding.
    flagged: std::collections::HashSet<String>,
    now_ms: i64,
}

/// The virtual machines (`kind` `vm`) or the containers (`ct`).
fn guests_section(title: &str, kind: &str, guests: Option<&[Guest]>, b: &Guests) -> Section {
    let rows = guests.unwrap_or_default().iter().map(|g| {
        let flagged = b.flagged.contains(&format!("{kind}/{}", g.vmid));
        let mut status = g.status.to_string();
        if let Some(lock) = &g.lock {
            status = format!("{status} (lock: {lock})");
        }
        Row {
            cells: vec![
                g.vmid.to_string(),
                g.name.clone(),
                status,
                g.cpu.map(|c| format!("{:.0}%", c * 100.0)).unwrap_or_else(|| "–".into()),
                format!("{} of {}", opt_bytes(g.mem), opt_bytes(g.maxmem)),
                duration(g.uptime_s),
                g.tags.join(", "),
                backups::cell(b.backups, g.vmid, b.now_ms),
            ],
            bad: flagged,
        }
    });
    let head = vec!["ID", "Name", "Status", "CPU", "Memory", "Uptime", "Tags", "Backup"];
    Section::new(title, head, "None.", rows.collect())
}

fn snapshots_section(slow: Option<&Slow>, now_ms: i64) -> Section {
    let datasets = slow.and_then(|s| s.snapshots.as_ref()).map(|s| s.datasets.as_slice()).unwrap_or_default();
    let rows = datasets.iter().map(|d| Row {
        cells: vec![
            d.dataset.clone(),
            d.count.to_string(),
            ago(Some(d.oldest * 1000), now_ms),
            ago(Some(d.newest * 1000), now_ms),
            bytes(d.used),
        ],
        bad: false,
    });
    let head = vec!["Dataset", "Count", "Oldest", "Newest", "Used"];
    Section::new("Snapshots", head, "No snapshots reported.", rows.collect())
}

/// Only when the slow tier reported versions: an empty table would say nothing.
fn versions_section(slow: Option<&Slow>) -> Option<Section> {
    let v = slow.and_then(|s| s.versions.as_ref())?;
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "–".into());
    let row = Row { cells: vec![dash(&v.pve_manager), dash(&v.kernel), dash(&v.zfs)], bad: false };
    Some(Section::new("Versions", vec!["pve-manager", "Kernel", "ZFS"], "", vec![row]))
}

#[derive(Deserialize)]
pub struct HostQuery {
    range: Option<String>,
}

/// The `?range=` asked for: the default without one, 400 for an unknown one or a query
/// string that does not parse.
fn chosen_range(query: Result<Query<HostQuery>, QueryRejection>) -> Result<Range, AppError> {
    let query = parse_query(query)?;
    match query.range.as_deref() {
        None | Some("") => Ok(Range::default()),
        Some(given) => given.parse().map_err(|e: crate::chart::UnknownRangeError| AppError::BadRequest(e.to_string())),
    }
}

/// Guest names by history subject ("vm/101"), from the latest medium sample.
fn guest_names(m: Option<&Medium>) -> HashMap<String, String> {
    let Some(m) = m else { return HashMap::new() };
    let kinds = [("vm", m.vms.as_ref()), ("ct", m.cts.as_ref())];
    kinds
        .into_iter()
        .flat_map(|(kind, guests)| {
            guests.into_iter().flatten().map(move |g| (format!("{kind}/{}", g.vmid), g.name.clone()))
        })
        .collect()
}

pub async fn host(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(host_id), _): WithRejection<Path<String>, AppError>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Html<String>, AppError> {
    let range = chosen_range(query)?;
    let (host, events) = one_host(&state, &host_id, 50).await?;
    let host = host.ok_or(AppError::NotFound)?;
    let now = wire::now_ms();
    let window = (now - range.duration_ms(), now);
    let id = host.host_id.clone();
    let history = read(&state.database, move |conn| HostHistory::read(conn, &id, window)).await?;
    // Decoded once for the whole page.
    let decoded = host.decoded();
    let charts = HostCharts::new(&history, range, now, host.fast_interval_ms, &guest_names(decoded.medium_data()));
    let mut errors: Vec<(String, String)> = Vec::new();
    let tiers = [
        ("fast", host.fast.as_ref().map(|p| &p.errors)),
        ("medium", decoded.medium.as_ref().map(|p| &p.errors)),
        ("slow", decoded.slow.as_ref().map(|p| &p.errors)),
    ];
    for (tier, errs) in tiers {
        for (name, message) in errs.into_iter().flatten() {
            errors.push((format!("{tier}/{name}"), message.clone()));
        }
    }
    let page = HostPage {
        c: CardView::new(&decoded.card(now), now),
        ranges: Range::ALL.into_iter().map(|r| (r.as_str(), r.label(), r == range)).collect(),
        range_label: range.label(),
        charts,
        facts: fast_facts(&host),
        sections: sections(&decoded, now),
        errors,
        events: events.into_iter().map(|e| (ago(Some(e.ts_ms), now), e.kind, e.message)).collect(),
        csrf: session.csrf,
    };
    Ok(Html(page.render()?))
}
