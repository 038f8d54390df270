//! `pvesh get /cluster/backup`: the cluster's vzdump jobs, kept when enabled and meant for
//! this node.
//!
//! A job is `{id, schedule, enabled, all, vmid, exclude, pool, node, storage, mode, ...}`;
//! `enabled` is absent when it has its default (1), lists are comma-separated strings, and
//! jobs written before PVE 7.1 have `dow` and `starttime` instead of `schedule`.
//!
//! A job that selects a pool names no guests; `pvesh get /pools/<pool>` lists its members
//! (`{"members": [{"type": "qemu", "vmid": 100, ...}, {"type": "storage", ...}]}`; PVE 8.1+
//! also answers `/pools?poolid=` with an array of such objects, accepted too).

use serde_json::Value;
use wire::{BackupJob, Backups};

use super::lenient::{bool_of, field, string_of, u64_of};
use super::ParseError;

pub fn args() -> Vec<String> {
    ["get", "/cluster/backup", "--output-format", "json"].map(String::from).to_vec()
}

/// The enabled jobs whose `node` is unset or `node`, in the order listed (at most
/// [`Backups::JOBS_CAP`]). A job without an id is skipped.
pub fn parse(text: &str, node: &str) -> Result<Vec<BackupJob>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| ParseError::new("backup job list is not a JSON array"))?;
    Ok(items
        .iter()
        .filter(|j| field(j, "enabled", bool_of).unwrap_or(true))
        .filter(|j| field(j, "node", string_of).is_none_or(|n| n.is_empty() || n == node))
        .filter_map(job)
        .take(Backups::JOBS_CAP)
        .collect())
}

fn job(item: &Value) -> Option<BackupJob> {
    let schedule = field(item, "schedule", string_of).filter(|s| !s.trim().is_empty()).or_else(|| {
        let start = field(item, "starttime", string_of)?;
        Some(match field(item, "dow", string_of) {
            Some(dow) => format!("{dow} {start}"),
            None => start,
        })
    });
    Some(BackupJob {
        id: field(item, "id", string_of)?,
        schedule: schedule.unwrap_or_default(),
        all: field(item, "all", bool_of).unwrap_or(false),
        vmids: vmid_list(item, "vmid"),
        exclude: vmid_list(item, "exclude"),
        pool: field(item, "pool", string_of).filter(|p| !p.is_empty()),
    })
}

pub fn pool_args(pool: &str) -> Vec<String> {
    ["get", &format!("/pools/{pool}"), "--output-format", "json"].map(String::from).to_vec()
}

/// The vmids of the guests (VMs and containers) in a pool's member list, at most
/// [`Backups::VMIDS_CAP`]; storages and other members are skipped.
pub fn parse_pool_members(text: &str) -> Result<Vec<u32>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let pool = match &value {
        Value::Array(pools) => pools.first().unwrap_or(&Value::Null),
        other => other,
    };
    let members =
        pool.get("members").and_then(Value::as_array).ok_or_else(|| ParseError::new("pool has no member list"))?;
    Ok(members
        .iter()
        .filter(|m| matches!(field(m, "type", string_of).as_deref(), Some("qemu" | "lxc")))
        .filter_map(|m| field(m, "vmid", u64_of).and_then(|v| u32::try_from(v).ok()))
        .take(Backups::VMIDS_CAP)
        .collect())
}

/// `"100,101 102"` as vmids; anything that is not one is dropped.
fn vmid_list(item: &Value, key: &str) -> Vec<u32> {
    let text = field(item, key, string_of).unwrap_or_default();
    text.split([',', ' ', ';']).filter_map(|v| v.trim().parse().ok()).take(Backups::VMIDS_CAP).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOBS: &str = include_str!("../../tests/fixtures/pvesh_cluster_backup.json");

    #[test]
    fn keeps_the_enabled_jobs_of_this_node_with_their_guests() {
        let jobs = parse(JOBS, "pve").unwrap();
        let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "cd5e47ba-81f1-4878-ac1d-aa685e22f6b1",
                "backup-5f0d1e2a-7c3b",
                "backup-pool-prod",
                "3a8b8c1e2f4d5a6b7c8d9e0f1a2b3c4d5e6f7a8b"
            ],
            "the disabled job and the other node's are left out"
        );
        assert_eq!(
            jobs[0],
            BackupJob {
                id: "cd5e47ba-81f1-4878-ac1d-aa685e22f6b1".into(),
                schedule: "hourly".into(),
                all: true,
                vmids: vec![],
                exclude: vec![114, 205],
                pool: None,
            }
        );
        assert_eq!((jobs[1].schedule.as_str(), jobs[1].vmids.as_slice()), ("sat 02:00", &[100, 101, 102][..]));
        assert_eq!(jobs[2].pool.as_deref(), Some("prod"));
        assert_eq!(jobs[3].schedule, "mon,wed,fri 23:30", "the pre-7.1 form as one calendar event");
        assert!(jobs[3].all);
        assert_eq!(parse(JOBS, "pve2").unwrap().len(), 4, "pve2 has its own job instead of pve's");
    }

    #[test]
    fn malformed_and_empty_input() {
        assert!(parse("", "pve").is_err());
        assert!(parse("{}", "pve").is_err());
        assert_eq!(parse("[]", "pve").unwrap(), vec![]);
        assert_eq!(parse(r#"[{"schedule":"daily","all":1}]"#, "pve").unwrap(), vec![], "no id");
    }

    #[test]
    fn a_pools_guests_are_its_vms_and_containers_in_either_answer_form() {
        let members = parse_pool_members(include_str!("../../tests/fixtures/pvesh_pool_prod.json")).unwrap();
        assert_eq!(members, [104, 205]);
        let listed = r#"[{"poolid":"prod","members":[{"type":"qemu","vmid":"300"},{"type":"storage","storage":"x"}]}]"#;
        assert_eq!(parse_pool_members(listed).unwrap(), [300]);
        assert_eq!(parse_pool_members(r#"{"members":[]}"#).unwrap(), Vec::<u32>::new());
        for bad in ["", "[]", r#"{"comment":"no members"}"#, "not json"] {
            assert!(parse_pool_members(bad).is_err(), "{bad:?}");
        }
    }
}
