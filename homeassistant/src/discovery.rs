//! A host's device-discovery config: one retained message on
//! `<prefix>/device/pmon_<host>/config` declaring the device and all its components.
//!
//! Keys follow Home Assistant's MQTT documentation, "Device discovery payload" (2024.11+):
//! <https://www.home-assistant.io/integrations/mqtt/#device-discovery-payload> — `device`
//! (`dev`) and `origin` (`o`) at the root, the entities under `components` (`cmps`), each
//! with its `platform` (`p`) and a `unique_id`; we write the long names. Sensor options
//! (`device_class`, `state_class`, `unit_of_measurement`, `expire_after`, `options` for
//! enums, `json_attributes_topic`/`_template`) are those of
//! <https://www.home-assistant.io/integrations/sensor.mqtt/>; `availability_topic` with
//! the default payloads `online`/`offline` is our `status` topic as it stands.
//!
//! A component that disappears (a pool destroyed, a storage removed, a disk pulled) is declared once more
//! with only its platform, which is how Home Assistant removes one component of a device
//! ("To remove a component, publish the device config with only the platform for that
//! component", same page); omitting it would leave a ghost entity.

use std::collections::BTreeMap;

use recorder::state::{Decoded, HostState};
use serde_json::{json, Map, Value};
use wire::{HostId, Kind, Medium, ServerKind, Slow};

use crate::derived::{self, DISK_HEALTH, POOL_STATES};

/// What the config says that is not about the host.
#[derive(Debug, Clone)]
pub struct Context {
    /// The dashboard's base URL (`https://PUBLIC_HOST`, or where HTTP is bound), for
    /// `configuration_url` (the host's page) and the origin's `support_url`.
    pub base_url: String,
    /// This server's version, the origin's `sw_version`.
    pub version: String,
}

/// How long Home Assistant keeps a medium-tier value without an update before showing it
/// unavailable: six samples at the agent's default `medium_seconds` (300).
pub const MEDIUM_EXPIRE_S: u64 = 1800;

/// How long a disk's values live without an update: three samples at the agent's default
/// `slow_seconds` (1800), as smartctl over many disks can make a sample late.
pub const SLOW_EXPIRE_S: u64 = 5400;

/// How long a fast-tier value lives without an update: four samples of the host's fast
/// interval (30 s unless the writer has seen two samples), at least two minutes. The
/// interval is rounded to 10 s so that jitter never changes the config.
pub fn fast_expire_s(state: &HostState) -> u64 {
    let interval_s = state.fast_interval_ms.map_or(30, |ms| ((ms.max(0) as u64 + 5_000) / 10_000) * 10);
    (4 * interval_s).max(120)
}

/// The components a config declares, by id, with their platform.
pub fn platforms(config: &Value) -> BTreeMap<String, String> {
    let Some(components) = config.get("components").and_then(Value::as_object) else { return BTreeMap::new() };
    components.iter().filter_map(|(id, c)| Some((id.clone(), c.get("platform")?.as_str()?.to_owned()))).collect()
}

/// Adds to `config` the components published before and gone since, declared with their
/// platform only, so that Home Assistant removes their entities.
pub fn declare_removed(config: &mut Value, removed: &BTreeMap<String, String>) {
    let Some(components) = config.get_mut("components").and_then(Value::as_object_mut) else { return };
    for (id, platform) in removed {
        components.entry(id.clone()).or_insert_with(|| json!({"platform": platform}));
    }
}

struct Builder {
    device_id: String,
    status: String,
    components: Map<String, Value>,
}

impl Builder {
    fn add(&mut self, key: &str, platform: &str, mut c: Value) {
        c["platform"] = json!(platform);
        c["unique_id"] = json!(format!("{}_{key}", self.device_id));
        self.components.insert(key.to_owned(), c);
    }

    /// A numeric sensor on `topic`'s `key`, unavailable while the host is offline.
    fn sensor(&mut self, topic: &str, key: &str, name: &str, extra: Value, expire_s: u64) {
        let mut c = json!({
            "name": name,
            "state_topic": topic,
            "value_template": format!("{{{{ value_json.{key} }}}}"),
            "state_class": "measurement",
            "availability_topic": self.status,
            "expire_after": expire_s,
        });
        if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
            c.extend(extra);
        }
        self.add(key, "sensor", c);
    }

    /// An enum sensor on `topic`'s `key`, unavailable while the host is offline.
    fn enum_sensor(&mut self, topic: &str, key: &str, name: &str, options: &[&str], icon: &str, expire_s: u64) {
        let c = json!({
            "name": name,
            "state_topic": topic,
            "value_template": format!("{{{{ value_json.{key} }}}}"),
            "device_class": "enum",
            "options": options,
            "availability_topic": self.status,
            "expire_after": expire_s,
            "icon": icon,
        });
        self.add(key, "sensor", c);
    }
}

fn percent() -> Value {
    json!({"unit_of_measurement": "%", "suggested_display_precision": 1})
}

fn bytes() -> Value {
    json!({"unit_of_measurement": "B", "device_class": "data_size", "suggested_unit_of_measurement": "GiB",
           "suggested_display_precision": 1})
}

/// The device-discovery config of `host`, pure: Home Assistant's whole view of the host,
/// its pools and storages as `state` has them (components gone since the last config are
/// added by [`declare_removed`]).
pub fn config(host: &HostId, decoded: &Decoded, ctx: &Context) -> Value {
    let state = decoded.state;
    let fast = host.server_topic(ServerKind::HaFast);
    let medium = host.server_topic(ServerKind::HaMedium);
    let slow = host.server_topic(ServerKind::HaSlow);
    let mut b =
        Builder { device_id: wire::topic::device_id(host), status: host.topic(Kind::Status), components: Map::new() };
    b.presence(&fast);
    b.fast_sensors(&fast, fast_expire_s(state));
    b.medium_sensors(&medium, decoded.medium_data());
    b.slow_sensors(&slow, decoded.slow_data());
    json!({
        "device": device(host, decoded.slow_data(), ctx, &b.device_id),
        "origin": {"name": "proxmox-monitor", "sw_version": ctx.version, "support_url": ctx.base_url},
        "components": b.components,
    })
}

/// The device itself: its name, model and where its dashboard page is.
fn device(host: &HostId, slow: Option<&Slow>, ctx: &Context, device_id: &str) -> Value {
    let sw_version = slow.and_then(|s| s.versions.as_ref()).and_then(|v| v.pve_manager.clone());
    let mut device = json!({
        "identifiers": [device_id],
        "name": host.as_str(),
        "manufacturer": "Proxmox Server Solutions",
        "model": "Proxmox VE",
        "configuration_url": format!("{}/hosts/{}", ctx.base_url, host),
    });
    if let Some(v) = sw_version {
        device["sw_version"] = json!(v);
    }
    device
}

impl Builder {
    /// Online, status and firing alerts. They stay available while the host is offline:
    /// they say so.
    fn presence(&mut self, fast: &str) {
        let online = json!({
            "name": "Online",
            "state_topic": self.status,
            "device_class": "connectivity",
            "payload_on": wire::topic::ONLINE,
            "payload_off": wire::topic::OFFLINE,
        });
        self.add("online", "binary_sensor", online);
        let status = json!({
            "name": "Status",
            "state_topic": fast,
            "value_template": "{{ value_json.status }}",
            "device_class": "enum",
            "options": derived::status_options(),
            "json_attributes_topic": fast,
            "json_attributes_template": "{{ value_json.status_attributes | tojson }}",
        });
        self.add("status", "sensor", status);
        let alerts = json!({
            "name": "Firing alerts",
            "state_topic": fast,
            "value_template": "{{ value_json.alerts_firing }}",
            "state_class": "measurement",
            "icon": "mdi:alert",
        });
        self.add("alerts_firing", "sensor", alerts);
    }

    /// The fast tier's figures: load, CPU, memory, swap, root filesystem, uptime.
    fn fast_sensors(&mut self, fast: &str, fx: u64) {
        let load = || json!({"icon": "mdi:gauge", "suggested_display_precision": 2});
        self.sensor(fast, "load1", "Load (1 min)", load(), fx);
        self.sensor(fast, "load5", "Load (5 min)", load(), fx);
        self.sensor(fast, "load15", "Load (15 min)", load(), fx);
        self.sensor(fast, "cpu_pct", "CPU", percent(), fx);
        self.sensor(fast, "iowait_pct", "IO wait", percent(), fx);
        self.sensor(fast, "mem_used_pct", "Memory used", percent(), fx);
        self.sensor(fast, "mem_used", "Memory used (bytes)", bytes(), fx);
        self.sensor(fast, "arc_bytes", "ZFS ARC", bytes(), fx);
        self.sensor(fast, "swap_used_pct", "Swap used", percent(), fx);
        self.sensor(fast, "swap_used", "Swap used (bytes)", bytes(), fx);
        self.sensor(fast, "rootfs_used_pct", "Root filesystem used", percent(), fx);
        self.sensor(fast, "rootfs_used", "Root filesystem used (bytes)", bytes(), fx);
        let uptime = json!({"device_class": "duration", "unit_of_measurement": "s", "entity_category": "diagnostic"});
        self.sensor(fast, "uptime_s", "Uptime", uptime, fx);
    }

    /// Guest counts, and one health and capacity per pool and one usage per storage that
    /// `m` has.
    fn medium_sensors(&mut self, medium: &str, m: Option<&Medium>) {
        let mx = MEDIUM_EXPIRE_S;
        self.sensor(medium, "vms_running", "Running VMs", json!({"icon": "mdi:monitor"}), mx);
        self.sensor(medium, "cts_running", "Running containers", json!({"icon": "mdi:package-variant"}), mx);
        for pool in m.and_then(|m| m.pools.as_ref()).into_iter().flatten() {
            let key = derived::pool_health_key(&pool.name);
            let name = format!("Pool {} health", pool.name);
            self.enum_sensor(medium, &key, &name, &POOL_STATES, "mdi:database-check", mx);
            let key = derived::pool_capacity_key(&pool.name);
            self.sensor(medium, &key, &format!("Pool {} capacity", pool.name), percent(), mx);
        }
        for storage in m.and_then(|m| m.storages.as_ref()).into_iter().flatten() {
            let key = derived::storage_usage_key(&storage.name);
            self.sensor(medium, &key, &format!("Storage {} usage", storage.name), percent(), mx);
        }
    }

    /// One health and one temperature per disk that `s` has, named with the disk's model
    /// so that a renamed device (`sda` after a reboot) shows which disk it now is.
    fn slow_sensors(&mut self, slow: &str, s: Option<&Slow>) {
        let sx = SLOW_EXPIRE_S;
        for disk in s.and_then(|s| s.disks.as_ref()).into_iter().flatten() {
            let what = match &disk.model {
                Some(model) => format!("Disk {} ({model})", disk.name),
                None => format!("Disk {}", disk.name),
            };
            let key = derived::disk_health_key(&disk.name);
            self.enum_sensor(slow, &key, &format!("{what} health"), &DISK_HEALTH, "mdi:harddisk", sx);
            let key = derived::disk_temperature_key(&disk.name);
            let temperature = json!({"device_class": "temperature", "unit_of_measurement": "°C",
                                     "suggested_display_precision": 0});
            self.sensor(slow, &key, &format!("{what} temperature"), temperature, sx);
        }
    }
}
