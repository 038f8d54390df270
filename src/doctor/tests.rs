//! `doctor` against real files: a database, certificates made by openssl, an
//! environment file, ports held by listeners.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use super::*;

/// A complete, valid configuration in `dir`: a migrated database, free ports.
fn good_env(dir: &Path) -> HashMap<String, String> {
    let database = dir.join("data/monitor.db");
    recorder::db::open_and_migrate(&database).unwrap();
    let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    HashMap::from([
        ("DATABASE_PATH".into(), database.display().to_string()),
        ("SECRET_KEY_BASE".into(), crate::gen_secret()),
        ("DASHBOARD_PASSWORD_HASH".into(), "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into()),
        ("BIND".into(), "127.0.0.1".into()),
        ("PORT".into(), free()),
        ("MQTT_PORT".into(), free()),
    ])
}

fn run_check(env: &HashMap<String, String>) -> Vec<String> {
    check(&|name: &str| env.get(name).cloned(), wire::now_ms()).iter().map(ToString::to_string).collect()
}

fn assert_one(problems: &[String], needle: &str, fix: &str) {
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains(needle) && problems[0].contains(&format!("fix: {fix}")), "{problems:#?}");
}

#[test]
fn a_good_configuration_has_no_problems() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_check(&good_env(dir.path())), Vec::<String>::new());
}

#[test]
fn missing_and_malformed_secrets_are_named_with_the_command_that_makes_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = good_env(dir.path());
    env.remove("SECRET_KEY_BASE");
    env.insert("DASHBOARD_PASSWORD_HASH".into(), "=19$m=19456,t=2,p=1$salt$hash".into());
    env.insert("RETENTION_HOURS".into(), "9999".into());
    let problems = run_check(&env);
    assert_eq!(problems.len(), 3, "each problem, one line each: {problems:#?}");
    assert!(problems[0].starts_with("SECRET_KEY_BASE is not set; fix: ") && problems[0].contains("gen-secret"));
    assert!(problems[1].contains("not an argon2 hash") && problems[1].contains("hash-password"));
    assert!(problems[2].contains("RETENTION_HOURS must be between 1 and 480"), "{problems:#?}");
    assert!(problems.iter().all(|p| !p.contains('\n')));
    env.insert("SECRET_KEY_BASE".into(), "short".into());
    assert!(run_check(&env)[0].contains("fewer than 32"));
}

#[test]
fn the_database_directory_must_be_writable_and_the_schema_not_newer() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = good_env(dir.path());
    env.insert("DATABASE_PATH".into(), dir.path().join("missing/monitor.db").display().to_string());
    assert_one(&run_check(&env), "does not exist", "mkdir -p -m 0700");

    // A fresh install has no database yet: fine.
    std::fs::create_dir(dir.path().join("fresh")).unwrap();
    env.insert("DATABASE_PATH".into(), dir.path().join("fresh/monitor.db").display().to_string());
    assert_eq!(run_check(&env), Vec::<String>::new());

    let env = good_env(dir.path());
    let conn = rusqlite::Connection::open(&env["DATABASE_PATH"]).unwrap();
    conn.pragma_update(None, "user_version", recorder::db::SCHEMA_VERSION + 1).unwrap();
    assert_one(&run_check(&env), "newer than this binary", "install the newer");
    conn.pragma_update(None, "user_version", recorder::db::SCHEMA_VERSION).unwrap();

    // Data from an hour ahead: a clock went wrong.
    let mut rw = recorder::db::open(Path::new(&env["DATABASE_PATH"])).unwrap();
    recorder::hosts::add_host(&mut rw, "pve1").unwrap();
    rw.execute("UPDATE hosts SET last_seen_ms = ?1", [wire::now_ms() + 3_600_000]).unwrap();
    assert_one(&run_check(&env), "in the future", "check `timedatectl`");
}

#[test]
fn a_port_held_by_another_process_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = good_env(dir.path());
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    env.insert("MQTT_PORT".into(), held.local_addr().unwrap().port().to_string());
    assert_one(&run_check(&env), "(BIND/MQTT_PORT) is in use by another process", "`ss -ltnp");
    env.insert("BIND".into(), "192.0.2.1".into());
    let problems = run_check(&env);
    assert!(problems.iter().all(|p| p.contains("BIND must be an address of this machine")), "{problems:#?}");
}

#[test]
fn metrics_public_off_loopback_is_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = good_env(dir.path());
    env.insert("METRICS_PUBLIC".into(), "1".into());
    assert_eq!(run_check(&env), Vec::<String>::new(), "on loopback it is the documented use");
    env.insert("BIND".into(), "0.0.0.0".into());
    assert_one(&run_check(&env), "lets anyone on the network read /metrics", "bind to 127.0.0.1");
}

/// A self-signed certificate valid for `days` and its key, made by openssl; None (the
/// test skips) without openssl.
fn certificate(dir: &Path, name: &str, days: u32) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj"])
        .arg("/CN=monitor.test")
        .args(["-days", &days.to_string(), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    match out {
        Ok(out) if out.status.success() => Some((cert, key)),
        _ => {
            eprintln!("SKIPPED: openssl is not installed (scripts/test installs it)");
            None
        }
    }
}

#[test]
fn tls_files_must_load_as_a_pair_and_not_expire_within_two_weeks() {
    let dir = tempfile::tempdir().unwrap();
    let Some((good, good_key)) = certificate(dir.path(), "good", 365) else { return };
    let Some((soon, soon_key)) = certificate(dir.path(), "soon", 3) else { return };
    let now_s = wire::now_ms() / 1000;

    // The expiry read from DER matches what openssl says (within the second it ran).
    let der = rustls_pemfile::certs(&mut std::fs::read(&good).unwrap().as_slice()).next().unwrap().unwrap();
    let expiry = x509::not_after(&der).unwrap();
    assert!((expiry - (now_s + 365 * 86_400)).abs() < 120, "{expiry} vs {now_s}");

    assert_eq!(check_tls(&good, &good_key, now_s), []);
    let p = check_tls(&soon, &soon_key, now_s);
    let soon_days = ["expires in 2 day(s)", "expires in 3 day(s)"];
    assert!(p.len() == 1 && soon_days.iter().any(|d| p[0].what.contains(d)), "{p:?}");
    let p = check_tls(&good, &good_key, now_s + 400 * 86_400);
    assert!(p.len() == 1 && p[0].what.contains("expired 35 day(s) ago"), "{p:?}");
    let p = check_tls(&good, &soon_key, now_s);
    assert!(p.len() == 1 && p[0].what.contains("do not form a valid pair"), "{p:?}");
    let p = check_tls(&dir.path().join("nope.pem"), &good_key, now_s);
    assert!(p.len() == 1 && p[0].what.contains("failed to read TLS_CERT"), "{p:?}");

    // Through the whole check, as MQTTS configures them.
    let mut env = good_env(dir.path());
    env.insert("MQTTS_PORT".into(), "0".into());
    env.insert("TLS_CERT".into(), soon.display().to_string());
    env.insert("TLS_KEY".into(), soon_key.display().to_string());
    assert_one(&run_check(&env), "expires in", "renew the certificate");
}

#[test]
fn the_environment_file_is_read_as_systemd_does_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("proxmox-monitor");
    std::fs::write(&path, "# comment\nDATABASE_PATH=/var/lib/x.db\n\nPORT = 4000\nPUBLIC_HOST=\"monitor.example.com\"\nDASHBOARD_PASSWORD_HASH=$argon2id$v=19$a$b\n").unwrap();
    let vars = read_env_file(&path).unwrap().unwrap();
    assert_eq!(vars["DATABASE_PATH"], "/var/lib/x.db");
    assert_eq!(vars["PORT"], "4000");
    assert_eq!(vars["PUBLIC_HOST"], "monitor.example.com");
    assert_eq!(vars["DASHBOARD_PASSWORD_HASH"], "$argon2id$v=19$a$b", "`$` kept as systemd keeps it");
    assert!(read_env_file(&dir.path().join("none")).unwrap().is_none());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = check_env_file_mode(&path);
    assert!(p.len() == 1 && p[0].fix.starts_with("chmod 0600"), "{p:?}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(check_env_file_mode(&path), []);
}
