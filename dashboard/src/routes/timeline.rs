//! `/timeline`: every host's events newest first, filtered by host and kind
//! (`?host=&kind=`), a page of [`PAGE_SIZE`] at a time. The "older" link carries the last
//! event's key (`before=<ts_ms>&before_id=<id>`); `before=<ts_ms>` alone starts at a time.

use askama::Template;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use axum::Extension;
use serde::Deserialize;

use crate::chart::time::date_time;
use crate::error::AppError;
use crate::format::ago;
use crate::routes::{parse_query, read};
use crate::session::Session;
use crate::AppState;
use recorder::changes::EVENT_KINDS;
use recorder::read::{fleet_events, EventCursor, EventFilter};

/// Events per page.
pub const PAGE_SIZE: usize = 100;

#[derive(Deserialize)]
pub struct TimelineQuery {
    #[serde(default)]
    host: String,
    #[serde(default)]
    kind: String,
    before: Option<i64>,
    before_id: Option<i64>,
}

/// The filter and the page asked for, or why they cannot be.
fn parse(q: &TimelineQuery) -> Result<(EventFilter, EventCursor), AppError> {
    let host = q.host.trim();
    let host_id = match host {
        "" => None,
        given => Some(
            wire::HostId::parse(given)
                .map_err(|_| AppError::BadRequest(format!("{given:?} is not a host id")))?
                .to_string(),
        ),
    };
    let kind = match q.kind.as_str() {
        "" => None,
        given if EVENT_KINDS.contains(&given) => Some(given.to_owned()),
        given => {
            return Err(AppError::BadRequest(format!(
                "unknown kind {given:?}, expected one of {}",
                EVENT_KINDS.join(", ")
            )))
        }
    };
    let cursor = match (q.before, q.before_id) {
        (None, None) => EventCursor::NEWEST,
        (Some(ts_ms), None) => EventCursor::before_time(ts_ms),
        (Some(ts_ms), Some(id)) => EventCursor { ts_ms, id },
        (None, Some(_)) => return Err(AppError::BadRequest("before_id needs before".into())),
    };
    Ok((EventFilter { host_id, kind }, cursor))
}

/// The timeline's URL for `filter` (and a page start), without the empty parameters.
fn href(filter: &EventFilter, cursor: Option<EventCursor>) -> String {
    let mut params = Vec::new();
    if let Some(host) = &filter.host_id {
        params.push(format!("host={host}"));
    }
    if let Some(kind) = &filter.kind {
        params.push(format!("kind={kind}"));
    }
    if let Some(c) = cursor {
        params.push(format!("before={}&before_id={}", c.ts_ms, c.id));
    }
    if params.is_empty() {
        "/timeline".into()
    } else {
        format!("/timeline?{}", params.join("&"))
    }
}

pub struct Row {
    pub when: String,
    pub ago: String,
    pub host_id: String,
    pub kind: String,
    pub message: String,
}

#[derive(Template)]
#[template(path = "timeline.html")]
struct TimelinePage {
    /// The session's token for the sign-out form.
    csrf: String,
    /// The host filter as typed, for the form.
    host: String,
    kind: String,
    /// "all kinds", then each kind, keeping the host filter.
    kinds: Vec<(String, String, bool)>,
    rows: Vec<Row>,
    /// The first page, when this one is not.
    newest: Option<String>,
    older: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    query: Result<Query<TimelineQuery>, QueryRejection>,
) -> Result<Html<String>, AppError> {
    let query = parse_query(query)?;
    let (filter, cursor) = parse(&query)?;
    let asked = filter.clone();
    // One more than a page: whether there is an older page.
    let mut events = read(&state.database, move |conn| fleet_events(conn, &asked, cursor, PAGE_SIZE + 1)).await?;
    let older = (events.len() > PAGE_SIZE).then(|| {
        events.truncate(PAGE_SIZE);
        // The page is full, so it has a last event.
        href(&filter, events.last().map(EventCursor::after))
    });
    let now = wire::now_ms();
    let mut kinds = vec![(
        "all kinds".to_owned(),
        href(&EventFilter { kind: None, ..filter.clone() }, None),
        filter.kind.is_none(),
    )];
    for kind in EVENT_KINDS {
        let link = href(&EventFilter { kind: Some(kind.to_owned()), ..filter.clone() }, None);
        kinds.push((kind.to_owned(), link, filter.kind.as_deref() == Some(kind)));
    }
    let page = TimelinePage {
        csrf: session.csrf,
        host: query.host,
        kind: query.kind,
        kinds,
        rows: events
            .into_iter()
            .map(|e| Row {
                when: date_time(e.ts_ms),
                ago: ago(Some(e.ts_ms), now),
                host_id: e.host_id,
                kind: e.kind,
                message: e.message,
            })
            .collect(),
        newest: (cursor != EventCursor::NEWEST).then(|| href(&filter, None)),
        older,
    };
    Ok(Html(page.render()?))
}
