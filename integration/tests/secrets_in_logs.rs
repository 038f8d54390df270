//! No secret reaches a log line (issue #16): a full run at `RUST_LOG=debug` — the CLI
//! registering a host, an API token, a channel with a token and a secret and an email
//! channel with a password, the server,
//! the agent's `--check` and its daemon, a sign-in, an admin form, an API read and a
//! channel test — with every process's stderr captured, then grepped for each secret.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use integration::{
    agent_config, bin, csrf_field, http_get_bearer, http_get_with, http_post_form, set_cookie, terminate, wait_for,
    FakeProxmox, PASSWORD, PASSWORD_HASH, SECRET,
};

const CHANNEL_TOKEN: &str = "channel-bearer-token-0123456789abcdef";
const CHANNEL_SECRET: &str = "channel-hmac-secret-0123456789abcdef";
const SMTP_PASSWORD: &str = "smtp-password-0123456789abcdef";

/// A `proxmox-monitor` subcommand at debug level; its stderr is appended to `log`.
fn cli(dir: &Path, log: &mut String, args: &[&str]) -> Output {
    let out = Command::new(bin("proxmox-monitor"))
        .args(args)
        .env("DATABASE_PATH", dir.join("monitor.db"))
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    out
}

fn json_field(out: &Output, field: &str) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[field].as_str().unwrap_or_else(|| panic!("no {field} in {v}")).to_owned()
}

/// `serve` at debug level with stderr into `stderr`; returns the process and its HTTP and
/// MQTT addresses from its `listening` line.
fn serve(dir: &Path, stderr: std::fs::File) -> (Child, String, String) {
    let mut child = Command::new(bin("proxmox-monitor"))
        .arg("serve")
        .env("DATABASE_PATH", dir.join("monitor.db"))
        .env("SECRET_KEY_BASE", SECRET)
        .env("DASHBOARD_PASSWORD_HASH", PASSWORD_HASH)
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .env("MQTT_PORT", "0")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
            .to_owned()
    };
    let (http, mqtt) = (addr("http="), addr("mqtt="));
    (child, http, mqtt)
}

#[test]
fn a_full_run_at_debug_level_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = String::new();

    let host_token = json_field(&cli(dir.path(), &mut log, &["host", "add", "pve-logs", "--json"]), "token");
    let api_token = json_field(&cli(dir.path(), &mut log, &["token", "add", "scraper", "--json"]), "token");
    // A receiver that refuses the connection: the delivery fails and is logged.
    let out = cli(
        dir.path(),
        &mut log,
        &[
            "channel",
            "add",
            "hook",
            "--kind",
            "webhook",
            "--url",
            "http://127.0.0.1:9/hook",
            "--token",
            CHANNEL_TOKEN,
            "--secret",
            CHANNEL_SECRET,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cli(dir.path(), &mut log, &["channel", "test", "hook"]);
    // An email channel with its password in the URL, to a relay that refuses the connection.
    let url = format!("smtp://ops:{SMTP_PASSWORD}@127.0.0.1:9?from=a@example.com&to=b@example.com");
    let out = cli(dir.path(), &mut log, &["channel", "add", "mail", "--kind", "email", "--url", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cli(dir.path(), &mut log, &["channel", "test", "mail"]);
    cli(dir.path(), &mut log, &["channel", "list"]);

    let server_log = dir.path().join("server.log");
    let (mut server, http, mqtt) = serve(dir.path(), std::fs::File::create(&server_log).unwrap());

    // The agent: its check, then its daemon until the host is seen.
    let fake = FakeProxmox::new();
    let config = agent_config(dir.path(), &format!("mqtt://{mqtt}"), "pve-logs", &host_token);
    let check = Command::new(bin("proxmox-monitor-agent"))
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    log.push_str(&String::from_utf8_lossy(&check.stderr));
    let agent_log = dir.path().join("agent.log");
    let mut agent = Command::new(bin("proxmox-monitor-agent"))
        .arg("--config")
        .arg(&config)
        .env("PATH", fake.path_env())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&agent_log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the agent's host seen", Duration::from_secs(20), || {
        let out = cli(dir.path(), &mut String::new(), &["host", "list", "--json"]);
        let hosts: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        hosts
            .iter()
            .any(|h| h["host_id"] == "pve-logs" && h["status"].as_str().is_some_and(integration::is_seen))
            .then_some(())
    });

    // The browser: sign-in, an admin form (CSRF), a wrong password; the API with a token.
    let (code, headers, page) = http_get_with(&format!("http://{http}/login"), None).unwrap();
    assert_eq!(code, 200);
    let login_cookie = set_cookie(&headers, "pmon_login").unwrap();
    let login_csrf = csrf_field(&page);
    let (code, _) = http_post_form(
        &format!("http://{http}/login"),
        &format!("password=wrong&csrf={login_csrf}"),
        Some(&login_cookie),
    );
    assert_ne!(code, 303);
    let (code, headers) = http_post_form(
        &format!("http://{http}/login"),
        &format!("password={PASSWORD}&csrf={login_csrf}"),
        Some(&login_cookie),
    );
    assert_eq!(code, 303);
    let session = set_cookie(&headers, "pmon_session").unwrap();
    let (code, _, page) = http_get_with(&format!("http://{http}/admin/hosts"), Some(&session)).unwrap();
    assert_eq!(code, 200);
    let csrf = csrf_field(&page);
    let (code, _) =
        http_post_form(&format!("http://{http}/admin/hosts"), &format!("host_id=pve-form&csrf={csrf}"), Some(&session));
    assert!(code < 500, "{code}");
    let (code, _, _) = http_get_bearer(&format!("http://{http}/api/v1/hosts"), &api_token).unwrap();
    assert_eq!(code, 200);
    let (code, _, _) = http_get_bearer(&format!("http://{http}/api/v1/hosts"), "pmon_not-a-real-token").unwrap();
    assert_eq!(code, 401);

    terminate(&mut agent);
    terminate(&mut server);
    log.push_str(&std::fs::read_to_string(&server_log).unwrap());
    log.push_str(&std::fs::read_to_string(&agent_log).unwrap());

    // The run did log at debug level, from every part (else the grep proves nothing).
    for part in ["DEBUG", "broker", "proxmox_monitor_agent"] {
        assert!(log.contains(part), "no {part} in the logs:\n{log}");
    }
    let cookie_value = |c: &str| c.split_once('=').unwrap().1.to_owned();
    let secrets = [
        ("host token", host_token),
        ("API token", api_token),
        ("channel token", CHANNEL_TOKEN.to_owned()),
        ("channel secret", CHANNEL_SECRET.to_owned()),
        ("SMTP password", SMTP_PASSWORD.to_owned()),
        ("dashboard password", PASSWORD.to_owned()),
        ("dashboard password hash", PASSWORD_HASH.to_owned()),
        // The hash's salt and digest alone, in case it is logged cut or escaped.
        ("password hash digest", PASSWORD_HASH.rsplit('$').next().unwrap().to_owned()),
        ("SECRET_KEY_BASE", SECRET.to_owned()),
        ("session cookie", cookie_value(&session)),
        ("sign-in cookie", cookie_value(&login_cookie)),
        ("session CSRF token", csrf),
        ("sign-in CSRF token", login_csrf),
    ];
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to grep for: {secret:?}");
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            panic!("the {what} is in a log line: {line}");
        }
    }
}
