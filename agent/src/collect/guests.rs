//! `pvesh get /nodes/<node>/qemu` and `/lxc`: the VMs and containers on this node.

use serde_json::Value;
use wire::Guest;

use super::lenient::{f64_of, field, string_of, u64_of};
use super::ParseError;

/// The two guest kinds, named as pvesh's path and the payload's error key spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Qemu,
    Lxc,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    pub fn args(self, node: &str) -> Vec<String> {
        vec!["get".into(), format!("/nodes/{node}/{}", self.name()), "--output-format".into(), "json".into()]
    }
}

/// Guests sorted by vmid.
pub fn parse(text: &str) -> Result<Vec<Guest>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| ParseError::new("guest list is not a JSON array"))?;
    let mut guests = items.iter().map(guest).collect::<Result<Vec<_>, _>>()?;
    guests.sort_by_key(|g| g.vmid);
    Ok(guests)
}

fn guest(item: &Value) -> Result<Guest, ParseError> {
    let vmid = field(item, "vmid", u64_of)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| ParseError::new("guest entry without a valid vmid"))?;
    Ok(Guest {
        vmid,
        name: field(item, "name", string_of).unwrap_or_default(),
        status: field(item, "status", string_of).unwrap_or_default().into(),
        cpu: field(item, "cpu", f64_of),
        cpus: field(item, "cpus", f64_of),
        mem: field(item, "mem", u64_of),
        maxmem: field(item, "maxmem", u64_of),
        disk: field(item, "disk", u64_of),
        maxdisk: field(item, "maxdisk", u64_of),
        uptime_s: field(item, "uptime", u64_of),
        tags: field(item, "tags", string_of).map(|t| split_tags(&t)).unwrap_or_default(),
        lock: field(item, "lock", string_of).filter(|l| !l.is_empty()),
    })
}

/// Proxmox stores tags `;`-separated but also accepts `,` and spaces in guest configs.
fn split_tags(tags: &str) -> Vec<String> {
    tags.split([';', ',', ' ']).filter(|t| !t.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU: &str = include_str!("../../tests/fixtures/qemu.json");
    const LXC: &str = include_str!("../../tests/fixtures/lxc.json");

    #[test]
    fn parses_vms_with_tags_lock_and_fractional_cpus() {
        let vms = parse(QEMU).unwrap();
        let ids: Vec<u32> = vms.iter().map(|g| g.vmid).collect();
        assert_eq!(ids, [100, 101, 200, 9000]);
        assert_eq!(
            vms[0],
            Guest {
                vmid: 100,
                name: "db01".into(),
                status: "running".into(),
                cpu: Some(0.0231907545406789),
                cpus: Some(4.0),
                mem: Some(6_121_009_152),
                maxmem: Some(8_589_934_592),
                disk: Some(0),
                maxdisk: Some(68_719_476_736),
                uptime_s: Some(1_209_514),
                tags: vec!["prod".into(), "db".into()],
                lock: None,
            }
        );
        assert_eq!(vms[1].lock.as_deref(), Some("backup"));
        assert_eq!(vms[1].cpus, Some(1.5));
        assert_eq!(vms[2].status, wire::GuestStatus::Stopped);
        assert!(vms[2].tags.is_empty());
    }

    #[test]
    fn parses_containers_with_a_string_vmid() {
        let cts = parse(LXC).unwrap();
        let ids: Vec<u32> = cts.iter().map(|g| g.vmid).collect();
        assert_eq!(ids, [733, 734, 735]);
        assert_eq!(cts[1].lock.as_deref(), Some("snapshot"));
        assert_eq!(cts[2].tags, ["net", "privacy"]);
        assert_eq!(cts[0].disk, Some(838_225_920));
        assert_eq!(cts[0].mem, Some(74_940_416));
    }

    #[test]
    fn tags_split_on_all_separators() {
        assert_eq!(split_tags("a;b,c d;;"), ["a", "b", "c", "d"]);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("{}").is_err());
        assert!(parse("[{\"name\":\"x\"}]").is_err());
        assert!(parse("[{\"vmid\":-1}]").is_err());
        assert!(parse("[{\"vmid\":\"abc\"}]").is_err());
        assert_eq!(parse("[]").unwrap(), vec![]);
    }
}
