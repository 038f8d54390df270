//! The overview (`/`): counts per status, then the hosts a page at a time, problems
//! first. Whatever the fleet's size, a page renders [`PAGE_SIZE`] cards: the work that
//! grows with the fleet is one health evaluation and one sort key per host.

use std::cmp::Ordering;

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use serde::Deserialize;

use crate::error::AppError;
use crate::format::query_value;
use crate::history::read_sparklines;
use crate::routes::pages::CardView;
use crate::routes::{all_hosts, parse_query, read};
use crate::session::Session;
use crate::AppState;
use recorder::state::{Card, StatusCounts};
use recorder::status::{pct, Level};

/// Cards on one page of the overview; each gets its sparklines.
pub const PAGE_SIZE: usize = 100;

/// Levels as the overview lists them: what needs a look first, healthy last.
const PROBLEMS_FIRST: [Level; 4] = [Level::Critical, Level::Warning, Level::Offline, Level::Online];

fn rank(level: Level) -> usize {
    // PROBLEMS_FIRST holds every level.
    PROBLEMS_FIRST.iter().position(|l| *l == level).unwrap_or(PROBLEMS_FIRST.len())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Critical, warning, offline, then online; by name within each.
    #[default]
    Status,
    Name,
    /// Load average over 1 minute.
    Load,
    /// Memory used without ARC, as a share of the total.
    Memory,
    /// When the host was last heard from.
    Seen,
}

impl Sort {
    const ALL: [Sort; 5] = [Sort::Status, Sort::Name, Sort::Load, Sort::Memory, Sort::Seen];

    fn as_str(self) -> &'static str {
        match self {
            Sort::Status => "status",
            Sort::Name => "name",
            Sort::Load => "load",
            Sort::Memory => "memory",
            Sort::Seen => "seen",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::Seen => "last seen",
            other => other.as_str(),
        }
    }

    /// The direction a first click gives: worst first, A to Z, busiest first, and the
    /// longest silent first.
    fn default_dir(self) -> Dir {
        match self {
            Sort::Status | Sort::Name | Sort::Seen => Dir::Asc,
            Sort::Load | Sort::Memory => Dir::Desc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    Asc,
    Desc,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Dir::Asc => "asc",
            Dir::Desc => "desc",
        }
    }

    fn apply(self, ordering: Ordering) -> Ordering {
        match self {
            Dir::Asc => ordering,
            Dir::Desc => ordering.reverse(),
        }
    }

    fn flip(self) -> Dir {
        match self {
            Dir::Asc => Dir::Desc,
            Dir::Desc => Dir::Asc,
        }
    }
}

#[derive(Deserialize)]
pub struct OverviewQuery {
    status: Option<String>,
    sort: Option<Sort>,
    dir: Option<Dir>,
    page: Option<usize>,
    /// The overview's old search box: `/?q=` now goes to `/search`.
    q: Option<String>,
}

/// What one overview page shows: a filter, an order and a page number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listing {
    status: Option<Level>,
    sort: Sort,
    dir: Dir,
    page: usize,
}

impl Listing {
    fn from_query(q: &OverviewQuery) -> Result<Listing, AppError> {
        let status = match q.status.as_deref() {
            None | Some("") => None,
            Some(given) => Some(Level::ALL.into_iter().find(|l| l.as_str() == given).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "unknown status {given:?}, expected one of online, warning, critical, offline"
                ))
            })?),
        };
        let sort = q.sort.unwrap_or_default();
        let page = match q.page {
            None => 1,
            Some(0) => return Err(AppError::BadRequest("page 0 does not exist, pages count from 1".into())),
            Some(n) => n,
        };
        Ok(Listing { status, sort, dir: q.dir.unwrap_or(sort.default_dir()), page })
    }

    /// The overview's URL for this listing, without the parameters at their defaults.
    fn href(self) -> String {
        let mut params = Vec::new();
        if let Some(level) = self.status {
            params.push(format!("status={}", level.as_str()));
        }
        if self.sort != Sort::default() {
            params.push(format!("sort={}", self.sort.as_str()));
        }
        if self.dir != self.sort.default_dir() {
            params.push(format!("dir={}", self.dir.as_str()));
        }
        if self.page != 1 {
            params.push(format!("page={}", self.page));
        }
        if params.is_empty() {
            "/".into()
        } else {
            format!("/?{}", params.join("&"))
        }
    }
}

/// A card's memory use without ARC, in percent.
fn mem_pct(c: &Card) -> Option<f64> {
    pct(c.mem_used_without_arc(), c.mem_total)
}

/// The order of two cards in `sort` and `dir`; a card without the value sorts last either
/// way, and the host id breaks ties, so pages never overlap.
fn order(sort: Sort, dir: Dir, a: &Card, b: &Card) -> Ordering {
    let known_first = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => dir.apply(x.total_cmp(&y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let first = match sort {
        Sort::Status => dir.apply(rank(a.status).cmp(&rank(b.status))),
        Sort::Name => dir.apply(a.host_id.cmp(&b.host_id)),
        Sort::Load => known_first(a.load1, b.load1),
        Sort::Memory => known_first(mem_pct(a), mem_pct(b)),
        // Milliseconds since 1970 are exact in an f64 until the year 285,000.
        Sort::Seen => known_first(a.last_seen_ms.map(|t| t as f64), b.last_seen_ms.map(|t| t as f64)),
    };
    first.then_with(|| a.host_id.cmp(&b.host_id))
}

/// A link with its state: a filter, a sort or a page.
pub struct Link {
    pub label: String,
    pub href: String,
    pub on: bool,
    /// The element id the live script finds a count by; empty for none.
    pub id: String,
    /// The count a filter link shows, for the live script to adjust.
    pub count: usize,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    /// The session's token for the sign-out form.
    csrf: String,
    cards: Vec<CardView>,
    /// Registered hosts.
    total: usize,
    /// "All", then a link per level with its count, problems first.
    filters: Vec<Link>,
    sorts: Vec<Link>,
    /// "Hosts 101–200 of 9,800".
    range: String,
    pages: Vec<Link>,
    /// The first page, when this one is past the last.
    first_page: Option<String>,
}

/// Page links: first, previous, next, last (those that differ from this page).
fn page_links(listing: Listing, last: usize) -> Vec<Link> {
    let page = listing.page.min(last);
    let candidates = [("« first", 1), ("‹ previous", page.saturating_sub(1)), ("next ›", page + 1), ("last »", last)];
    let mut links: Vec<Link> = Vec::new();
    for (label, n) in candidates {
        if n == 0 || n > last || n == listing.page {
            continue;
        }
        let href = Listing { page: n, ..listing }.href();
        if links.iter().any(|l| l.href == href) {
            continue;
        }
        links.push(Link { label: format!("{label} ({n})"), href, on: false, id: String::new(), count: 0 });
    }
    links
}

/// Puts `shown[start..end]` in the listing's order, and only that: a partial sort, then
/// the page's own, so a page of a large fleet does not sort the whole fleet.
fn sort_page(shown: &mut [&Card], listing: Listing, start: usize, end: usize) {
    let by = |a: &&Card, b: &&Card| order(listing.sort, listing.dir, a, b);
    if end > start {
        if start > 0 {
            shown.select_nth_unstable_by(start, by);
        }
        let rest = &mut shown[start..];
        if end - start < rest.len() {
            rest.select_nth_unstable_by(end - start, by);
        }
        rest[..end - start].sort_unstable_by(by);
    }
}

/// "all N", then one link per status with its count, problems first.
fn filter_links(listing: Listing, counts: &StatusCounts, total: usize) -> Vec<Link> {
    let all = Listing { status: None, page: 1, ..listing };
    let mut filters = vec![Link {
        label: format!("all {}", total),
        href: all.href(),
        on: listing.status.is_none(),
        id: String::new(),
        count: total,
    }];
    for level in PROBLEMS_FIRST {
        let n = counts.get(level);
        filters.push(Link {
            label: format!("{} {n}", level.as_str()),
            href: Listing { status: Some(level), ..all }.href(),
            on: listing.status == Some(level),
            id: format!("count-{}", level.as_str()),
            count: n,
        });
    }
    filters
}

/// One link per sort; the current one flips the direction and shows an arrow.
fn sort_links(listing: Listing) -> Vec<Link> {
    Sort::ALL
        .into_iter()
        .map(|sort| {
            let on = sort == listing.sort;
            let dir = if on { listing.dir.flip() } else { sort.default_dir() };
            let arrow = match (on, listing.dir) {
                (false, _) => "",
                (true, Dir::Asc) => " ↑",
                (true, Dir::Desc) => " ↓",
            };
            Link {
                label: format!("{}{arrow}", sort.label()),
                href: Listing { sort, dir, page: 1, ..listing }.href(),
                on,
                id: format!("sort-{}", sort.as_str()),
                count: 0,
            }
        })
        .collect()
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let query = parse_query(query)?;
    if let Some(q) = query.q.as_deref().filter(|q| !q.trim().is_empty()) {
        return Ok(Redirect::to(&format!("/search?q={}", query_value(q))).into_response());
    }
    let listing = Listing::from_query(&query)?;
    let states = all_hosts(&state).await?;
    let now = wire::now_ms();
    let cards: Vec<Card> = states.iter().map(|s| s.card(now)).collect();
    let counts = StatusCounts::of(cards.iter().map(|c| c.status));
    let mut shown: Vec<&Card> = cards.iter().filter(|c| listing.status.is_none_or(|l| c.status == l)).collect();
    let matching = shown.len();
    let last = matching.div_ceil(PAGE_SIZE).max(1);
    let start = (listing.page - 1).saturating_mul(PAGE_SIZE).min(matching);
    let end = (start + PAGE_SIZE).min(matching);
    sort_page(&mut shown, listing, start, end);
    let page_cards = &shown[start..end];

    // `states` is in host id order (`all_hosts`).
    let interval = |id: &str| {
        states.binary_search_by(|s| s.host_id.as_str().cmp(id)).ok().and_then(|i| states[i].fast_interval_ms)
    };
    let spark_hosts: Vec<(String, Option<i64>)> =
        page_cards.iter().map(|c| (c.host_id.clone(), interval(&c.host_id))).collect();
    let mut sparks = read(&state.database, move |conn| read_sparklines(conn, &spark_hosts, now)).await?;

    let filters = filter_links(listing, &counts, cards.len());
    let sorts = sort_links(listing);
    let page = Overview {
        csrf: session.csrf,
        cards: page_cards
            .iter()
            .map(|c| CardView { sparks: sparks.remove(&c.host_id).unwrap_or_default(), ..CardView::new(c, now) })
            .collect(),
        total: cards.len(),
        filters,
        sorts,
        range: if end > start { format!("hosts {}–{end} of {matching}", start + 1) } else { String::new() },
        pages: page_links(listing, last),
        first_page: (listing.page > last).then(|| Listing { page: 1, ..listing }.href()),
    };
    Ok(Html(page.render()?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, status: Level, load1: Option<f64>) -> Card {
        Card {
            host_id: id.into(),
            status,
            reasons: vec![],
            online: status != Level::Offline,
            last_seen_ms: None,
            agent_version: None,
            load1,
            load15: None,
            cpus: None,
            cpu_pct: None,
            mem_total: None,
            mem_used: None,
            arc_bytes: None,
            pools: 0,
            pools_healthy: 0,
            vms_running: 0,
            vms_total: 0,
            cts_running: 0,
            cts_total: 0,
        }
    }

    fn sorted(sort: Sort, dir: Dir, cards: &[Card]) -> Vec<&str> {
        let mut cards: Vec<&Card> = cards.iter().collect();
        cards.sort_by(|a, b| order(sort, dir, a, b));
        cards.iter().map(|c| c.host_id.as_str()).collect()
    }

    #[test]
    fn problems_come_first_and_missing_values_last() {
        let cards = [
            card("a", Level::Online, Some(3.0)),
            card("b", Level::Offline, None),
            card("c", Level::Warning, Some(9.0)),
            card("d", Level::Critical, Some(1.0)),
        ];
        assert_eq!(sorted(Sort::Status, Dir::Asc, &cards), ["d", "c", "b", "a"]);
        assert_eq!(sorted(Sort::Status, Dir::Desc, &cards), ["a", "b", "c", "d"]);
        assert_eq!(sorted(Sort::Load, Dir::Desc, &cards), ["c", "a", "d", "b"]);
        assert_eq!(sorted(Sort::Load, Dir::Asc, &cards), ["d", "a", "c", "b"]);
        assert_eq!(sorted(Sort::Name, Dir::Desc, &cards), ["d", "c", "b", "a"]);
    }

    #[test]
    fn links_leave_out_the_defaults() {
        let listing = Listing { status: None, sort: Sort::Status, dir: Dir::Asc, page: 1 };
        assert_eq!(listing.href(), "/");
        let listing = Listing { status: Some(Level::Warning), sort: Sort::Load, dir: Dir::Asc, page: 3 };
        assert_eq!(listing.href(), "/?status=warning&sort=load&dir=asc&page=3");
    }
}
