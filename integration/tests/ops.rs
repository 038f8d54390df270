//! Operating a server (issue #16): API tokens from the CLI on a running server, `doctor`
//! against it, and the daily backup's systemd units.

use std::path::Path;
use std::process::Command;

use integration::*;

#[test]
fn api_tokens_from_the_cli_open_metrics_and_the_api_until_removed() {
    let server = InProcessServer::start();
    let url = |path: &str| format!("http://{}{path}", server.http);
    let (code, _) = http_get(&url("/metrics")).unwrap();
    assert_eq!(code, 401, "no token, no session");
    let token = server.add_api_token("prometheus");
    for path in ["/metrics", "/api/v1/hosts"] {
        let (code, _, body) = http_get_bearer(&url(path), &token).unwrap();
        assert_eq!(code, 200, "{path}: {body}");
    }
    let out = server.cli(&["token", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "prometheus");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&token), "the token is never shown again");
    let out = server.cli(&["token", "add", "prometheus"]);
    assert!(!out.status.success(), "a name is used once");
    let out = server.cli(&["token", "remove", "prometheus"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _, _) = http_get_bearer(&url("/metrics"), &token).unwrap();
    assert_eq!(code, 401, "revoked at the next request");
}

/// Runs `doctor --env-file FILE` with a clean environment.
fn doctor(env_file: &Path) -> (bool, String) {
    let out = Command::new(bin("proxmox-monitor"))
        .args(["doctor", "--env-file"])
        .arg(env_file)
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn doctor_is_ok_beside_its_running_server_and_names_each_problem_with_its_fix() {
    use std::os::unix::fs::PermissionsExt;
    let server = InProcessServer::start();
    let env_file = server.dir.path().join("proxmox-monitor.env");
    let write = |text: &str| {
        std::fs::write(&env_file, text).unwrap();
        std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    // The running server holds PORT and MQTT_PORT: that is no problem, it is this server.
    let good = format!(
        "DATABASE_PATH={}\nSECRET_KEY_BASE={SECRET}\nDASHBOARD_PASSWORD_HASH={PASSWORD_HASH}\nBIND=127.0.0.1\nPORT={}\nMQTT_PORT={}\n",
        server.database().display(),
        server.http.port(),
        server.mqtt.port()
    );
    write(&good);
    assert_eq!(doctor(&env_file), (true, "ok\n".into()));

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    write(&format!(
        "DATABASE_PATH={}\nDASHBOARD_PASSWORD_HASH=argon2id-with-its-dollars-eaten\nPORT={}\nMQTT_PORT=off\n",
        server.database().display(),
        held.local_addr().unwrap().port()
    ));
    let (ok, out) = doctor(&env_file);
    assert!(!ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines.iter().all(|l| l.contains("; fix: ")), "{out}");
    assert!(lines[0].starts_with("SECRET_KEY_BASE is not set"), "{out}");
    assert!(lines[1].contains("DASHBOARD_PASSWORD_HASH"), "{out}");
    assert!(lines[2].contains("(BIND/PORT) is in use by another process"), "{out}");
}

/// The backup unit's commands, as systemd would run them, with the binary and the
/// backup directory moved into the test's directory.
fn backup_commands(unit: &str, binary: &Path, backups: &Path) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix("ExecStart=").or_else(|| l.strip_prefix("ExecStartPost=")))
        .map(|cmd| {
            cmd.replace("%%", "%")
                .replace("/usr/bin/proxmox-monitor", &binary.display().to_string())
                .replace("/var/backups/proxmox-monitor", &backups.display().to_string())
        })
        .collect()
}

#[test]
fn the_daily_backup_units_verify_and_keep_30_days() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let service = std::fs::read_to_string(root.join("proxmox-monitor-backup.service")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        for unit in ["proxmox-monitor-backup.service", "proxmox-monitor-backup.timer"] {
            std::fs::copy(root.join(unit), dir.path().join(unit)).unwrap();
        }
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(dir.path().join("proxmox-monitor-backup.service"))
            .arg(dir.path().join("proxmox-monitor-backup.timer"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
    } else {
        eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed");
    }

    // The commands themselves: a dated copy, and copies older than 30 days deleted.
    let server = InProcessServer::start();
    server.add_host("pve-kept");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let old = backups.join("monitor-20000101-000000.db");
    std::fs::write(&old, "old").unwrap();
    let touched = Command::new("touch").args(["-d", "40 days ago"]).arg(&old).status().unwrap();
    assert!(touched.success());
    let recent = backups.join("monitor-29990101-000000.db");
    std::fs::write(&recent, "recent").unwrap();
    for cmd in backup_commands(&service, &bin("proxmox-monitor"), &backups) {
        let out = Command::new("sh").args(["-c", &cmd]).env("DATABASE_PATH", server.database()).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut names: Vec<String> =
        std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names.len(), 2, "the old copy went, the recent one and today's stay: {names:?}");
    assert_eq!(names[1], "monitor-29990101-000000.db");
    let copy = backups.join(&names[0]);
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let hosts: i64 = conn.query_row("SELECT count(*) FROM hosts", [], |r| r.get(0)).unwrap();
    assert_eq!(hosts, 1, "today's copy {} has the database", copy.display());
}
