//! Regression test for issue 14 ("Cost"): the fast tier starts no process.
//!
//! Runs the real agent binary, `--once --tier TIER`, with a PATH that holds only fake programs:
//! every command the agent runs in any tier, plus shell tools a careless collector might reach
//! for. Each fake appends its path and arguments to a file and fails. The agent reads this
//! machine's real `/proc`.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const FAKES: &[&str] =
    &["pvesh", "zpool", "zfs", "pveversion", "smartctl", "df", "free", "uptime", "cat", "sh", "bash", "stat"];

/// Runs one tier once; returns the payloads as JSON and the recorded calls.
fn once(tier: &str) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("calls");
    for name in FAKES {
        let path = bin.join(name);
        // Shell builtins only: PATH holds nothing else.
        std::fs::write(&path, format!("#!/bin/sh\necho \"$0 $*\" >> '{}'\nexit 1\n", calls.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = dir.path().join("agent.toml");
    let state = dir.path().join("state");
    let text = format!(
        "server_url = \"mqtt://127.0.0.1:1\"\ntoken = \"t\"\nhost_id = \"pve1\"\nnode = \"pve1\"\nstate_dir = \"{}\"\n",
        state.display()
    );
    std::fs::write(&config, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_proxmox-monitor-agent"))
        .args(["--config", config.to_str().unwrap(), "--once", "--tier", tier])
        .env_clear()
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (json, std::fs::read_to_string(&calls).unwrap_or_default())
}

#[test]
fn fast_tier_spawns_no_child() {
    let (json, calls) = once("fast");
    assert_eq!(calls, "", "the fast tier ran commands");
    assert_eq!(json.as_object().unwrap().len(), 1, "only the fast tier: {json}");
    let fast = &json["fast"];
    assert_eq!(fast["errors"], serde_json::json!({}), "{fast}");
    for field in ["cpus", "load1", "mem_total", "mem_used", "swap_total", "rootfs_total", "rootfs_used", "uptime_s"] {
        assert!(fast["data"][field].is_number(), "{field} missing: {fast}");
    }
}

/// The harness does see commands, so the test above can fail.
#[test]
fn the_medium_tier_still_runs_pvesh() {
    let (_, calls) = once("medium");
    assert!(calls.contains("/pvesh get /nodes/pve1/qemu --output-format json"), "{calls}");
}
