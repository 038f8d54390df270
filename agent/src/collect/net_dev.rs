//! Network rates per physical interface, bond and bridge, from `/proc/net/dev` deltas.
//!
//! A Proxmox host has a `tap`/`veth` port and up to three firewall devices (`fwbr`, `fwpr`,
//! `fwln`) per guest NIC; those are skipped by name before anything else is read, so a host
//! with hundreds of guests costs what one without does. Which of the rest to report is
//! decided by [`classify`] from facts about `/sys/class/net/<if>`: a `device` link (a real
//! NIC), a `bonding` directory (a bond) or a `bridge` directory (a bridge). Everything else
//! (loopback, VLAN interfaces, `ifb`, tunnels, ...) is left out.

use std::collections::HashMap;

use wire::{NetIf, NetKind};

use super::ParseError;

/// `/proc/net/dev`, relative to the proc root.
pub const PATH: &str = "net/dev";

/// Prefixes of per-guest and loopback interfaces, never reported.
const SKIPPED: [&str; 6] = ["lo", "tap", "veth", "fwbr", "fwpr", "fwln"];

/// The cumulative counters of one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// What `/sys/class/net/<name>` says about an interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    pub device: bool,
    pub bonding: bool,
    pub bridge: bool,
}

/// Whether an interface is looked at any further (by name only, no I/O).
pub fn worth_a_look(name: &str) -> bool {
    !SKIPPED.iter().any(|p| if *p == "lo" { name == "lo" } else { name.starts_with(p) })
}

/// The kind to report an interface as, or None to leave it out.
pub fn classify(name: &str, facts: Facts) -> Option<NetKind> {
    if !worth_a_look(name) {
        return None;
    }
    if facts.bonding {
        Some(NetKind::Bond)
    } else if facts.bridge {
        Some(NetKind::Bridge)
    } else if facts.device {
        Some(NetKind::Physical)
    } else {
        None
    }
}

/// Every interface's counters, in file order.
pub fn parse(text: &str) -> Result<Vec<(String, Counters)>, ParseError> {
    let mut out = Vec::new();
    // Two header lines, then `name: 16 numbers`.
    for line in text.lines().skip(2).filter(|l| !l.trim().is_empty()) {
        let (name, rest) = line.split_once(':').ok_or_else(|| ParseError::new(format!("no ':' in {line:?}")))?;
        let fields = rest
            .split_whitespace()
            .map(|f| f.parse::<u64>().map_err(|_| ParseError::new(format!("bad counter {f:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if fields.len() < 16 {
            return Err(ParseError::new(format!("{} counters for {}, expected 16", fields.len(), name.trim())));
        }
        out.push((
            name.trim().to_string(),
            Counters {
                rx_bytes: fields[0],
                rx_packets: fields[1],
                rx_errors: fields[2],
                rx_drops: fields[3],
                tx_bytes: fields[8],
                tx_packets: fields[9],
                tx_errors: fields[10],
                tx_drops: fields[11],
            },
        ));
    }
    if out.is_empty() {
        return Err(ParseError::new("no interfaces"));
    }
    Ok(out)
}

/// Per-second rates of the interfaces in `now` that were also in `prev`, over `secs`. An
/// interface whose counters went backwards (recreated) is left out until its next sample.
pub fn rates(prev: &HashMap<String, Counters>, now: &[(String, NetKind, Counters)], secs: f64) -> Vec<NetIf> {
    if secs <= 0.0 {
        return Vec::new();
    }
    let per_sec = |d: u64| (d as f64 / secs).round() as u64;
    let small = |d: u64| (d as f64 / secs * 100.0).round() / 100.0;
    now.iter()
        .filter_map(|(name, kind, c)| {
            let p = prev.get(name)?;
            let d = |now: u64, before: u64| now.checked_sub(before);
            Some(NetIf {
                name: name.clone(),
                kind: *kind,
                rx_bytes: per_sec(d(c.rx_bytes, p.rx_bytes)?),
                tx_bytes: per_sec(d(c.tx_bytes, p.tx_bytes)?),
                rx_packets: per_sec(d(c.rx_packets, p.rx_packets)?),
                tx_packets: per_sec(d(c.tx_packets, p.tx_packets)?),
                rx_errors: small(d(c.rx_errors, p.rx_errors)?),
                tx_errors: small(d(c.tx_errors, p.tx_errors)?),
                rx_drops: small(d(c.rx_drops, p.rx_drops)?),
                tx_drops: small(d(c.tx_drops, p.tx_drops)?),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_VM: &str = include_str!("../../tests/fixtures/proc_net_dev.txt");
    const PVE_1: &str = include_str!("../../tests/fixtures/proc_net_dev_pve_1.txt");
    const PVE_2: &str = include_str!("../../tests/fixtures/proc_net_dev_pve_2.txt");

    #[test]
    fn parses_a_captured_file() {
        let all = parse(DEV_VM).unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
        let eth0 = all[3].1;
        assert_eq!(
            (eth0.rx_bytes, eth0.rx_packets, eth0.tx_bytes, eth0.tx_packets),
            (310_573_008, 8749, 432_780, 4803)
        );
    }

    #[test]
    fn guests_ports_loopback_and_virtual_interfaces_are_left_out() {
        let nic = Facts { device: true, ..Facts::default() };
        let virt = Facts::default();
        assert_eq!(classify("nic0", nic), Some(NetKind::Physical));
        assert_eq!(classify("enp5s0f1", nic), Some(NetKind::Physical));
        assert_eq!(classify("bond0", Facts { bonding: true, ..virt }), Some(NetKind::Bond));
        assert_eq!(classify("vmbr0", Facts { bridge: true, ..virt }), Some(NetKind::Bridge));
        for name in ["tap100i0", "veth101i0", "fwbr100i0", "fwpr100p0", "fwln100i0"] {
            assert_eq!(classify(name, Facts { bridge: true, device: true, ..virt }), None, "{name}");
        }
        assert_eq!(classify("lo", virt), None);
        assert_eq!(classify("vmbr0.20", virt), None, "a VLAN interface is neither a NIC nor a bridge");
        assert_eq!(classify("ifb0", virt), None);
        assert!(worth_a_look("long0"), "only the loopback itself is named lo");
    }

    #[test]
    fn rates_between_two_samples() {
        let facts = |name: &str| match name {
            "vmbr0" => Facts { bridge: true, ..Facts::default() },
            "bond0" => Facts { bonding: true, ..Facts::default() },
            "nic0" | "nic1" => Facts { device: true, ..Facts::default() },
            _ => Facts::default(),
        };
        let pick = |text: &str| -> Vec<(String, NetKind, Counters)> {
            parse(text).unwrap().into_iter().filter_map(|(n, c)| classify(&n, facts(&n)).map(|k| (n, k, c))).collect()
        };
        let first = pick(PVE_1);
        assert_eq!(first.iter().map(|(n, ..)| n.as_str()).collect::<Vec<_>>(), ["nic0", "nic1", "bond0", "vmbr0"]);
        let prev: HashMap<String, Counters> = first.into_iter().map(|(n, _, c)| (n, c)).collect();
        let r = rates(&prev, &pick(PVE_2), 30.0);
        assert_eq!(r.len(), 4);
        let nic0 = &r[0];
        assert_eq!((nic0.rx_bytes, nic0.tx_bytes, nic0.rx_packets, nic0.tx_packets), (1_000_000, 250_000, 900, 400));
        assert_eq!((nic0.rx_errors, nic0.rx_drops, nic0.tx_drops), (0.1, 0.03, 0.0));
        assert_eq!(r[3].kind, NetKind::Bridge);
        assert!(rates(&prev, &pick(PVE_2), 0.0).is_empty());
        let reset: Vec<_> = pick(PVE_1).into_iter().map(|(n, k, _)| (n, k, Counters::default())).collect();
        assert!(rates(&prev, &reset, 30.0).is_empty(), "counters that went backwards give no rate");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("h\nh\neth0 1 2 3\n").is_err());
        assert!(parse("h\nh\neth0: 1 2 3\n").is_err());
        assert!(parse("h\nh\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n").is_err());
    }
}
