//! The server and CLI on their own: login, health, secrets, tokens.

use std::process::Command;

use integration::*;

#[test]
fn a_wrong_token_is_reported_as_invalid_token() {
    let server = Server::start();
    let _token = server.add_host("pve-bad");
    let config = agent_config(server.dir.path(), &format!("ws://{}/mqtt", server.http), "pve-bad", "0000");
    let out = Command::new(bin("proxmox-monitor-agent")).arg("--config").arg(&config).arg("--check").output().unwrap();
    assert!(!out.status.success());
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(line.starts_with("invalid_token"), "verdict: {line}");

    let good = server.add_host("pve-good");
    let config = agent_config(server.dir.path(), &format!("mqtt://{}", server.mqtt), "pve-good", &good);
    let out = Command::new(bin("proxmox-monitor-agent")).arg("--config").arg(&config).arg("--check").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert!(out.status.success());
}

#[test]
fn pages_need_a_session_and_health_does_not() {
    let server = Server::start();
    let (code, body) = http_get(&format!("http://{}/health", server.http)).unwrap();
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["db"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let (code, headers, _) = http_get_with(&format!("http://{}/", server.http), None).unwrap();
    assert_eq!(code, 303);
    assert!(headers.to_ascii_lowercase().contains("location: /login"));
    let (code, _) = http_post_form(&format!("http://{}/login", server.http), "password=wrong", None);
    assert_eq!(code, 401);
    let cookie = server.login();
    let (code, _, page) = http_get_with(&format!("http://{}/", server.http), Some(&cookie)).unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("No hosts registered yet."));
}

#[test]
fn health_names_the_database_when_it_is_unusable() {
    let server = Server::start();
    std::fs::remove_file(server.database()).unwrap();
    let _ = std::fs::remove_file(server.dir.path().join("monitor.db-wal"));
    let _ = std::fs::remove_file(server.dir.path().join("monitor.db-shm"));
    let (code, body) = http_get(&format!("http://{}/health", server.http)).unwrap();
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["db"], "unavailable");
}

#[test]
fn serve_refuses_to_start_without_secrets_and_names_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("proxmox-monitor"))
        .arg("serve")
        .env("DATABASE_PATH", dir.path().join("m.db"))
        .env_remove("SECRET_KEY_BASE")
        .env("DASHBOARD_PASSWORD_HASH", PASSWORD_HASH)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SECRET_KEY_BASE") && err.contains("gen-secret"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}
