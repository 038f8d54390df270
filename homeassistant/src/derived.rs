//! The flat, retained state payloads Home Assistant reads: `pmon/v1/<host>/ha/fast` (the
//! fast tier, the host's status and its firing alerts), `pmon/v1/<host>/ha/medium`
//! (guests, pools, storages) and `pmon/v1/<host>/ha/slow` (disks' SMART health and
//! temperature). One JSON object of scalars each (plus the status's attributes), so that
//! every template in the discovery config is `{{ value_json.key }}`. One payload per tier,
//! each with its tier's `ts`, so that a value's `expire_after` follows its own tier: disk
//! values folded into `ha/medium` would be refreshed every medium sample and never expire
//! while the slow tier is stuck.
//!
//! A value the agent could not collect is `null`; Home Assistant's MQTT sensor shows a
//! rendered `None` as unknown rather than as an error.

use recorder::state::Decoded;
use recorder::status::Level;
use serde_json::{json, Map, Value};
use wire::{Disk, GuestStatus, PoolState};

/// A JSON object.
pub type Flat = Map<String, Value>;

/// The enum options of a pool's health sensor: the OpenZFS states, then `UNKNOWN` for any
/// other string (a newer ZFS, a missing pool state).
pub const POOL_STATES: [&str; 8] =
    ["ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL", "REMOVED", "SUSPENDED", "UNKNOWN"];

/// The enum options of a disk's health sensor: its SMART overall health, `standby` when
/// the agent did not wake it (no SMART data this time), `unknown` when smartctl said
/// nothing.
pub const DISK_HEALTH: [&str; 4] = ["passed", "failed", "standby", "unknown"];

/// A pool, storage or disk name as a key part made of `[A-Za-z0-9_]` only (a Jinja attribute
/// name and a component id): letters and digits stay, `_` becomes `__`, every other byte
/// `_xx` in hex. Injective, so `local-lvm` and `local_lvm` never share a key.
pub fn key_part(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        match b {
            b'_' => out.push_str("__"),
            b if b.is_ascii_alphanumeric() => out.push(b as char),
            b => out.push_str(&format!("_{b:02x}")),
        }
    }
    out
}

pub fn pool_health_key(pool: &str) -> String {
    format!("pool_{}_health", key_part(pool))
}

pub fn pool_capacity_key(pool: &str) -> String {
    format!("pool_{}_capacity", key_part(pool))
}

pub fn storage_usage_key(storage: &str) -> String {
    format!("storage_{}_usage", key_part(storage))
}

/// A disk's keys use its device name (`sda`, `nvme0`): unique on a host and the name the
/// dashboard and the alerts use; a serial can be missing or, behind some USB bridges,
/// shared.
pub fn disk_health_key(disk: &str) -> String {
    format!("disk_{}_health", key_part(disk))
}

pub fn disk_temperature_key(disk: &str) -> String {
    format!("disk_{}_temperature", key_part(disk))
}

fn disk_health(disk: &Disk) -> &'static str {
    match (disk.smart_passed, disk.standby) {
        (Some(false), _) => "failed",
        (_, true) => "standby",
        (Some(true), _) => "passed",
        (None, false) => "unknown",
    }
}

fn pool_state(state: &PoolState) -> &'static str {
    POOL_STATES[..POOL_STATES.len() - 1].iter().find(|s| **s == state.as_str()).copied().unwrap_or("UNKNOWN")
}

fn pct(used: Option<u64>, total: Option<u64>) -> Value {
    match (used, total) {
        (Some(u), Some(t)) if t > 0 => json!(round1(u as f64 * 100.0 / t as f64)),
        _ => Value::Null,
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `pmon/v1/<host>/ha/fast`: load, CPU, memory without ARC, ARC, swap, root filesystem,
/// uptime, the host's status with its reasons, and the count of its firing alerts.
pub fn fast(host: &Decoded, alerts_firing: usize, now_ms: i64) -> Flat {
    let state = host.state;
    let health = host.health(now_ms);
    let f = state.fast.as_ref().map(|p| &p.data);
    let get = |g: fn(&wire::Fast) -> Option<f64>| f.and_then(g).map(round1);
    let mem_total = f.and_then(|f| f.mem_total);
    // The kernel counts the ARC as used; Home Assistant shows memory without it.
    let mem_used = f.and_then(wire::Fast::mem_used_without_arc);
    let mut out = Flat::new();
    out.insert("ts".into(), json!(state.fast.as_ref().map(|p| p.ts_ms)));
    out.insert("status".into(), json!(health.level.as_str()));
    out.insert("status_attributes".into(), json!({"reasons": health.reasons}));
    out.insert("alerts_firing".into(), json!(alerts_firing));
    out.insert("load1".into(), json!(get(|f| f.load1)));
    out.insert("load5".into(), json!(get(|f| f.load5)));
    out.insert("load15".into(), json!(get(|f| f.load15)));
    out.insert("cpu_pct".into(), json!(get(|f| f.cpu_pct)));
    out.insert("iowait_pct".into(), json!(get(|f| f.iowait_pct)));
    out.insert("mem_used_pct".into(), pct(mem_used, mem_total));
    out.insert("mem_used".into(), json!(mem_used));
    out.insert("arc_bytes".into(), json!(f.and_then(|f| f.arc_bytes)));
    out.insert("swap_used_pct".into(), pct(f.and_then(|f| f.swap_used), f.and_then(|f| f.swap_total)));
    out.insert("swap_used".into(), json!(f.and_then(|f| f.swap_used)));
    out.insert("rootfs_used_pct".into(), pct(f.and_then(|f| f.rootfs_used), f.and_then(|f| f.rootfs_total)));
    out.insert("rootfs_used".into(), json!(f.and_then(|f| f.rootfs_used)));
    out.insert("uptime_s".into(), json!(f.and_then(|f| f.uptime_s)));
    out
}

/// `pmon/v1/<host>/ha/medium`: running VMs and containers, each pool's health and
/// capacity, each storage's usage.
pub fn medium(host: &Decoded) -> Flat {
    let m = host.medium_data();
    let running =
        |g: Option<&Vec<wire::Guest>>| g.map(|g| g.iter().filter(|g| g.status == GuestStatus::Running).count());
    let mut out = Flat::new();
    out.insert("ts".into(), json!(host.medium.as_ref().map(|p| p.ts_ms)));
    out.insert("vms_running".into(), json!(running(m.and_then(|m| m.vms.as_ref()))));
    out.insert("cts_running".into(), json!(running(m.and_then(|m| m.cts.as_ref()))));
    for pool in m.and_then(|m| m.pools.as_ref()).into_iter().flatten() {
        out.insert(pool_health_key(&pool.name), json!(pool_state(&pool.state)));
        out.insert(pool_capacity_key(&pool.name), json!(pool.cap_pct.map(round1)));
    }
    for storage in m.and_then(|m| m.storages.as_ref()).into_iter().flatten() {
        out.insert(storage_usage_key(&storage.name), pct(storage.used, storage.total));
    }
    out
}

/// `pmon/v1/<host>/ha/slow`: each disk's SMART health and temperature (`null` in standby).
pub fn slow(host: &Decoded) -> Flat {
    let mut out = Flat::new();
    out.insert("ts".into(), json!(host.slow.as_ref().map(|p| p.ts_ms)));
    for disk in host.slow_data().and_then(|s| s.disks.as_ref()).into_iter().flatten() {
        out.insert(disk_health_key(&disk.name), json!(disk_health(disk)));
        out.insert(disk_temperature_key(&disk.name), json!(disk.temp_c.map(round1)));
    }
    out
}

/// The enum options of the status sensor, best first.
pub fn status_options() -> Vec<&'static str> {
    Level::ALL.iter().map(|l| l.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_are_identifiers_and_never_collide() {
        assert_eq!(key_part("rpool"), "rpool");
        assert_eq!(key_part("local-lvm"), "local_2dlvm");
        assert_eq!(key_part("local_lvm"), "local__lvm");
        assert_eq!(key_part("tank.2"), "tank_2e2");
        assert_eq!(pool_health_key("rpool"), "pool_rpool_health");
        let names = ["a-b", "a_b", "a_2db", "a.b", "a b", "a__b"];
        let keys: std::collections::HashSet<String> = names.iter().map(|n| key_part(n)).collect();
        assert_eq!(keys.len(), names.len());
        assert!(keys.iter().all(|k| k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
    }

    #[test]
    fn disk_health_prefers_a_failure_then_standby() {
        let disk = |smart_passed, standby| Disk { smart_passed, standby, ..Disk::default() };
        assert_eq!(disk_health(&disk(Some(true), false)), "passed");
        assert_eq!(disk_health(&disk(Some(false), false)), "failed");
        assert_eq!(disk_health(&disk(Some(false), true)), "failed");
        assert_eq!(disk_health(&disk(None, true)), "standby");
        assert_eq!(disk_health(&disk(None, false)), "unknown");
        assert!([true, false].iter().all(|s| DISK_HEALTH.contains(&disk_health(&disk(None, *s)))));
    }

    #[test]
    fn unknown_pool_states_are_unknown() {
        assert_eq!(pool_state(&PoolState::Degraded), "DEGRADED");
        assert_eq!(pool_state(&PoolState::Other("AVAIL".into())), "UNKNOWN");
        assert_eq!(pool_state(&PoolState::Other("UNKNOWN".into())), "UNKNOWN");
    }
}
