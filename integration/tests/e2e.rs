//! The server and CLI on their own: login, health, secrets, tokens. The server runs in
//! this process, except where `serve`'s own start-up is under test.

use std::process::Command;

use integration::*;

#[test]
fn a_wrong_token_is_reported_as_invalid_token() {
    let server = InProcessServer::start();
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
    let server = InProcessServer::start();
    let (code, body) = http_get(&format!("http://{}/health", server.http)).unwrap();
    assert_eq!(code, 200);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["db"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));

    let (code, headers, _) = http_get_with(&format!("http://{}/", server.http), None).unwrap();
    assert_eq!(code, 303);
    assert!(headers.to_ascii_lowercase().contains("location: /login"));
    let (code, _) = server.try_login("wrong");
    assert_eq!(code, 401);
    let (code, _) = http_post_form(&format!("http://{}/login", server.http), "password=test-password", None);
    assert_eq!(code, 403, "a sign-in without the form's token is refused");
    let cookie = server.login();
    let (code, _, page) = http_get_with(&format!("http://{}/", server.http), Some(&cookie)).unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("No hosts registered yet."));
}

#[test]
fn health_names_the_database_when_it_is_unusable() {
    let server = InProcessServer::start();
    // The file's header overwritten in place: no longer a database. (A file removed or
    // replaced stops the server instead: `restore.rs`.)
    let mut file = std::fs::OpenOptions::new().write(true).open(server.database()).unwrap();
    std::io::Write::write_all(&mut file, b"not a database!!").unwrap();
    let (code, body) = http_get(&format!("http://{}/health", server.http)).unwrap();
    assert_eq!(code, 503, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["db"], "unavailable");
}

/// Runs `serve` with `env` on a fresh database; it must refuse to start, in one line,
/// which is returned.
fn serve_refusal(env: &[(&str, Option<&str>)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("proxmox-monitor"));
    cmd.arg("serve").env("DATABASE_PATH", dir.path().join("m.db")).env("DASHBOARD_PASSWORD_HASH", PASSWORD_HASH);
    for (name, value) in env {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn serve_refuses_to_start_without_secrets_and_names_the_fix() {
    let err = serve_refusal(&[("SECRET_KEY_BASE", None)]);
    assert!(err.contains("SECRET_KEY_BASE") && err.contains("gen-secret"), "{err}");
}

#[test]
fn serve_refuses_a_retention_it_cannot_keep() {
    let secret = "x".repeat(64);
    let err = serve_refusal(&[("SECRET_KEY_BASE", Some(secret.as_str())), ("RETENTION_HOURS", Some("1000"))]);
    assert!(err.contains("RETENTION_HOURS must be between 1 and 480"), "{err}");
}

#[test]
fn malformed_payloads_are_counted_and_dropped_and_the_server_carries_on() {
    let server = InProcessServer::start();
    let token = server.add_host("pve-junk");
    let publish = |topic: &str, message: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &server.mqtt.port().to_string(), "-q", "1"])
            .args(["-u", "pve-junk", "-P", &token, "-i", "pve-junk", "-t", topic, "-m", message])
            .output()
            .expect("mosquitto_pub (Debian mosquitto-clients; scripts/test installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    publish("pmon/v1/pve-junk/fast", "{not json");
    publish(
        "pmon/v1/pve-junk/fast",
        r#"{"schema":99,"host_id":"pve-junk","ts_ms":1,"boot_id":"b","seq":1,"agent_version":"x","data":{}}"#,
    );
    publish("pmon/v1/pve-junk/status", "maybe");
    server.wait_metric("pmon_recorder_rejected_total{reason=\"bad_json\"}", 2);
    server.wait_metric("pmon_recorder_rejected_total{reason=\"unknown_schema\"}", 1);
    let stored: i64 = server.sql("SELECT count(*) FROM fast_samples");
    assert_eq!(stored, 0);

    // A good payload right after is stored: one bad item never stops the stream.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    publish(
        "pmon/v1/pve-junk/fast",
        &format!(
            r#"{{"schema":1,"host_id":"pve-junk","ts_ms":{now},"boot_id":"b","seq":1,"agent_version":"x","data":{{"load1":1.5}}}}"#
        ),
    );
    let load1: f64 = wait_for("the good payload", std::time::Duration::from_secs(10), || {
        let n: i64 = server.sql("SELECT count(*) FROM fast_samples");
        (n == 1).then(|| server.sql("SELECT load1 FROM fast_samples"))
    });
    assert_eq!(load1, 1.5);
    let (code, _) = http_get(&format!("http://{}/health", server.http)).unwrap();
    assert_eq!(code, 200);
}
