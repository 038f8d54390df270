//! `/admin/alerts` (issue #13): alerts with acknowledge, channels with a test that shows
//! the receiver's answer, silences; through `alerting::store`, behind sign-in and CSRF.

use super::security::inline_code;
use super::*;
use alerting::alert::{Alert, Identity, State};
use recorder::status::{Level, Rule};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A receiver on loopback that answers every request with `status` and counts them.
async fn receiver(status: u16) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0; 64 * 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
                .await;
        }
    });
    (addr, hits)
}

impl TestApp {
    fn firing_alert(&self, host: &str) -> i64 {
        let mut conn = recorder::db::open(&self.state.database).unwrap();
        let identity = Identity { host: host.into(), rule: Rule::PoolState, subject: "tank".into() };
        let mut a = Alert::new(identity, Level::Warning, None, "pool tank is DEGRADED".into(), wire::now_ms() - 60_000);
        a.state = State::Firing;
        alerting::store::save_alerts(&mut conn, &[a]).unwrap()[0].1
    }

    fn db(&self) -> rusqlite::Connection {
        recorder::db::open_read(&self.state.database).unwrap()
    }
}

#[tokio::test]
async fn the_alerts_page_acknowledges_tests_channels_and_manages_silences() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let id = app.firing_alert("pve1");
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let signed = Some(cookie.as_str());

    let html = body(app.send(page("/admin/alerts", signed)).await).await;
    assert!(html.contains(r#"<a href="/admin/alerts">Alerts</a>"#), "linked from the nav bar");
    assert!(html.contains(&format!(r#"id="alert-{id}""#)) && html.contains("pool tank is DEGRADED"));
    assert!(html.contains(&format!(r#"action="/admin/alerts/{id}/ack""#)));
    let response = app.send(form(&format!("/admin/alerts/{id}/ack"), &format!("csrf={csrf}"), signed)).await;
    assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/admin/alerts"));
    assert_eq!(alerting::store::acked(&app.db()).unwrap(), [id].into());
    let html = body(app.send(page("/admin/alerts", signed)).await).await;
    assert!(!html.contains(&format!(r#"action="/admin/alerts/{id}/ack""#)), "acknowledged once");
    let response = app.send(form("/admin/alerts/999/ack", &format!("csrf={csrf}"), signed)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "an unknown id is shown on the page");

    let (addr, hits) = receiver(204).await;
    let secret_token = "tok-0123456789abcdef-WXYZ";
    let add = format!(
        "csrf={csrf}&name=ops&kind=webhook&url=http%3A%2F%2F{addr}%2Fhook%2Fsecret-path&token={secret_token}&secret="
    );
    let response = app.send(form("/admin/alerts/channels", &add, signed)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html = body(app.send(page("/admin/alerts", signed)).await).await;
    assert!(html.contains(r#"id="channel-ops""#));
    assert!(!html.contains(secret_token) && !html.contains("secret-path"), "secrets are never shown again");
    assert!(html.contains("…WXYZ"), "only the token's last characters");
    let response = app.send(form("/admin/alerts/channels", &add, signed)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a clash is shown on the page");
    let bad = format!("csrf={csrf}&name=x&kind=email&url=http%3A%2F%2F{addr}%2F");
    let response = app.send(form("/admin/alerts/channels", &bad, signed)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "an email channel needs an smtp url");
    assert!(body(response).await.contains("the scheme is smtp:// (STARTTLS) or smtps:// (TLS)"));

    let response = app.send(form("/admin/alerts/channels/ops/test", &format!("csrf={csrf}"), signed)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let html = body(response).await;
    assert!(html.contains("the receiver answered HTTP 204"), "{html}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(html.contains("sent (HTTP 204)"), "the last delivery is listed");

    let (failing, _) = receiver(500).await;
    let add = format!("csrf={csrf}&name=broken&kind=ntfy&url=http%3A%2F%2F{failing}%2Ftopic");
    app.send(form("/admin/alerts/channels", &add, signed)).await;
    let response = app.send(form("/admin/alerts/channels/broken/test", &format!("csrf={csrf}"), signed)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(body(response).await.contains("HTTP 500"), "the receiver's status is shown");

    for name in ["ops", "broken"] {
        let response =
            app.send(form(&format!("/admin/alerts/channels/{name}/remove"), &format!("csrf={csrf}"), signed)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    assert!(alerting::store::channels(&app.db()).unwrap().is_empty());

    let add = format!("csrf={csrf}&host=pve1&rule=pool_state&subject=tank&duration=2h&comment=disk+swap");
    let response = app.send(form("/admin/alerts/silences", &add, signed)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let silences = alerting::store::silences(&app.db(), wire::now_ms()).unwrap();
    assert_eq!(silences.len(), 1);
    assert_eq!((silences[0].rule.as_deref(), silences[0].comment.as_str()), (Some("pool_state"), "disk swap"));
    let html = body(app.send(page("/admin/alerts", signed)).await).await;
    assert!(html.contains(&format!(r#"id="silence-{}""#, silences[0].id)));
    for bad in [
        "host=pve1&duration=2w&comment=x",
        "host=nope&duration=2h&comment=x",
        "host=pve1&rule=nope&duration=2h&comment=x",
    ] {
        let response = app.send(form("/admin/alerts/silences", &format!("csrf={csrf}&{bad}"), signed)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let remove = format!("/admin/alerts/silences/{}/remove", silences[0].id);
    assert_eq!(app.send(form(&remove, &format!("csrf={csrf}"), signed)).await.status(), StatusCode::SEE_OTHER);
    assert!(alerting::store::silences(&app.db(), wire::now_ms()).unwrap().is_empty());
    assert_eq!(inline_code(&html), Vec::<String>::new());
}

/// An SMTP relay on loopback that accepts every command (no TLS, no AUTH) and counts
/// the messages it is given.
async fn smtp_relay() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncBufReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mails = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = mails.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (r, mut w) = s.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            let _ = w.write_all(b"220 relay\r\n").await;
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match (in_data, line.to_ascii_uppercase().split(' ').next().unwrap_or("")) {
                    (true, _) if line == "." => {
                        in_data = false;
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        "250 queued"
                    }
                    (true, _) => continue,
                    (false, "DATA") => {
                        in_data = true;
                        "354 go ahead"
                    }
                    (false, "QUIT") => "221 bye",
                    _ => "250 ok",
                };
                let _ = w.write_all(format!("{reply}\r\n").as_bytes()).await;
            }
        }
    });
    (addr, mails)
}

#[tokio::test]
async fn an_email_channel_is_added_with_its_password_hidden_and_sends_a_test() {
    let app = TestApp::new().await;
    let cookie = app.login().await;
    let csrf = app.csrf(&cookie).await;
    let signed = Some(cookie.as_str());
    let url = "smtp%3A%2F%2Fops%3Ahunter2-hunter2-pass%40mail.example.com%3A587%3Ffrom%3Da%40example.com%26to%3Db%40example.com";
    let add = format!("csrf={csrf}&name=mail&kind=email&url={url}&token=&secret=");
    let response = app.send(form("/admin/alerts/channels", &add, signed)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let html = body(app.send(page("/admin/alerts", signed)).await).await;
    assert!(html.contains(r#"id="channel-mail""#) && html.contains("…pass"), "{html}");
    assert!(!html.contains("hunter2"), "the password is never shown again");
    assert!(html.contains(r#"<option value="email">"#), "the form offers email");
    let stored = alerting::store::channel(&app.db(), "mail").unwrap();
    assert_eq!(stored.token.as_deref(), Some("hunter2-hunter2-pass"));
    assert!(!stored.url.contains("hunter2"), "kept out of the stored url: {}", stored.url);

    let (relay, mails) = smtp_relay().await;
    let url = format!("smtp%3A%2F%2F{relay}%3Ffrom%3Da%40example.com%26to%3Db%40example.com%26tls%3Dnone");
    let add = format!("csrf={csrf}&name=relay&kind=email&url={url}");
    assert_eq!(app.send(form("/admin/alerts/channels", &add, signed)).await.status(), StatusCode::SEE_OTHER);
    let response = app.send(form("/admin/alerts/channels/relay/test", &format!("csrf={csrf}"), signed)).await;
    let html = body(response).await;
    assert!(html.contains("Test sent on relay: the receiver answered SMTP 250"), "{html}");
    assert_eq!(mails.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(html.contains("sent (SMTP 250)"), "the last delivery is listed");
}

#[tokio::test]
async fn alerts_forms_without_the_sessions_token_are_403_and_signed_out_redirect() {
    let app = TestApp::new().await;
    app.add_host("pve1");
    let id = app.firing_alert("pve1");
    let cookie = app.login().await;
    let posts = [
        (format!("/admin/alerts/{id}/ack"), String::new()),
        ("/admin/alerts/channels".into(), "name=x&kind=ntfy&url=http%3A%2F%2F127.0.0.1%2Ft".into()),
        ("/admin/alerts/channels/x/test".into(), String::new()),
        ("/admin/alerts/channels/x/remove".into(), String::new()),
        ("/admin/alerts/silences".into(), "host=pve1&duration=2h&comment=x".into()),
        ("/admin/alerts/silences/1/remove".into(), String::new()),
    ];
    for (uri, fields) in &posts {
        let response = app.send(form(uri, fields, Some(&cookie))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{uri} without csrf");
        let response = app.send(form(uri, fields, None)).await;
        assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/login"), "{uri} signed out");
    }
    assert!(alerting::store::acked(&app.db()).unwrap().is_empty());
    assert!(alerting::store::channels(&app.db()).unwrap().is_empty());
    let response = app.send(page("/admin/alerts", None)).await;
    assert_eq!((response.status(), location(&response)), (StatusCode::SEE_OTHER, "/login"));
}
