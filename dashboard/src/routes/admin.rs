//! `/admin/hosts`: register, rotate and remove hosts. A new token is shown once.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::WithRejection;
use serde::Deserialize;

use crate::error::AppError;
use crate::format::ago;
use crate::routes::{read, write};
use crate::session::Session;
use crate::status::HostStatus;
use crate::AppState;

pub struct Revealed {
    pub host_id: String,
    pub token: String,
}

pub struct AdminRow {
    pub host_id: String,
    pub host_status: HostStatus,
    pub last_seen: String,
    pub agent_version: String,
    /// When its token was created or last rotated.
    pub token_age: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    hosts: Vec<AdminRow>,
    token: Option<Revealed>,
    error: Option<String>,
    public_url: String,
    csrf: String,
}

async fn render(
    state: &AppState,
    session: &Session,
    token: Option<Revealed>,
    error: Option<String>,
) -> Result<Response, AppError> {
    let fleet = state.fleet.clone();
    let (rows, states) = read(&state.database, move |conn| {
        Ok((recorder::hosts::list_hosts(conn)?, recorder::read::all_hosts(conn, &fleet)?))
    })
    .await?;
    let now = wire::now_ms();
    // Presence and health as the overview shows them: from the same state, by the same rules.
    let statuses: HashMap<&str, HostStatus> =
        states.iter().map(|s| (s.host_id.as_str(), HostStatus::of(&s.card(now)))).collect();
    let hosts = rows
        .into_iter()
        .map(|h| {
            let token_age = match h.rotated_ms {
                Some(r) => format!("rotated {}", ago(Some(r), now)),
                None => format!("created {}", ago(Some(h.created_ms), now)),
            };
            // A host registered between the two reads has no state yet: judged as unseen.
            let host_status = statuses
                .get(h.host_id.as_str())
                .copied()
                .unwrap_or_else(|| HostStatus::new(h.online, recorder::status::Level::Offline));
            AdminRow {
                host_status,
                last_seen: ago(h.last_seen_ms, now),
                agent_version: h.agent_version.unwrap_or_default(),
                token_age,
                host_id: h.host_id,
            }
        })
        .collect();
    let code = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = AdminPage { hosts, token, error, public_url: state.public_url.clone(), csrf: session.csrf.clone() };
    Ok((code, Html(page.render()?)).into_response())
}

pub async fn page(State(state): State<AppState>, Extension(session): Extension<Session>) -> Result<Response, AppError> {
    render(&state, &session, None, None).await
}

/// The add form; its `csrf` field was checked before the handler ran.
#[derive(Deserialize)]
pub struct AddForm {
    host_id: String,
}

/// Runs a registry action; a refusal (bad name, clash, unknown host) is shown on the page.
async fn registry<F>(state: &AppState, f: F) -> Result<Result<String, String>, AppError>
where
    F: FnOnce(&mut rusqlite::Connection) -> Result<String, recorder::hosts::RegistryError> + Send + 'static,
{
    write(&state.database, move |conn| match f(conn) {
        Ok(token) => Ok(Ok(token)),
        Err(recorder::hosts::RegistryError::Db(e)) => Err(e.into()),
        Err(refusal) => Ok(Err(refusal.to_string())),
    })
    .await
}

pub async fn add(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Form(form), _): WithRejection<Form<AddForm>, AppError>,
) -> Result<Response, AppError> {
    let name = form.host_id.trim().to_owned();
    let id = name.clone();
    match registry(&state, move |c| recorder::hosts::add_host(c, &id).map(|(_, t)| t)).await? {
        Ok(token) => {
            tracing::info!(host = %name, "host added from the admin page");
            render(&state, &session, Some(Revealed { host_id: name, token }), None).await
        }
        Err(refusal) => render(&state, &session, None, Some(refusal)).await,
    }
}

pub async fn rotate(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(host_id), _): WithRejection<Path<String>, AppError>,
) -> Result<Response, AppError> {
    let id = host_id.clone();
    match registry(&state, move |c| recorder::hosts::rotate_host(c, &id)).await? {
        Ok(token) => {
            tracing::info!(host = %host_id, "token rotated from the admin page");
            render(&state, &session, Some(Revealed { host_id, token }), None).await
        }
        Err(refusal) => render(&state, &session, None, Some(refusal)).await,
    }
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    WithRejection(Path(host_id), _): WithRejection<Path<String>, AppError>,
) -> Result<Response, AppError> {
    let id = host_id.clone();
    match registry(&state, move |c| recorder::hosts::remove_host(c, &id).map(|()| String::new())).await? {
        Ok(_) => {
            tracing::info!(host = %host_id, "host removed from the admin page");
            Ok(Redirect::to("/admin/hosts").into_response())
        }
        Err(refusal) => render(&state, &session, None, Some(refusal)).await,
    }
}
