//! Handler tests: `app(state)` called with `oneshot`, no socket (axum's examples/testing).
//! Each test gets its own migrated database and a real gateway on a router with no
//! clients.

use std::path::PathBuf;
use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

use crate::{app, AppState, Auth};

const PASSWORD: &str = "test-password";

/// A dashboard on a fresh database; the directory lives as long as the app.
struct TestApp {
    state: AppState,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("monitor.db");
        recorder::db::open_and_migrate(&database).unwrap();
        TestApp::on(dir, database).await
    }

    /// The app reading `database`, which need not exist.
    async fn on(dir: tempfile::TempDir, database: PathBuf) -> TestApp {
        let router = broker::Router::start(16);
        let gateway = broker::Gateway::new(router, broker::GatewayConfig::default(), None).await.unwrap();
        let (live, _) = tokio::sync::broadcast::channel(16);
        let (_, shutdown) = tokio::sync::watch::channel(false);
        let state = AppState {
            database,
            auth: Arc::new(Auth::new(&cheap_hash(PASSWORD), &"s".repeat(64)).unwrap()),
            gateway,
            live,
            recorder_stats: Arc::default(),
            fleet: recorder::fleet::Fleet::default(),
            shutdown,
            public_url: "ws://127.0.0.1:4000/mqtt".into(),
        };
        TestApp { state, _dir: dir }
    }

    async fn send(&self, request: Request<Body>) -> Response {
        app(self.state.clone()).oneshot(request).await.unwrap()
    }

    /// Signs in through `POST /login` and returns the session cookie.
    async fn login(&self) -> String {
        let response = self.send(form("/login", &format!("password={PASSWORD}"), None)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    fn host_ids(&self) -> Vec<String> {
        let conn = recorder::db::open_read(&self.state.database).unwrap();
        recorder::hosts::host_ids(&conn).unwrap().iter().map(|h| h.to_string()).collect()
    }
}

/// An argon2id hash with the smallest parameters: verifying the default ones takes
/// seconds in a debug build.
fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

/// A browser's GET (it accepts HTML).
fn page(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri).header(header::ACCEPT, "text/html");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

/// A browser's form POST.
fn form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri)
        .header(header::ACCEPT, "text/html")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

async fn body(response: Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The token the admin page shows once.
fn revealed_token(page: &str) -> String {
    let start = page.find(r#"id="token">"#).unwrap_or_else(|| panic!("no token on the page:\n{page}")) + 11;
    let token = &page[start..start + page[start..].find('<').unwrap()];
    assert_eq!(token.len(), 64, "{token}");
    token.to_owned()
}

fn location(response: &Response) -> &str {
    response.headers()[header::LOCATION].to_str().unwrap()
}

#[tokio::test]
async fn signed_out_pages_redirect_to_login_and_the_api_answers_401() {
    let app = TestApp::new().await;
    for uri in ["/", "/hosts/pve1", "/admin/hosts"] {
        let response = app.send(page(uri, None)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(location(&response), "/login", "{uri}");
    }
    for uri in ["/api/v1/hosts", "/api/v1/hosts/pve1"] {
        let response = app.send(page(uri, None)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{uri}, even asking for HTML");
    }
    let response = app.send(page("/", Some("pmon_session=forged"))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "an unsigned cookie is no session");
}

#[tokio::test]
async fn an_unknown_host_is_404() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let response = app.send(page("/hosts/pve-nowhere", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app.send(page("/api/v1/hosts/pve-nowhere", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_failing_handler_answers_500_internal_error_and_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let unopenable = dir.path().join("no-such-directory").join("monitor.db");
    let app = TestApp::on(dir, unopenable).await;
    let cookie = app.login().await;
    for uri in ["/", "/api/v1/hosts", "/admin/hosts"] {
        let response = app.send(page(uri, Some(&cookie))).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert_eq!(body(response).await, "internal error", "{uri}");
    }
}

#[tokio::test]
async fn admin_forms_add_rotate_and_remove_when_signed_in() {
    let app = TestApp::new().await;
    let cookie = app.login().await;

    let response = app.send(form("/admin/hosts", "host_id=pve-new", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let added = revealed_token(&body(response).await);
    assert_eq!(app.host_ids(), ["pve-new"]);

    let response = app.send(form("/admin/hosts", "host_id=pve-new", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a clash is shown on the page");

    let response = app.send(form("/admin/hosts/pve-new/rotate", "", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = revealed_token(&body(response).await);
    assert_ne!(rotated, added, "the page shows a new token");

    let response = app.send(form("/admin/hosts/pve-new/remove", "", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/hosts");
    assert!(app.host_ids().is_empty());
}

#[tokio::test]
async fn admin_forms_are_refused_when_signed_out() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let response = app.send(form("/admin/hosts", "host_id=pve-kept", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);

    for (uri, body) in [
        ("/admin/hosts", "host_id=pve-sneaky"),
        ("/admin/hosts/pve-kept/rotate", ""),
        ("/admin/hosts/pve-kept/remove", ""),
    ] {
        let response = app.send(form(uri, body, None)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(location(&response), "/login", "{uri}");
    }
    assert_eq!(app.host_ids(), ["pve-kept"], "nothing added, rotated away or removed");
}
