//! What changed between two medium payloads, as timeline lines. Pure.

use std::collections::HashMap;

use wire::{Guest, Medium};

/// Every kind a timeline event has: the presence lines the writer adds (`online`,
/// `offline`), the kinds of [`Change`] (`pool`, `errors`, `guest`), and `clone`, two
/// agents seen using one host's token (from the gateway).
pub const EVENT_KINDS: [&str; 6] = ["online", "offline", "pool", "errors", "guest", "clone"];

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: &'static str,
    pub message: String,
}

fn change(kind: &'static str, message: String) -> Change {
    Change { kind, message }
}

/// The changes from `before` to `now`. Nothing is reported for the first payload.
pub fn diff(before: Option<&Medium>, now: &Medium) -> Vec<Change> {
    let Some(before) = before else { return vec![] };
    let mut out = Vec::new();
    if let (Some(old), Some(new)) = (&before.pools, &now.pools) {
        let old: HashMap<&str, &wire::Pool> = old.iter().map(|p| (p.name.as_str(), p)).collect();
        for pool in new {
            let Some(prev) = old.get(pool.name.as_str()) else {
                out.push(change("pool", format!("pool {} appeared ({})", pool.name, pool.state)));
                continue;
            };
            if prev.state != pool.state {
                out.push(change("pool", format!("pool {} {} → {}", pool.name, prev.state, pool.state)));
            }
            let (e0, e1) = (prev.vdev_errors(), pool.vdev_errors());
            if e1 > e0 {
                out.push(change("errors", format!("pool {} errors {e0} → {e1}", pool.name)));
            }
        }
    }
    for (label, old, new) in [("VM", &before.vms, &now.vms), ("CT", &before.cts, &now.cts)] {
        let (Some(old), Some(new)) = (old, new) else { continue };
        let index = |g: &'_ [Guest]| g.iter().map(|g| (g.vmid, g.clone())).collect::<HashMap<u32, Guest>>();
        let (old, new) = (index(old), index(new));
        let mut ids: Vec<u32> = old.keys().chain(new.keys()).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            match (old.get(&id), new.get(&id)) {
                (None, Some(g)) => {
                    out.push(change("guest", format!("{label} {id} ({}) appeared, {}", g.name, g.status)))
                }
                (Some(g), None) => out.push(change("guest", format!("{label} {id} ({}) disappeared", g.name))),
                (Some(a), Some(b)) if a.status != b.status => {
                    out.push(change("guest", format!("{label} {id} ({}) {} → {}", b.name, a.status, b.status)))
                }
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Pool;

    fn guest(id: u32, status: &str) -> Guest {
        Guest { vmid: id, name: format!("g{id}"), status: status.into(), ..Guest::default() }
    }

    #[test]
    fn pool_and_guest_changes_are_reported() {
        let before = Medium {
            pools: Some(vec![Pool { name: "tank".into(), state: "ONLINE".into(), ..Pool::default() }]),
            vms: Some(vec![guest(100, "running"), guest(101, "running")]),
            ..Medium::default()
        };
        let now = Medium {
            pools: Some(vec![Pool { name: "tank".into(), state: "DEGRADED".into(), ..Pool::default() }]),
            vms: Some(vec![guest(100, "stopped"), guest(102, "running")]),
            ..Medium::default()
        };
        let lines: Vec<String> = diff(Some(&before), &now).into_iter().map(|c| c.message).collect();
        assert_eq!(
            lines,
            vec![
                "pool tank ONLINE → DEGRADED",
                "VM 100 (g100) running → stopped",
                "VM 101 (g101) disappeared",
                "VM 102 (g102) appeared, running",
            ]
        );
        assert!(diff(None, &now).is_empty());
        assert!(diff(Some(&now), &now).is_empty());
    }
}
