//! The discovery config against a checked-in golden file, and every template key against
//! the derived payloads.

use std::collections::BTreeSet;
use std::sync::Arc;

use recorder::state::HostState;
use serde_json::Value;
use wire::{Held, HostId};

use crate::discovery::{self, Context};
use crate::{derived, service::Mirror};

const GOLDEN: &str = "tests/fixtures/device_config.json";

fn context() -> Context {
    Context { base_url: "https://monitor.example.com".into(), version: "0.1.0".into() }
}

/// A host with two pools (one degraded), two storages, two VMs and a container, and two
/// disks: an NVMe that passes SMART and an ATA disk asleep (no SMART data).
fn state() -> HostState {
    let fast = r#"{"schema":1,"host_id":"pve-host-01","ts_ms":1764100000000,"boot_id":"b","seq":42,
      "agent_version":"0.1.0","data":{"cpus":16,"load1":0.42,"load5":0.37,"load15":0.31,"cpu_pct":7.5,
      "iowait_pct":0.4,"mem_total":68719476736,"mem_used":34359738368,"arc_bytes":8589934592,
      "swap_total":8589934592,"swap_used":0,"rootfs_total":100000000000,"rootfs_used":12500000000,
      "uptime_s":1218237}}"#;
    let medium = r#"{"schema":1,"host_id":"pve-host-01","ts_ms":1764100000000,"boot_id":"b","seq":5,
      "agent_version":"0.1.0","data":{
       "pools":[{"name":"rpool","state":"ONLINE","size":1000,"alloc":310,"free":690,"cap_pct":31.0,"vdevs":[],"error_count":0},
                {"name":"tank","state":"DEGRADED","size":1000,"alloc":820,"free":180,"cap_pct":82.0,"vdevs":[],"error_count":0}],
       "storages":[{"name":"local","kind":"dir","active":true,"enabled":true,"shared":false,"content":"iso",
                    "total":100000000000,"used":25000000000,"avail":75000000000},
                   {"name":"local-lvm","kind":"lvmthin","active":true,"enabled":true,"shared":false,"content":"images",
                    "total":400000000000,"used":100000000000,"avail":300000000000}],
       "vms":[{"vmid":100,"name":"web-1","status":"running","tags":[]},{"vmid":101,"name":"db-1","status":"stopped","tags":[]}],
       "cts":[{"vmid":200,"name":"dns","status":"running","tags":[]}]}}"#;
    let slow = r#"{"schema":1,"host_id":"pve-host-01","ts_ms":1764100000000,"boot_id":"b","seq":1,
      "agent_version":"0.1.0","data":{"versions":{"pve_manager":"8.3.0","kernel":"6.8.12-4-pve","zfs":"2.2.6-pve1"},
       "disks":[{"name":"nvme0","protocol":"NVMe","model":"Samsung SSD 980 PRO 1TB","serial":"S5GXNX0T123456",
                 "capacity":1000204886016,"smart_passed":true,"temp_c":41.0,"power_on_hours":8123,
                 "nvme":{"percentage_used":3,"available_spare":100,"media_errors":0}},
                {"name":"sda","protocol":"ATA","model":"WDC WD40EFRX-68N32N0","serial":"WD-WCC7K1234567",
                 "capacity":4000787030016,"standby":true,"smart_passed":null,"temp_c":null,"power_on_hours":null}]}}"#;
    HostState {
        host_id: "pve-host-01".into(),
        online: true,
        online_changed_ms: Some(1764099000000),
        last_seen_ms: Some(1764100000000),
        agent_version: Some("0.1.0".into()),
        fast: Some(Arc::new(serde_json::from_str(fast).unwrap())),
        fast_received_ms: Some(1764100000000),
        fast_interval_ms: Some(30_400),
        medium: Some(Held::new(&serde_json::from_str::<wire::MediumPayload>(medium).unwrap())),
        previous_medium: None,
        slow: Some(Held::new(&serde_json::from_str::<wire::SlowPayload>(slow).unwrap())),
        ..HostState::default()
    }
}

fn host() -> HostId {
    HostId::parse("pve-host-01").unwrap()
}

#[test]
fn the_device_config_matches_the_golden_file() {
    let config = discovery::config(&host(), &state().decoded(), &context());
    let text = serde_json::to_string_pretty(&config).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, expected, "run with UPDATE_GOLDEN=1 to accept the new config, then review the diff");
}

/// Every `value_json.<key>` of the config, with the topic it reads.
fn template_keys(config: &Value) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for c in config["components"].as_object().unwrap().values() {
        for (template, topic) in
            [("value_template", "state_topic"), ("json_attributes_template", "json_attributes_topic")]
        {
            let Some(t) = c.get(template).and_then(Value::as_str) else { continue };
            let topic = c[topic].as_str().unwrap().to_owned();
            for part in t.split("value_json.").skip(1) {
                let key: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                keys.push((topic.clone(), key));
            }
        }
    }
    keys
}

#[test]
fn every_template_key_is_in_the_derived_payload_of_its_topic() {
    let (host, state) = (host(), state());
    let decoded = state.decoded();
    let config = discovery::config(&host, &decoded, &context());
    let fast = derived::fast(&decoded, 2, 1764100001000);
    let medium = derived::medium(&decoded);
    let slow = derived::slow(&decoded);
    let keys = template_keys(&config);
    assert!(keys.len() > 20, "{keys:?}");
    for (topic, key) in keys {
        let payload = if topic == host.server_topic(wire::ServerKind::HaFast) {
            &fast
        } else if topic == host.server_topic(wire::ServerKind::HaMedium) {
            &medium
        } else if topic == host.server_topic(wire::ServerKind::HaSlow) {
            &slow
        } else {
            panic!("template on {topic}, which is not a derived topic")
        };
        assert!(payload.contains_key(&key), "{key} is not in {topic}: {payload:?}");
    }
    // And the values are what the templates promise.
    assert_eq!(medium["pool_tank_health"], "DEGRADED");
    assert_eq!(medium["storage_local_2dlvm_usage"], 25.0);
    assert_eq!((medium["vms_running"].clone(), medium["cts_running"].clone()), (1.into(), 1.into()));
    assert_eq!(
        (slow["disk_nvme0_health"].clone(), slow["disk_nvme0_temperature"].clone()),
        ("passed".into(), 41.0.into())
    );
    assert_eq!(
        (slow["disk_sda_health"].clone(), slow["disk_sda_temperature"].clone()),
        ("standby".into(), Value::Null)
    );
    assert_eq!(fast["mem_used"], 25769803776u64, "memory without the ARC");
    assert_eq!(fast["mem_used_pct"], 37.5);
    assert_eq!(fast["alerts_firing"], 2);
    assert_eq!(fast["status"], "warning", "a degraded pool");
    assert!(fast["status_attributes"]["reasons"][0].as_str().unwrap().contains("tank"));
}

#[test]
fn a_vanished_pool_is_removed_with_its_platform_only_and_a_removed_host_cleared() {
    let (host, mut state) = (host(), state());
    let mut mirror = Mirror::new(wire::DiscoveryPrefix::default(), context());
    let first = mirror.sync(&host, &state, 1764100001000, false);
    assert_eq!(first.len(), 4, "config, fast, medium and slow");
    assert!(mirror.sync(&host, &state, 1764100001000, false).is_empty(), "nothing changed");
    assert_eq!(mirror.sync(&host, &state, 1764100001000, true).len(), 4, "birth: everything again");

    state.medium = state.medium.map(|m| m.changed(|m| m.data.pools.as_mut().unwrap().retain(|p| p.name != "tank")));
    let out = mirror.sync(&host, &state, 1764100001000, false);
    let (topic, config) = &out[0];
    assert_eq!(topic, "homeassistant/device/pmon_pve-host-01/config");
    let config: Value = serde_json::from_slice(config).unwrap();
    let cmps = &config["components"];
    assert_eq!(cmps["pool_tank_health"], serde_json::json!({"platform": "sensor"}));
    assert_eq!(cmps["pool_tank_capacity"], serde_json::json!({"platform": "sensor"}));
    assert_eq!(cmps["pool_rpool_health"]["platform"], "sensor");
    assert!(cmps["pool_rpool_health"]["value_template"].is_string());

    // The pool comes back: a full component again.
    let mut back = self::state();
    back.fast_interval_ms = state.fast_interval_ms;
    let out = mirror.sync(&host, &back, 1764100001000, false);
    let config: Value = serde_json::from_slice(&out[0].1).unwrap();
    assert!(config["components"]["pool_tank_health"]["value_template"].is_string());

    let out = mirror.remove_unregistered(&BTreeSet::new());
    let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        topics,
        [
            "homeassistant/device/pmon_pve-host-01/config",
            "pmon/v1/pve-host-01/ha/fast",
            "pmon/v1/pve-host-01/ha/medium",
            "pmon/v1/pve-host-01/ha/slow"
        ]
    );
    assert!(out.iter().all(|(_, p)| p.is_empty()), "empty retained payloads remove the device");
}

#[test]
fn a_vanished_disk_is_removed_with_its_platform_only() {
    let (host, mut state) = (host(), state());
    let mut mirror = Mirror::new(wire::DiscoveryPrefix::default(), context());
    mirror.sync(&host, &state, 1764100001000, false);

    state.slow = state.slow.map(|s| {
        s.changed(|s| {
            s.ts_ms += 1_800_000;
            s.data.disks.as_mut().unwrap().retain(|d| d.name != "sda");
        })
    });
    let out = mirror.sync(&host, &state, 1764100001000, false);
    let topics: Vec<&str> = out.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(topics, ["homeassistant/device/pmon_pve-host-01/config", "pmon/v1/pve-host-01/ha/slow"]);
    let config: Value = serde_json::from_slice(&out[0].1).unwrap();
    let cmps = &config["components"];
    assert_eq!(cmps["disk_sda_health"], serde_json::json!({"platform": "sensor"}));
    assert_eq!(cmps["disk_sda_temperature"], serde_json::json!({"platform": "sensor"}));
    assert!(cmps["disk_nvme0_temperature"]["value_template"].is_string());
    let slow: Value = serde_json::from_slice(&out[1].1).unwrap();
    assert!(slow.get("disk_sda_health").is_none() && slow["disk_nvme0_health"] == "passed", "{slow}");

    // A new sample of the same disks changes the state only.
    state.slow = state.slow.map(|s| s.changed(|s| s.ts_ms += 1_800_000));
    let out = mirror.sync(&host, &state, 1764100001000, false);
    assert_eq!(out.len(), 1, "only ha/slow");
    assert_eq!(out[0].0, "pmon/v1/pve-host-01/ha/slow");
}

#[test]
fn fast_expiry_follows_the_interval_without_jitter() {
    let mut s = HostState::default();
    assert_eq!(discovery::fast_expire_s(&s), 120);
    for ms in [29_000, 30_000, 33_000] {
        s.fast_interval_ms = Some(ms);
        assert_eq!(discovery::fast_expire_s(&s), 120, "{ms}");
    }
    s.fast_interval_ms = Some(60_000);
    assert_eq!(discovery::fast_expire_s(&s), 240);
}
