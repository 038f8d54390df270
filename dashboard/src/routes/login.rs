//! `/login` and `/logout`.

use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use axum_extra::extract::cookie::Cookie;
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use crate::auth::{lock, now_s};
use crate::client::Client;
use crate::error::AppError;
use crate::limit::Verdict;
use crate::session::{self, Session, COOKIE};
use crate::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<&'static str>,
    /// The sign-in form's own CSRF token (there is no session yet).
    csrf: String,
}

/// The sign-in page with its token, setting the token's cookie if the browser has none.
fn login_page(
    status: StatusCode,
    jar: SignedCookieJar,
    client: Client,
    error: Option<&'static str>,
) -> Result<Response, AppError> {
    let (csrf, cookie) = session::login_token(&jar, client.https);
    let jar = match cookie {
        Some(cookie) => jar.add(cookie),
        None => jar,
    };
    Ok((status, jar, Html(LoginPage { error, csrf }.render()?)).into_response())
}

pub async fn page(State(state): State<AppState>, client: Client, jar: SignedCookieJar) -> Result<Response, AppError> {
    if state.auth.session(&state.database, &jar, now_s()).await?.is_some() {
        return Ok(Redirect::to("/").into_response());
    }
    login_page(StatusCode::OK, jar, client, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
    #[serde(default)]
    csrf: String,
}

/// Checks the form's token (403), then the source's attempts (429 while it is locked
/// out), then the password; a failure is answered after the source's growing delay.
pub async fn submit(
    State(state): State<AppState>,
    client: Client,
    jar: SignedCookieJar,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form?;
    if !session::login_token_matches(&jar, &form.csrf) {
        return Err(AppError::Forbidden("the sign-in form has expired; reload the page and try again".into()));
    }
    let ip = client.addr.ip();
    let verdict = lock(&state.auth.limiter).attempt(ip, wire::now_ms());
    let delay = match verdict {
        Verdict::Refuse { retry_after } => {
            tracing::info!(%ip, "dashboard login refused: too many failures");
            return Err(AppError::TooManyAttempts { retry_after });
        }
        Verdict::Proceed { delay_on_failure } => delay_on_failure,
    };
    if state.auth.verify(form.password).await {
        lock(&state.auth.limiter).succeeded(ip);
        let cookie = state.auth.start_session(&state.database, now_s(), client.https).await?;
        let jar = jar.remove(session::login_cookie_removal()).add(cookie);
        return Ok((jar, Redirect::to("/")).into_response());
    }
    tracing::info!(%ip, "dashboard login failed");
    tokio::time::sleep(delay).await;
    login_page(StatusCode::UNAUTHORIZED, jar, client, Some("Incorrect password."))
}

/// Ends the session here and in the database: a copy of the cookie no longer works.
pub async fn logout(
    State(state): State<AppState>,
    Extension(session): Extension<Session>,
    jar: SignedCookieJar,
) -> Result<Response, AppError> {
    state.auth.end_session(&state.database, &session).await?;
    Ok((jar.remove(Cookie::build(COOKIE).path("/")), Redirect::to("/login")).into_response())
}
