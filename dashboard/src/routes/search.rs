//! `/search?q=`: VMs and CTs by name, id or tag across the fleet, and hosts by name, from
//! every host's latest medium payload (the fleet's states: nothing is parsed per request).
//! `&backup=missing` keeps the guests that are not backed up (in no enabled backup job, or
//! with a failed or too old last backup: `routes::backups::missing`); with it, an empty
//! `q` matches every guest.

use std::sync::Arc;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::Extension;
use serde::Deserialize;

use crate::error::AppError;
use crate::format::ago;
use crate::routes::{all_hosts, backups, parse_query};
use crate::session::Session;
use crate::status::HostStatus;
use crate::AppState;
use recorder::state::HostState;

/// Hits shown per section; the rest are counted ("N more").
pub const RESULTS_CAP: usize = 500;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    backup: BackupFilter,
}

/// The `backup` filter: every guest, or only those not backed up.
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackupFilter {
    #[default]
    #[serde(rename = "")]
    Any,
    Missing,
}

pub struct HostHit {
    pub host_id: String,
    pub host_status: HostStatus,
    pub last_seen: String,
    pub guests: String,
}

pub struct GuestHit {
    /// "VM" or "CT".
    pub kind: &'static str,
    pub vmid: u32,
    pub name: String,
    pub status: String,
    pub tags: String,
    pub host_id: String,
    pub host_status: HostStatus,
    /// The last backup, or why there is none (`routes::backups::cell`).
    pub backup: String,
}

/// The hits of one search, each list capped at [`RESULTS_CAP`].
#[derive(Default)]
pub struct Hits {
    pub hosts: Vec<HostHit>,
    pub more_hosts: usize,
    pub guests: Vec<GuestHit>,
    pub more_guests: usize,
}

/// Case-insensitive substring search: hosts by id; VMs and CTs by name, id or tag, and
/// not backed up if `backup` says so. Hits come in host id order, guests by id within a
/// host.
pub fn search(states: &[Arc<HostState>], q: &str, backup: BackupFilter, now_ms: i64) -> Hits {
    let q = q.trim().to_lowercase();
    let mut hits = Hits::default();
    if q.is_empty() && backup == BackupFilter::Any {
        return hits;
    }
    for state in states {
        // Decoded once: the guests, the card and the backup findings all read it.
        let decoded = state.decoded();
        // The host's status is worked out only for a host with a hit.
        let mut status = None;
        let mut status_of = || *status.get_or_insert_with(|| HostStatus::of(&decoded.card(now_ms)));
        let medium = decoded.medium_data();
        if !q.is_empty() && backup == BackupFilter::Any && state.host_id.to_lowercase().contains(&q) {
            if hits.hosts.len() < RESULTS_CAP {
                let count = |g: Option<&Vec<wire::Guest>>| g.map_or(0, Vec::len);
                hits.hosts.push(HostHit {
                    host_id: state.host_id.clone(),
                    host_status: status_of(),
                    last_seen: ago(state.last_seen_ms, now_ms),
                    guests: format!(
                        "{} VMs · {} CTs",
                        count(medium.and_then(|m| m.vms.as_ref())),
                        count(medium.and_then(|m| m.cts.as_ref()))
                    ),
                });
            } else {
                hits.more_hosts += 1;
            }
        }
        let Some(medium) = medium else { continue };
        let host_backups = backups::of(Some(medium));
        let flagged = match backup {
            BackupFilter::Missing if host_backups.is_some() => backups::flagged(&decoded, now_ms),
            _ => Default::default(),
        };
        let mut guests: Vec<(&'static str, &wire::Guest)> = [("VM", medium.vms.as_ref()), ("CT", medium.cts.as_ref())]
            .into_iter()
            .flat_map(|(kind, guests)| guests.into_iter().flatten().map(move |g| (kind, g)))
            .filter(|(_, g)| {
                g.name.to_lowercase().contains(&q)
                    || g.vmid.to_string().contains(&q)
                    || g.tags.iter().any(|t| t.to_lowercase().contains(&q))
            })
            .filter(|(kind, g)| {
                let subject = format!("{}/{}", kind.to_lowercase(), g.vmid);
                backup == BackupFilter::Any || backups::missing(host_backups, g.vmid, flagged.contains(&subject))
            })
            .collect();
        guests.sort_by_key(|(_, g)| g.vmid);
        for (kind, g) in guests {
            if hits.guests.len() == RESULTS_CAP {
                hits.more_guests += 1;
                continue;
            }
            hits.guests.push(GuestHit {
                kind,
                vmid: g.vmid,
                name: g.name.clone(),
                status: g.status.to_string(),
                tags: g.tags.join(", "),
                host_id: state.host_id.clone(),
                host_status: status_of(),
                backup: backups::cell(host_backups, g.vmid, now_ms),
            });
        }
    }
    hits
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    /// The session's token for the sign-out form.
    csrf: String,
    q: String,
    /// Whether `backup=missing` is on.
    missing: bool,
    hits: Hits,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Result<Html<String>, AppError> {
    let query = parse_query(query)?;
    let hits = if query.q.trim().is_empty() && query.backup == BackupFilter::Any {
        Hits::default()
    } else {
        let states = all_hosts(&state).await?;
        search(&states, &query.q, query.backup, wire::now_ms())
    };
    let missing = query.backup == BackupFilter::Missing;
    Ok(Html(SearchPage { csrf: session.csrf, q: query.q, missing, hits }.render()?))
}
