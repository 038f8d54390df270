//! `/admin/hosts`: register, rotate and remove hosts. A new token is shown once.

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
use crate::AppState;

pub struct Revealed {
    pub host_id: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    /// (host id, status, last seen, agent version, token created or rotated).
    hosts: Vec<(String, &'static str, String, String, String)>,
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
    let rows = read(&state.database, recorder::hosts::list_hosts).await?;
    let now = wire::now_ms();
    let hosts = rows
        .into_iter()
        .map(|h| {
            let token_age = match h.rotated_ms {
                Some(r) => format!("rotated {}", ago(Some(r), now)),
                None => format!("created {}", ago(Some(h.created_ms), now)),
            };
            let status = if h.online { "online" } else { "offline" };
            (h.host_id, status, ago(h.last_seen_ms, now), h.agent_version.unwrap_or_default(), token_age)
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
