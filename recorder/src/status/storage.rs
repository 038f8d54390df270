//! Rules about Proxmox storages: enabled but not active, and too full.

use wire::Medium;

use super::{pct, Facts, Finding, Level, Rule};

pub(super) fn storages(f: &Facts, medium: &Medium, out: &mut Vec<Finding>) {
    for s in medium.storages.iter().flatten() {
        let name = Some(s.name.as_str());
        if s.enabled && !s.active {
            let message = format!("storage {} is enabled but not active", s.name);
            out.push(Finding::new(Rule::StorageInactive, name, Level::Warning, None, message));
        }
        // An inactive storage's figures are stale, so only an active one can be full.
        if let Some(p) = pct(s.used, s.total).filter(|_| s.active) {
            if let Some(level) = f.thresholds(Rule::StorageFull, &s.name).and_then(|t| t.level(p)) {
                let message = format!("storage {} is {p:.0}% full", s.name);
                out.push(Finding::new(Rule::StorageFull, name, level, Some(p), message));
            }
        }
    }
}
