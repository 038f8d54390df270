//! The Debian packages (issue #16), SLOW: `scripts/package --dev` builds both (installing
//! cargo-deb first if it is missing, a few minutes once), then `dpkg --root` installs them
//! into a scratch root with an empty dpkg database. The maintainer scripts run outside a
//! chroot (`--force-script-chrootless`) with `DPKG_ROOT` set, which they honour for every
//! path; dependencies are not installed there (`--force-depends`). Checked: files, modes,
//! the service user and its directory, conffiles, edited configs kept on reinstall, the
//! units (`systemd-analyze verify --root`), the installed server and agent running, and
//! `remove` keeping the data while `purge` deletes it.

use std::io::BufRead;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use integration::{http_get, terminate, PASSWORD_HASH, SECRET};

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{said}");
    said
}

fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    cmd.arg(format!("--root={}", root.display())).args([
        "--force-script-chrootless",
        "--force-depends",
        "--force-not-root",
        "--log=/dev/null",
    ]);
    cmd
}

/// An empty system for dpkg: its database and the account files useradd edits.
fn scratch_root(root: &Path) {
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "etc", "var/lib", "usr/bin"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for (file, text, mode) in [
        ("var/lib/dpkg/status", "", 0o644),
        ("var/lib/dpkg/available", "", 0o644),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", "root:x:0:\n", 0o644),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600),
        ("etc/gshadow", "root:*::\n", 0o600),
    ] {
        std::fs::write(root.join(file), text).unwrap();
        std::fs::set_permissions(root.join(file), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).mode() & 0o7777
}

fn debs(dist: &Path) -> Vec<PathBuf> {
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    debs
}

#[test]
fn the_packages_install_run_and_remove_keeping_the_data() {
    if Command::new("dpkg").arg("--version").output().is_err() {
        eprintln!("SKIPPED packaging: dpkg is not installed");
        return;
    }
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dist = work.path().join("dist");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run(Command::new(repo.join("scripts/package")).arg("--dev").arg("--out").arg(&dist));
    let debs = debs(&dist);
    let names: Vec<String> = debs.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("proxmox-monitor-agent_") && names[0].ends_with("_amd64.deb"), "{names:?}");
    assert!(names[1].starts_with("proxmox-monitor_") && names[1].ends_with("_amd64.deb"), "{names:?}");
    eprintln!("packaging: packages built in {:?}", started.elapsed());

    let root = work.path().join("root");
    scratch_root(&root);
    run(dpkg(&root).arg("--install").args(&debs));

    // Files and modes.
    for (file, want) in [
        ("usr/bin/proxmox-monitor", 0o755),
        ("usr/bin/proxmox-monitor-agent", 0o755),
        ("lib/systemd/system/proxmox-monitor.service", 0o644),
        ("lib/systemd/system/proxmox-monitor-backup.service", 0o644),
        ("lib/systemd/system/proxmox-monitor-backup.timer", 0o644),
        ("lib/systemd/system/proxmox-monitor-agent.service", 0o644),
        ("etc/default/proxmox-monitor", 0o600),
        ("usr/share/doc/proxmox-monitor/Caddyfile.example", 0o644),
        ("usr/share/doc/proxmox-monitor/grafana-dashboard.json", 0o644),
        ("usr/share/doc/proxmox-monitor-agent/agent.toml.example", 0o644),
        ("var/lib/proxmox-monitor", 0o750),
        ("etc/proxmox-monitor", 0o700),
        ("etc/proxmox-monitor/agent.toml", 0o600),
    ] {
        assert_eq!(mode(&root.join(file)), want, "mode of /{file}");
    }
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user = passwd.lines().find(|l| l.starts_with("proxmox-monitor:")).expect("the service user");
    let uid: u32 = user.split(':').nth(2).unwrap().parse().unwrap();
    assert!(uid > 0 && uid < 1000, "a system user: {user}");
    assert!(user.ends_with(":/var/lib/proxmox-monitor:/usr/sbin/nologin"), "{user}");
    assert_eq!(std::fs::metadata(root.join("var/lib/proxmox-monitor")).unwrap().uid(), uid);
    let conffiles = run(Command::new("dpkg-query").arg(format!("--root={}", root.display())).args([
        "-W",
        "-f=${Conffiles}",
        "proxmox-monitor",
    ]));
    assert!(conffiles.contains("/etc/default/proxmox-monitor"), "{conffiles}");

    // Edited configs survive a reinstall (an upgrade or a rollback does the same).
    let env_file = root.join("etc/default/proxmox-monitor");
    let agent_toml = root.join("etc/proxmox-monitor/agent.toml");
    for file in [&env_file, &agent_toml] {
        let mut text = std::fs::read_to_string(file).unwrap();
        text.push_str("# edited by the operator\n");
        std::fs::write(file, text).unwrap();
    }
    run(dpkg(&root).arg("--install").args(&debs));
    for file in [&env_file, &agent_toml] {
        assert!(std::fs::read_to_string(file).unwrap().ends_with("# edited by the operator\n"), "{}", file.display());
    }

    // The installed units, their binaries pointed into the scratch root (systemd-analyze
    // checks that every command exists; its --root wants a whole systemd in there).
    let units = root.join("lib/systemd/system");
    let verify_dir = work.path().join("units");
    std::fs::create_dir(&verify_dir).unwrap();
    let unit_names = [
        "proxmox-monitor.service",
        "proxmox-monitor-backup.service",
        "proxmox-monitor-backup.timer",
        "proxmox-monitor-agent.service",
    ];
    for unit in unit_names {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let moved =
            text.replace("/usr/bin/proxmox-monitor", &root.join("usr/bin/proxmox-monitor").display().to_string());
        std::fs::write(verify_dir.join(unit), moved).unwrap();
    }
    match Command::new("systemd-analyze")
        .arg("verify")
        .arg("--man=no")
        .args(unit_names.map(|u| verify_dir.join(u)))
        .output()
    {
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
        }
        Err(_) => eprintln!("SKIPPED systemd-analyze verify: systemd-analyze is not installed"),
    }
    assert!(std::fs::read_to_string(units.join("proxmox-monitor.service")).unwrap().contains("User=proxmox-monitor"));

    // The installed server, on its packaged data directory, and the installed agent against it.
    let database = root.join("var/lib/proxmox-monitor/monitor.db");
    let server_bin = root.join("usr/bin/proxmox-monitor");
    let mut server = Command::new(&server_bin)
        .arg("serve")
        .env("DATABASE_PATH", &database)
        .env("SECRET_KEY_BASE", SECRET)
        .env("DASHBOARD_PASSWORD_HASH", PASSWORD_HASH)
        .env("BIND", "127.0.0.1")
        .env("PORT", "0")
        .env("MQTT_PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap().to_owned();
    let (http, mqtt) = (addr("http="), addr("mqtt="));
    let health = integration::wait_for("/health", std::time::Duration::from_secs(20), || {
        http_get(&format!("http://{http}/health")).filter(|(code, _)| *code == 200)
    });
    assert_eq!(health.0, 200);
    let out = Command::new(&server_bin)
        .args(["host", "add", "pve-packaged", "--json"])
        .env("DATABASE_PATH", &database)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["token"].as_str().unwrap().to_owned();
    std::fs::write(
        &agent_toml,
        format!("server_url = \"mqtt://{mqtt}\"\ntoken = \"{token}\"\nhost_id = \"pve-packaged\"\n"),
    )
    .unwrap();
    let check =
        run(Command::new(root.join("usr/bin/proxmox-monitor-agent")).arg("--config").arg(&agent_toml).arg("--check"));
    assert_eq!(check.trim(), "ok");
    terminate(&mut server);

    // Remove keeps the data and the edited configs; purge deletes them.
    run(dpkg(&root).args(["--remove", "proxmox-monitor", "proxmox-monitor-agent"]));
    assert!(!server_bin.exists() && !root.join("usr/bin/proxmox-monitor-agent").exists());
    assert!(database.exists(), "remove keeps the database");
    assert!(env_file.exists() && agent_toml.exists(), "remove keeps the configs");
    run(dpkg(&root).args(["--purge", "proxmox-monitor", "proxmox-monitor-agent"]));
    assert!(!root.join("var/lib/proxmox-monitor").exists(), "purge deletes the database");
    assert!(!env_file.exists() && !agent_toml.exists(), "purge deletes the configs");
    eprintln!("packaging: done in {:?}", started.elapsed());
}

/// The ELF machine of a binary: 183 is EM_AARCH64 (64-bit, little-endian checked too).
fn elf_machine(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not an ELF file", path.display());
    assert_eq!((bytes[4], bytes[5]), (2, 1), "64-bit little-endian");
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// The arm64 agent (issue #16), SLOW: `scripts/package --arm64` cross-builds the release
/// agent with Debian's rustc (several minutes the first time; `scripts/package --deps`, run
/// by scripts/test, installs the toolchain and qemu-user). Checked: the control fields, the
/// files, an aarch64 binary, and that binary under qemu-user: `--version`, then `--check`
/// against a real server on loopback.
#[test]
fn the_arm64_agent_package_holds_an_aarch64_agent_that_runs() {
    let have = |cmd: &str| Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success());
    if !(Path::new("/usr/lib/rustlib/aarch64-unknown-linux-gnu/lib").is_dir() && have("qemu-aarch64")) {
        eprintln!(
            "SKIPPED arm64 packaging: run `scripts/package --deps` (Debian's rustc-web, its arm64 std, qemu-user)"
        );
        return;
    }
    let started = std::time::Instant::now();
    let work = tempfile::tempdir().unwrap();
    let dist = work.path().join("dist");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run(Command::new(repo.join("scripts/package")).arg("--arm64").arg("--out").arg(&dist));
    let debs = debs(&dist);
    assert_eq!(debs.len(), 1, "{debs:?}");
    let deb = &debs[0];
    let version = env!("CARGO_PKG_VERSION");
    assert!(deb.ends_with(format!("proxmox-monitor-agent_{version}-1_arm64.deb")), "{}", deb.display());
    eprintln!("packaging: arm64 agent built in {:?}", started.elapsed());

    let field = |name: &str| run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name)).trim().to_owned();
    assert_eq!(field("Package"), "proxmox-monitor-agent");
    assert_eq!(field("Architecture"), "arm64");
    assert_eq!(field("Version"), format!("{version}-1"));
    assert!(field("Depends").starts_with("libc6 (>= 2."), "{}", field("Depends"));
    let files = run(Command::new("dpkg-deb").arg("--contents").arg(deb));
    for file in [
        "./usr/bin/proxmox-monitor-agent",
        "./lib/systemd/system/proxmox-monitor-agent.service",
        "./usr/share/doc/proxmox-monitor-agent/agent.toml.example",
    ] {
        assert!(files.lines().any(|l| l.ends_with(file)), "{file} in {files}");
    }
    let tree = work.path().join("tree");
    run(Command::new("dpkg-deb").arg("--extract").arg(deb).arg(&tree));
    let agent = tree.join("usr/bin/proxmox-monitor-agent");
    assert_eq!(elf_machine(&agent), 183, "an aarch64 binary");
    assert_eq!(mode(&agent), 0o755);

    // Under qemu-user, with the arm64 glibc Debian installs beside the amd64 one.
    let said = run(Command::new("qemu-aarch64").arg(&agent).arg("--version"));
    assert_eq!(said.trim(), format!("proxmox-monitor-agent {version}"));
    let server = integration::Server::start();
    let token = server.add_host("pve-arm64");
    let config = integration::agent_config(work.path(), &format!("mqtt://{}", server.mqtt), "pve-arm64", &token);
    let out = integration::run_bounded(
        Command::new("qemu-aarch64").arg(&agent).arg("--config").arg(&config).arg("--check"),
        std::time::Duration::from_secs(60),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    eprintln!("packaging: arm64 done in {:?}", started.elapsed());
}
