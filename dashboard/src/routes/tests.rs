//! Handler tests: `app(state)` called with `oneshot`, no socket (axum's examples/testing).
//! Each test gets its own migrated database and a real gateway on a router with no
//! clients.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use tower::ServiceExt;

use crate::limit::LoginPolicy;
use crate::{app, AppState, Auth};

mod alerts;
mod rules;
mod security;

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
        let gateway = broker::Gateway::new(router, broker::GatewayConfig::default(), None, None).await.unwrap();
        let (live, _) = tokio::sync::broadcast::channel(16);
        let (_, shutdown) = tokio::sync::watch::channel(false);
        let state = AppState {
            database,
            // The server's sign-in limit without its delays, which would only slow tests.
            auth: Arc::new(
                Auth::new(&cheap_hash(PASSWORD), &"s".repeat(64))
                    .unwrap()
                    .with_login_policy(LoginPolicy { first_delay: Duration::ZERO, ..LoginPolicy::default() }),
            ),
            gateway,
            live,
            recorder_stats: Arc::default(),
            fleet: recorder::fleet::Fleet::default(),
            shutdown,
            public_url: "ws://127.0.0.1:4000/mqtt".into(),
            metrics: crate::MetricsOptions::default(),
        };
        TestApp { state, _dir: dir }
    }

    async fn send(&self, request: Request<Body>) -> Response {
        app(self.state.clone()).oneshot(request).await.unwrap()
    }

    /// Signs in through the sign-in form (its page, then `POST /login`) and returns the
    /// session cookie.
    async fn login(&self) -> String {
        let response = self.try_login(PASSWORD, &[]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        session_cookie(&response).expect("a session cookie")
    }

    /// Fetches the sign-in form and posts `password` with its token and cookie, with
    /// `headers` on both requests.
    async fn try_login(&self, password: &str, headers: &[(&'static str, &str)]) -> Response {
        let (cookie, token) = self.login_form(headers).await;
        let request =
            with_headers(form("/login", &format!("password={password}&csrf={token}"), Some(&cookie)), headers);
        self.send(request).await
    }

    /// The sign-in form's cookie and token.
    async fn login_form(&self, headers: &[(&'static str, &str)]) -> (String, String) {
        let response = self.send(with_headers(page("/login", None), headers)).await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("pmon_login=")).expect("pmon_login");
        let cookie = cookie.split(';').next().unwrap().to_owned();
        (cookie, csrf_field(&body(response).await))
    }

    /// The CSRF token a signed-in page carries.
    async fn csrf(&self, cookie: &str) -> String {
        let response = self.send(page("/admin/hosts", Some(cookie))).await;
        assert_eq!(response.status(), StatusCode::OK);
        csrf_field(&body(response).await)
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

/// Where test requests come from: the loopback proxy, or a local browser.
const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);

/// A browser's GET (it accepts HTML), from loopback.
fn page(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request =
        Request::get(uri).header(header::ACCEPT, "text/html").extension(ConnectInfo(SocketAddr::from(LOOPBACK)));
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

/// A browser's form POST, from loopback.
fn form(uri: &str, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri)
        .extension(ConnectInfo(SocketAddr::from(LOOPBACK)))
        .header(header::ACCEPT, "text/html")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

fn with_headers(mut request: Request<Body>, headers: &[(&'static str, &str)]) -> Request<Body> {
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    request
}

fn set_cookies(response: &Response) -> Vec<String> {
    response.headers().get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

/// The `pmon_session=...` pair a response sets, if any.
fn session_cookie(response: &Response) -> Option<String> {
    set_cookies(response)
        .into_iter()
        .find(|c| c.starts_with("pmon_session=") && !c.starts_with("pmon_session=;"))
        .map(|c| c.split(';').next().unwrap().to_owned())
}

/// The value of the first hidden `csrf` field on a page.
fn csrf_field(page: &str) -> String {
    let start = page.find(r#"name="csrf" value=""#).unwrap_or_else(|| panic!("no csrf field:\n{page}")) + 19;
    page[start..start + page[start..].find('"').unwrap()].to_owned()
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
    let app = TestApp::new().await;
    let cookie = app.login().await;
    // The database goes away; the session is still known (it is cached at sign-in).
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", app.state.database.display()));
    }
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
    let csrf = app.csrf(&cookie).await;

    let response = app.send(form("/admin/hosts", &format!("host_id=pve-new&csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let added = revealed_token(&body(response).await);
    assert_eq!(app.host_ids(), ["pve-new"]);

    let response = app.send(form("/admin/hosts", &format!("csrf={csrf}&host_id=pve-new"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a clash is shown on the page");

    let response = app.send(form("/admin/hosts/pve-new/rotate", &format!("csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let rotated = revealed_token(&body(response).await);
    assert_ne!(rotated, added, "the page shows a new token");

    let response = app.send(form("/admin/hosts/pve-new/remove", &format!("csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/admin/hosts");
    assert!(app.host_ids().is_empty());
}

#[tokio::test]
async fn admin_forms_are_refused_when_signed_out() {
    let app = TestApp::new().await;
    app.add_host("pve-kept");

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

const DAY_MS: i64 = 86_400_000;

impl TestApp {
    /// Registers `host_id` (no samples yet).
    fn add_host(&self, host_id: &str) {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        recorder::hosts::add_host(&mut conn, host_id).unwrap();
    }

    /// Fast samples of `host_id` at `times`, load1 and CPU varying with the time, left in
    /// `fast_recent` (the raw view's newest part), or, with `fold`, folded into the
    /// rollups the way the writer's settle does it and then deleted, as if retention had
    /// long since dropped the raw hours.
    fn seed(&self, host_id: &str, times: impl IntoIterator<Item = i64>, fold: bool) {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        let tx = conn.transaction().unwrap();
        for (i, ts_ms) in times.into_iter().enumerate() {
            tx.execute(
                "INSERT INTO fast_recent (host_id, ts_ms, seq, load1, load5, load15, cpu_pct, mem_total, mem_used, arc_bytes)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?4, ?5, 68719476736, 34359738368, 8589934592)",
                rusqlite::params![host_id, ts_ms, i as i64, 1.0 + (i % 7) as f64, 5.0 + (i % 50) as f64],
            )
            .unwrap();
        }
        if fold {
            let mut parts = recorder::rollup::Parts::load(&tx).unwrap();
            recorder::rollup::fold_recent(&tx, &mut parts).unwrap();
            tx.execute("DELETE FROM fast_recent", []).unwrap();
        }
        tx.commit().unwrap();
    }
}

/// The `<svg>` of the chart titled `title` on `page`.
fn chart<'p>(page: &'p str, title: &str) -> &'p str {
    let start = page.find(&format!(r#"aria-label="{title}, "#)).unwrap_or_else(|| panic!("no {title} chart:\n{page}"));
    let start = page[..start].rfind("<svg").unwrap();
    &page[start..start + page[start..].find("</svg>").unwrap()]
}

/// The hover titles of a chart: one per point (or per run of points past 250).
fn hover_titles(svg: &str) -> Vec<&str> {
    svg.split(r#"<rect class="chart-hit""#)
        .skip(1)
        .map(|s| &s[s.find("<title>").unwrap() + 7..s.find("</title>").unwrap()])
        .collect()
}

/// How many lines a chart draws (paths without a fill; bands have one).
fn lines(svg: &str) -> usize {
    svg.split(r#"<path d=""#).skip(1).filter(|s| s[s.find('"').unwrap()..].starts_with("\"/>")).count()
}

/// The UTC date of `ts_ms` as the chart's tooltips write it: "2024-03-05".
fn date(ts_ms: i64) -> String {
    crate::chart::time::date_time(ts_ms)[..10].to_owned()
}

#[tokio::test]
async fn the_host_page_draws_a_year_of_hour_rollups() {
    let app = TestApp::new().await;
    app.add_host("pve-old");
    let now = wire::now_ms();
    // Two years of history, a sample every 12 hours, long gone from the raw tier.
    let first = now - 730 * DAY_MS;
    app.seed("pve-old", (0..1460).map(|i| first + i * DAY_MS / 2), true);
    let cookie = app.login().await;

    let response = app.send(page("/hosts/pve-old?range=1y", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body(response).await;
    assert!(html.contains(r#"class="on" aria-current="page" title="1 year">1y</a>"#), "the range link is marked");
    let load = chart(&html, "Load");
    let titles = hover_titles(load);
    assert!(titles.len() > 200, "the year's 730 points (12 h apart, in 9 h buckets) share the hover strips");
    // The year's oldest bucket is about 365 days old; nothing of the year before it shows.
    let oldest = titles[0];
    let year_ago = now - 365 * DAY_MS;
    assert!(
        oldest.starts_with(&date(year_ago)) || oldest.starts_with(&date(year_ago + DAY_MS / 2)),
        "the first strip is from the old end of the year: {oldest}"
    );
    let newest = titles.last().unwrap();
    assert!(
        newest.contains(&date(now - DAY_MS)) || newest.contains(&date(now)),
        "and the last from the new end: {newest}"
    );
    assert!(oldest.contains("\n1 min: "), "{oldest}");
    let lines = lines(load);
    assert!(lines >= 3, "a line per load average, unbroken: the samples are closer than two buckets ({lines})");
    assert!(!load.contains("No data for this range"));
}

#[tokio::test]
async fn the_host_page_draws_recent_raw_samples() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let now = wire::now_ms();
    app.seed("pve1", (1..=120).map(|i| now - i * 30_000), false);
    let cookie = app.login().await;

    let response = app.send(page("/hosts/pve1?range=24h", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body(response).await;
    let load = chart(&html, "Load");
    assert!(!load.contains("No data for this range"), "{load}");
    assert_eq!(lines(load), 3, "one unbroken line per load average:\n{load}");
    let titles = hover_titles(load).len();
    assert!((40..=42).contains(&titles), "an hour of samples in 87 s buckets: {titles}");
    let cpu = chart(&html, "CPU");
    assert_eq!(lines(cpu), 1, "busy; iowait was not reported:\n{cpu}");
    // Swap was never reported: its chart says so.
    assert!(chart(&html, "Swap").contains("No data for this range"));
    // Without ?range= the page shows the default, 24 hours.
    let html = body(app.send(page("/hosts/pve1", Some(&cookie))).await).await;
    assert!(html.contains(r#"class="on" aria-current="page" title="24 hours">24h</a>"#));
}

#[tokio::test]
async fn a_host_without_history_says_no_data() {
    let app = TestApp::new().await;
    app.add_host("pve-new");
    let cookie = app.login().await;
    let response = app.send(page("/hosts/pve-new?range=7d", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body(response).await;
    assert!(chart(&html, "Load").contains("No data for this range"));
    assert!(html.contains("History, last 7 days"));
}

#[tokio::test]
async fn an_unknown_range_or_a_malformed_query_is_400_with_its_reason() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let cookie = app.login().await;
    let response = app.send(page("/hosts/pve1?range=2h", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body(response).await, r#"unknown range "2h", expected one of 1h, 6h, 24h, 48h, 7d, 30d, 1y"#);
    let response = app.send(page("/hosts/pve1?range=1h&range=6h", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body(response).await;
    assert!(text.starts_with("malformed query string: "), "{text}");
    assert!(!text.contains('\n'), "{text}");
}

#[tokio::test]
async fn overview_cards_have_sparklines_of_the_last_hour() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    app.add_host("pve2");
    let now = wire::now_ms();
    app.seed("pve1", (1..=120).map(|i| now - i * 30_000), false);
    let cookie = app.login().await;
    let html = body(app.send(page("/", Some(&cookie))).await).await;
    let card = |id: &str| {
        let start = html.find(&format!(r#"id="card-{id}""#)).unwrap();
        html[start..start + html[start..].find("</a>").unwrap()].to_owned()
    };
    let pve1 = card("pve1");
    assert_eq!(pve1.matches(r#"class="sparkline""#).count(), 2, "{pve1}");
    assert!(pve1.contains("<title>CPU: latest "), "{pve1}");
    assert!(pve1.contains("<title>Memory without ARC: latest 37.5%"), "(32 GiB - 8 GiB ARC) of 64 GiB:\n{pve1}");
    assert!(card("pve2").contains("<title>CPU: no data</title>"));
}

mod fleet;
mod metrics;
