//! The stylesheet and the script, embedded in the binary and served at URLs that name
//! their content (`/static/app.<hash>.css`), cached for a year: a new build changes the
//! URL, so a browser never runs a stale script. Any other name under `/static/` is 404.
//! They are files rather than inline blocks because the Content-Security-Policy allows
//! no inline script or style (see [`crate::headers`]).

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::AppError;

pub struct Asset {
    /// `app.<first 16 hex digits of its SHA-256>.css`.
    pub name: String,
    content_type: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static [u8]) -> Asset {
        let hash: String = Sha256::digest(body).iter().take(8).map(|b| format!("{b:02x}")).collect();
        Asset { name: format!("{stem}.{hash}.{ext}"), content_type, body }
    }

    pub fn url(&self) -> String {
        format!("/static/{}", self.name)
    }
}

pub static CSS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("app", "css", "text/css; charset=utf-8", include_bytes!("../static/app.css")));
pub static JS: LazyLock<Asset> =
    LazyLock::new(|| Asset::new("app", "js", "text/javascript; charset=utf-8", include_bytes!("../static/app.js")));

/// The stylesheet's URL, for templates.
pub fn css_url() -> String {
    CSS.url()
}

/// The script's URL, for templates.
pub fn js_url() -> String {
    JS.url()
}

/// `GET /static/{file}`: the asset of that exact name, immutable; anything else 404.
pub async fn serve(Path(file): Path<String>) -> Result<Response, AppError> {
    let asset = [&*CSS, &*JS].into_iter().find(|a| a.name == file).ok_or(AppError::NotFound)?;
    Ok((
        [(header::CONTENT_TYPE, asset.content_type), (header::CACHE_CONTROL, "public, max-age=31536000, immutable")],
        asset.body,
    )
        .into_response())
}
