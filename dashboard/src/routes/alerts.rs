//! `/admin/alerts`: firing and recently resolved alerts (acknowledge), channels (add,
//! send a test, remove; secrets redacted) and silences (add, remove). Every change goes
//! through `alerting::store`, the same functions as the CLI; a running alerting service
//! reads it within its next round.

use std::time::Duration;

use alerting::channel::{redact, redact_url, Channel};
use alerting::http::RetryPolicy;
use alerting::store::{self, StoreError};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::WithRejection;
use recorder::status::Rule;
use serde::Deserialize;

use crate::error::AppError;
use crate::format::ago;
use crate::routes::{read, write};
use crate::session::Session;
use crate::AppState;

/// Resolved alerts stay on the page this long.
const RECENT_MS: i64 = 24 * 3_600_000;

/// A "send test" from the page waits for one attempt only: the page is waiting.
const TEST_RETRY: RetryPolicy = RetryPolicy {
    attempts: 1,
    timeout: Duration::from_secs(5),
    backoff: Duration::ZERO,
    max_retry_after: Duration::ZERO,
};

pub struct AlertRow {
    pub id: i64,
    pub host: String,
    pub rule: &'static str,
    pub subject: String,
    pub state: &'static str,
    pub severity: &'static str,
    pub since: String,
    pub acked: bool,
    pub flapping: bool,
    pub message: String,
    /// Active and not yet acknowledged.
    pub can_ack: bool,
}

pub struct ChannelRow {
    pub name: String,
    pub kind: &'static str,
    pub url: String,
    pub token: String,
    pub secret: String,
    pub last: String,
}

pub struct SilenceRow {
    pub id: i64,
    pub host: String,
    pub rule: String,
    pub subject: String,
    pub ends: String,
    pub comment: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    alerts: Vec<AlertRow>,
    channels: Vec<ChannelRow>,
    silences: Vec<SilenceRow>,
    hosts: Vec<String>,
    rules: Vec<&'static str>,
    notice: Option<String>,
    error: Option<String>,
    csrf: String,
}

async fn render(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let now = wire::now_ms();
    let (alerts, channels, outcomes, silences, hosts) = read(&state.database, move |c| {
        let hosts = recorder::hosts::host_ids(c)?.into_iter().map(|h| h.to_string()).collect::<Vec<_>>();
        Ok((
            store::list_alerts(c, now, RECENT_MS)?,
            store::channels(c)?,
            store::last_outcomes(c)?,
            store::silences(c, now)?,
            hosts,
        ))
    })
    .await?;
    let alerts = alerts
        .into_iter()
        .map(|a| AlertRow {
            id: a.id,
            rule: a.identity.rule.as_str(),
            subject: a.identity.subject.clone(),
            state: a.state.as_str(),
            severity: a.severity.as_str(),
            since: ago(Some(a.started_ms), now),
            acked: a.acked,
            flapping: a.flapping,
            can_ack: a.state.is_active() && !a.acked,
            message: a.message,
            host: a.identity.host,
        })
        .collect();
    let channels = channels
        .into_iter()
        .map(|c| {
            let last = outcomes.iter().find(|o| o.channel == c.name).map_or_else(
                || "never".to_owned(),
                |d| {
                    let protocol = c.kind.protocol();
                    let status = d.http_status.map(|s| format!(" ({protocol} {s})")).unwrap_or_default();
                    format!("{}{status} {}", d.outcome, ago(Some(d.ts_ms), now))
                },
            );
            ChannelRow {
                kind: c.kind.as_str(),
                url: redact_url(&c.url),
                token: c.token.as_deref().map(redact).unwrap_or_default(),
                secret: c.secret.as_deref().map(redact).unwrap_or_default(),
                last,
                name: c.name,
            }
        })
        .collect();
    let silences = silences
        .into_iter()
        .map(|s| SilenceRow {
            id: s.id,
            host: s.host,
            rule: s.rule.unwrap_or_else(|| "any".into()),
            subject: s.subject.unwrap_or_else(|| "any".into()),
            ends: alerting::channel::webhook::rfc3339(s.ends_ms),
            comment: s.comment,
        })
        .collect();
    let code = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = AlertsPage {
        alerts,
        channels,
        silences,
        hosts,
        rules: Rule::ALL.iter().map(|r| r.as_str()).collect(),
        notice,
        error,
        csrf: session.csrf.clone(),
    };
    Ok((code, Html(page.render()?)).into_response())
}

pub async fn page(State(state): State<AppState>, Extension(session): Extension<Session>) -> Result<Response, AppError> {
    render(&state, &session, None, None).await
}

/// Runs a store action; a refusal (unknown id or name, a clash, a bad rule) is shown on
/// the page, a database failure is a 500. Success goes back to the page (a GET).
async fn change<F>(state: &AppState, session: &Session, f: F) -> Result<Response, AppError>
where
    F: FnOnce(&rusqlite::Connection) -> Result<(), StoreError> + Send + 'static,
{
    let outcome = write(&state.database, move |c| match f(c) {
        Err(StoreError::Db(e)) => Err(e.into()),
        other => Ok(other),
    })
    .await?;
    match outcome {
        Ok(()) => Ok(Redirect::to("/admin/alerts").into_response()),
        Err(refusal) => render(state, session, None, Some(refusal.to_string())).await,
    }
}

pub async fn ack(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(id), _): WithRejection<Path<i64>, AppError>,
) -> Result<Response, AppError> {
    tracing::info!(alert = id, "alert acknowledged from the admin page");
    change(&state, &session, move |c| store::ack(c, id).map(|_| ())).await
}

/// The add-channel form; its `csrf` field was checked before the handler ran. Empty
/// optional fields mean none.
#[derive(Deserialize)]
pub struct ChannelForm {
    name: String,
    kind: String,
    url: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    secret: String,
}

fn given(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

pub async fn add_channel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Form(form), _): WithRejection<Form<ChannelForm>, AppError>,
) -> Result<Response, AppError> {
    let name = form.name.trim().to_owned();
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !valid_name {
        let error = "a channel name is 1 to 64 letters, digits, '-', '_' or '.'".to_owned();
        return render(&state, &session, None, Some(error)).await;
    }
    let channel = match Channel::new(&name, form.kind.trim(), form.url.trim(), given(&form.token), given(&form.secret))
    {
        Ok(c) => c,
        Err(e) => return render(&state, &session, None, Some(e.to_string())).await,
    };
    tracing::info!(channel = %name, "channel added from the admin page");
    change(&state, &session, move |c| store::add_channel(c, &channel, wire::now_ms())).await
}

pub async fn test_channel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(name), _): WithRejection<Path<String>, AppError>,
) -> Result<Response, AppError> {
    let n = name.clone();
    let channel = read(&state.database, move |c| match store::channel(c, &n) {
        Ok(channel) => Ok(Ok(channel)),
        Err(StoreError::Db(e)) => Err(e),
        Err(refusal) => Ok(Err(refusal.to_string())),
    })
    .await?;
    let channel = match channel {
        Ok(c) => c,
        Err(refusal) => return render(&state, &session, None, Some(refusal)).await,
    };
    let (n, delivery) = alerting::task::test_channel(&channel, TEST_RETRY).await;
    let entry = alerting::task::log_entry(&channel, &n, &delivery);
    write(&state.database, move |c| Ok(store::log(c, &entry)?)).await?;
    let protocol = channel.kind.protocol();
    let status = delivery.status.map(|s| format!("{protocol} {s}")).unwrap_or_else(|| "no answer".into());
    match delivery.error {
        None => {
            render(&state, &session, Some(format!("Test sent on {name}: the receiver answered {status}.")), None).await
        }
        Some(e) => render(&state, &session, None, Some(format!("Test on {name} failed ({status}): {e}"))).await,
    }
}

pub async fn remove_channel(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(name), _): WithRejection<Path<String>, AppError>,
) -> Result<Response, AppError> {
    tracing::info!(channel = %name, "channel removed from the admin page");
    change(&state, &session, move |c| store::remove_channel(c, &name)).await
}

/// The add-silence form. An empty rule or subject matches every one.
#[derive(Deserialize)]
pub struct SilenceForm {
    host: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    subject: String,
    /// 90s, 30m, 2h, 7d.
    duration: String,
    comment: String,
}

pub async fn add_silence(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Form(form), _): WithRejection<Form<SilenceForm>, AppError>,
) -> Result<Response, AppError> {
    let Some(for_ms) = alerting::silence::parse_duration(&form.duration) else {
        let error = format!("invalid duration {:?}: use e.g. 90s, 30m, 2h, 7d", form.duration);
        return render(&state, &session, None, Some(error)).await;
    };
    let host = form.host.trim().to_owned();
    let h = host.clone();
    let known =
        read(&state.database, move |c| Ok(recorder::hosts::host_ids(c)?.iter().any(|id| id.as_str() == h))).await?;
    if !known {
        return render(&state, &session, None, Some(format!("no host named {host}"))).await;
    }
    let (rule, subject, comment) = (given(&form.rule), given(&form.subject), form.comment.trim().to_owned());
    tracing::info!(host = %host, rule = ?rule, "silence added from the admin page");
    change(&state, &session, move |c| {
        let now = wire::now_ms();
        store::add_silence(c, &host, rule.as_deref(), subject.as_deref(), now + for_ms, &comment, now).map(|_| ())
    })
    .await
}

pub async fn remove_silence(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(id), _): WithRejection<Path<i64>, AppError>,
) -> Result<Response, AppError> {
    tracing::info!(silence = id, "silence removed from the admin page");
    change(&state, &session, move |c| store::remove_silence(c, id)).await
}
