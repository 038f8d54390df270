//! `/login` and `/logout`.

use askama::Template;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::cookie::Cookie;
use axum_extra::extract::SignedCookieJar;
use serde::Deserialize;

use crate::auth::{is_https, now_s, COOKIE};
use crate::error::AppError;
use crate::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<&'static str>,
}

pub async fn page(State(state): State<AppState>, jar: SignedCookieJar) -> Result<Response, AppError> {
    if state.auth.is_signed_in(&jar, now_s()) {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(Html(LoginPage { error: None }.render()?).into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
}

pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: SignedCookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    if state.auth.verify(form.password).await {
        let jar = jar.add(state.auth.session_cookie(now_s(), is_https(&headers)));
        return Ok((jar, Redirect::to("/")).into_response());
    }
    tracing::info!("dashboard login failed");
    let page = LoginPage { error: Some("Incorrect password.") };
    Ok((axum::http::StatusCode::UNAUTHORIZED, Html(page.render()?)).into_response())
}

pub async fn logout(jar: SignedCookieJar) -> impl IntoResponse {
    (jar.remove(Cookie::build(COOKIE).path("/")), Redirect::to("/login"))
}
