//! "Safe on the internet" (issue #12): security headers and CSP, no inline code on any
//! page, hashed static assets, the sign-in limit, CSRF tokens, the session cookie's
//! flags, server-side sign-out, and 4xx (never 5xx) for bad input.

use super::*;
use crate::assets::{CSS, JS};
use crate::headers::CSP;

/// What the CSP would block on a page: `<script>` without `src`, `<style>`, `style=`
/// attributes and `on...=` event handlers.
pub(super) fn inline_code(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for tag in html.split('<').skip(1).map(|t| &t[..t.find('>').unwrap_or(t.len())]) {
        let name = tag.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if (name == "script" && !tag.contains(" src=")) || name == "style" {
            found.push(format!("<{tag}>"));
        }
        for attr in tag.split_whitespace().skip(1) {
            let attr_name = attr.split('=').next().unwrap_or("").to_ascii_lowercase();
            if attr.contains('=') && (attr_name == "style" || attr_name.starts_with("on")) {
                found.push(format!("<{tag}>"));
            }
        }
    }
    found
}

#[test]
fn inline_code_finds_what_the_csp_blocks() {
    let page = r#"<script src="/a.js"></script><p class="online" data-status="online">ok</p>"#;
    assert!(inline_code(page).is_empty(), "{:?}", inline_code(page));
    for bad in ["<script>x()</script>", "<style>p{}</style>", r#"<div style="width:5%">"#, r#"<form onsubmit="x()">"#] {
        assert_eq!(inline_code(bad).len(), 1, "{bad}");
    }
}

fn assert_security_headers(response: &Response, what: &str) {
    let h = response.headers();
    let csp = h.get(header::CONTENT_SECURITY_POLICY).unwrap_or_else(|| panic!("{what}: no CSP")).to_str().unwrap();
    assert_eq!(csp, CSP, "{what}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{what}: {csp}");
    for directive in ["script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"] {
        assert!(csp.contains(directive), "{what}: {directive} in {csp}");
    }
    assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{what}");
    assert_eq!(h[header::REFERRER_POLICY], "same-origin", "{what}");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "{what}");
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let cookie = app.login().await;
    let cases = [
        ("the sign-in page", page("/login", None), StatusCode::OK),
        ("the overview", page("/", Some(&cookie)), StatusCode::OK),
        ("a static asset", page(&CSS.url(), None), StatusCode::OK),
        ("an unknown path", page("/nowhere", Some(&cookie)), StatusCode::NOT_FOUND),
        ("an unknown range", page("/hosts/pve1?range=2h", Some(&cookie)), StatusCode::BAD_REQUEST),
        ("a refused form", form("/admin/hosts", "host_id=x", Some(&cookie)), StatusCode::FORBIDDEN),
        ("the API", page("/api/v1/hosts", Some(&cookie)), StatusCode::OK),
        ("a redirect", page("/", None), StatusCode::SEE_OTHER),
    ];
    for (what, request, status) in cases {
        let response = app.send(request).await;
        assert_eq!(response.status(), status, "{what}");
        assert_security_headers(&response, what);
    }
    let response = app.send(page("/", Some(&cookie))).await;
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store", "pages carry tokens: never cached");
}

#[tokio::test]
async fn pages_have_no_inline_script_style_or_event_handler() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let now = wire::now_ms();
    app.seed("pve1", (1..=120).map(|i| now - i * 30_000), false);
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let login = body(app.send(page("/login", None)).await).await;
    let overview = body(app.send(page("/", Some(&cookie))).await).await;
    assert!(overview.contains(r#"class="sparkline""#), "the overview has its sparklines");
    let host = body(app.send(page("/hosts/pve1?range=24h", Some(&cookie))).await).await;
    assert!(host.contains(r#"<rect class="chart-hit""#), "the host page has its charts");
    let admin = body(app.send(page("/admin/hosts", Some(&cookie))).await).await;
    assert!(admin.contains("data-confirm="), "the admin page asks before rotate and remove");
    let added = body(app.send(form("/admin/hosts", &format!("host_id=pve2&csrf={csrf}"), Some(&cookie))).await).await;
    assert!(added.contains(r#"id="token""#));
    for (what, html) in
        [("login", &login), ("overview", &overview), ("host", &host), ("admin", &admin), ("added", &added)]
    {
        assert_eq!(inline_code(html), Vec::<String>::new(), "{what}");
        assert!(html.contains(&format!(r#"<link rel="stylesheet" href="{}">"#, CSS.url())), "{what}");
        assert!(html.contains(&format!(r#"<script src="{}" defer></script>"#, JS.url())), "{what}");
    }
}

#[tokio::test]
async fn static_assets_are_immutable_at_their_hash_and_404_at_any_other() {
    let app = TestApp::new().await;
    for (asset, content_type, source) in [
        (&*CSS, "text/css; charset=utf-8", include_str!("../../../static/app.css")),
        (&*JS, "text/javascript; charset=utf-8", include_str!("../../../static/app.js")),
    ] {
        let hash = asset.name.split('.').nth(1).unwrap();
        assert!(hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{}", asset.url());
        let response = app.send(page(&asset.url(), None)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "public, max-age=31536000, immutable");
        assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
        assert_eq!(body(response).await, source);
    }
    for uri in ["/static/app.0000000000000000.css", "/static/app.css", "/static/app.js", "/static/../Cargo.toml"] {
        let response = app.send(page(uri, None)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(response.headers().get(header::CACHE_CONTROL).is_none_or(|c| c == "no-store"), "{uri}");
    }
}

#[tokio::test]
async fn repeated_failed_sign_ins_from_one_address_get_429_while_another_gets_in() {
    let app = TestApp::new().await;
    let attacker = [("x-forwarded-for", "198.51.100.1, 203.0.113.7")];
    for i in 0..5 {
        let response = app.try_login("wrong", &attacker).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
    let response = app.try_login(PASSWORD, &attacker).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "even the right password, while locked out");
    let retry: u64 = response.headers()[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((59..=60).contains(&retry), "{retry}");
    assert!(body(response).await.contains("too many failed sign-ins"));

    // Another address behind the proxy, and the proxy's own address, are other sources.
    let response = app.try_login(PASSWORD, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the attacker's first hop is not what counts");
    let response = app.try_login(PASSWORD, &[]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // A loopback request without a forwarded address is limited too (as itself).
    for _ in 0..5 {
        assert_eq!(app.try_login("wrong", &[]).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.try_login(PASSWORD, &[]).await.status(), StatusCode::TOO_MANY_REQUESTS);
    let response = app.try_login(PASSWORD, &[("x-forwarded-for", "192.0.2.44")]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_success_resets_the_failures() {
    let app = TestApp::new().await;
    let from = [("x-forwarded-for", "203.0.113.7")];
    for _ in 0..4 {
        assert_eq!(app.try_login("wrong", &from).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.try_login(PASSWORD, &from).await.status(), StatusCode::SEE_OTHER);
    for _ in 0..4 {
        assert_eq!(app.try_login("wrong", &from).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.try_login(PASSWORD, &from).await.status(), StatusCode::SEE_OTHER, "four again, not eight");
}

#[tokio::test]
async fn sign_in_without_the_forms_token_is_403() {
    let app = TestApp::new().await;
    let (cookie, token) = app.login_form(&[]).await;
    let (other_cookie, _) = TestApp::new().await.login_form(&[]).await;
    for (what, body, cookie) in [
        ("no token", format!("password={PASSWORD}"), Some(cookie.as_str())),
        ("a wrong token", format!("password={PASSWORD}&csrf=0123456789abcdef0123456789abcdef"), Some(&cookie)),
        ("no cookie", format!("password={PASSWORD}&csrf={token}"), None),
        ("another form's cookie", format!("password={PASSWORD}&csrf={token}"), Some(&other_cookie)),
    ] {
        let response = app.send(form("/login", &body, cookie)).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(session_cookie(&response).is_none(), "{what}");
    }
    let response = app.send(form("/login", &format!("password={PASSWORD}&csrf={token}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "with both");
}

#[tokio::test]
async fn admin_forms_and_sign_out_without_the_sessions_token_are_403() {
    let app = TestApp::new().await;
    app.add_host("pve-kept");
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    // Another session's token is no good either.
    let other = app.csrf(&app.login().await).await;
    assert_ne!(other, csrf);
    for token in ["", "&csrf=", "&csrf=0123456789abcdef0123456789abcdef", &format!("&csrf={other}")] {
        for (uri, fields) in [
            ("/admin/hosts", format!("host_id=pve-sneaky{token}")),
            ("/admin/hosts/pve-kept/rotate", token.trim_start_matches('&').to_owned()),
            ("/admin/hosts/pve-kept/remove", token.trim_start_matches('&').to_owned()),
            ("/logout", token.trim_start_matches('&').to_owned()),
        ] {
            let response = app.send(form(uri, &fields, Some(&cookie))).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{uri} with {token:?}");
            assert!(body(response).await.contains("security token"), "{uri}");
        }
    }
    assert_eq!(app.host_ids(), ["pve-kept"], "nothing added or removed");
    assert_eq!(app.send(page("/", Some(&cookie))).await.status(), StatusCode::OK, "still signed in");
    let response = app.send(page("/logout", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "no sign-out by a link");
    let response = app.send(form("/admin/hosts/pve-kept/rotate", &format!("csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::OK, "with the token");
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https_httponly_and_strict() {
    let app = TestApp::new().await;
    let over_https = [("x-forwarded-proto", "https"), ("x-forwarded-for", "203.0.113.7")];
    let response = app.send(with_headers(page("/login", None), &over_https)).await;
    let login_cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("pmon_login=")).unwrap();
    assert!(login_cookie.contains("; Secure"), "{login_cookie}");

    let response = app.try_login(PASSWORD, &over_https).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("pmon_session=")).unwrap();
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }

    let response = app.try_login(PASSWORD, &[]).await;
    let cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("pmon_session=")).unwrap();
    assert!(!cookie.contains("Secure"), "plain http from loopback: {cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn x_forwarded_proto_from_anyone_but_the_loopback_proxy_is_ignored() {
    let app = TestApp::new().await;
    let stranger = ConnectInfo(SocketAddr::from(([198, 51, 100, 9], 5000)));
    let mut get = with_headers(page("/login", None), &[("x-forwarded-proto", "https")]);
    get.extensions_mut().insert(stranger);
    let response = app.send(get).await;
    let cookie = set_cookies(&response).into_iter().find(|c| c.starts_with("pmon_login=")).unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn after_sign_out_the_old_cookie_is_refused() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let response = app.send(form("/logout", &format!("csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    assert!(set_cookies(&response).iter().any(|c| c.starts_with("pmon_session=;")), "the browser forgets it");

    // A copy of the cookie kept from before is no session.
    let response = app.send(page("/", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    assert_eq!(app.send(page("/api/v1/hosts", Some(&cookie))).await.status(), StatusCode::UNAUTHORIZED);
    let response = app.send(form("/admin/hosts", &format!("host_id=pve-x&csrf={csrf}"), Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(app.host_ids().is_empty());
    // Nor after a restart: the sessions table is the truth, not the process's memory.
    let restarted =
        AppState { auth: Arc::new(Auth::new(&cheap_hash(PASSWORD), &"s".repeat(64)).unwrap()), ..app.state.clone() };
    let response = crate::app(restarted).oneshot(page("/", Some(&cookie))).await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

/// Asserts a 4xx with a one-line plain-text reason.
async fn assert_clear_4xx(response: Response, status: StatusCode, what: &str) -> String {
    assert_eq!(response.status(), status, "{what}");
    assert_security_headers(&response, what);
    let text = body(response).await;
    assert!(!text.is_empty() && !text.contains('\n') && text != "internal error", "{what}: {text:?}");
    text
}

#[tokio::test]
async fn bad_input_on_every_route_is_a_clear_4xx() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let signed = Some(cookie.as_str());
    let cases: Vec<(&str, Request<Body>, StatusCode)> = vec![
        ("unknown host", page("/hosts/pve-nowhere", signed), StatusCode::NOT_FOUND),
        ("unknown host, API", page("/api/v1/hosts/pve-nowhere", signed), StatusCode::NOT_FOUND),
        ("unknown range", page("/hosts/pve1?range=2h", signed), StatusCode::BAD_REQUEST),
        ("repeated range", page("/hosts/pve1?range=1h&range=6h", signed), StatusCode::BAD_REQUEST),
        ("repeated status", page("/?status=a&status=b", signed), StatusCode::BAD_REQUEST),
        ("repeated search", page("/?q=a&q=b", signed), StatusCode::BAD_REQUEST),
        ("not UTF-8 in a path", page("/hosts/%FF", signed), StatusCode::BAD_REQUEST),
        ("not UTF-8 in an API path", page("/api/v1/hosts/%FF", signed), StatusCode::BAD_REQUEST),
        ("unknown path", page("/wp-login.php", signed), StatusCode::NOT_FOUND),
        ("unknown static file", page("/static/x", None), StatusCode::NOT_FOUND),
        (
            "add without a host id",
            form("/admin/hosts", &format!("csrf={csrf}"), signed),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "add with a repeated host id",
            form("/admin/hosts", &format!("csrf={csrf}&host_id=a&host_id=b"), signed),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "rotate of a path that is not UTF-8",
            form("/admin/hosts/%FF/rotate", &format!("csrf={csrf}"), signed),
            StatusCode::BAD_REQUEST,
        ),
        ("sign-in without a password", form("/login", "csrf=x", None), StatusCode::UNPROCESSABLE_ENTITY),
        (
            "sign-in that is not a form",
            Request::post("/login").extension(ConnectInfo(SocketAddr::from(LOOPBACK))).body(Body::from("{}")).unwrap(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("a huge form", form("/admin/hosts", &"x".repeat(64 * 1024), signed), StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (what, request, status) in cases {
        let text = assert_clear_4xx(app.send(request).await, status, what).await;
        if status == StatusCode::UNPROCESSABLE_ENTITY || what.contains("UTF-8") || what.starts_with("repeated") {
            assert!(text.starts_with("malformed "), "{what}: {text}");
        }
    }
    // Unknown query parameters are ignored, not refused.
    assert_eq!(app.send(page("/admin/hosts?x=%FF%FE", signed)).await.status(), StatusCode::OK);
}
