//! The writer's parsed copy of every host's state as of its last settle, shared with the
//! fleet-wide readers (the overview, `/api/v1/hosts`, `/metrics`). Reading the same from
//! SQLite means parsing every host's latest payloads on every request, which grows with
//! the fleet (docs/PERFORMANCE.md has the figures).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::state::HostState;

/// Cheap to clone; every clone sees the same states.
#[derive(Clone, Default)]
pub struct Fleet(Arc<RwLock<HashMap<String, Arc<HostState>>>>);

impl Fleet {
    /// Replaces every state: the writer at start, and after a failed write.
    pub(crate) fn reset<'a>(&self, states: impl Iterator<Item = &'a HostState>) {
        let states = states.map(|s| (s.host_id.clone(), Arc::new(s.clone()))).collect();
        // The lock is never held across a panic point.
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = states;
    }

    /// Publishes the states of hosts a commit changed.
    pub(crate) fn update<'a>(&self, states: impl Iterator<Item = &'a HostState>) {
        let fresh: Vec<_> = states.map(|s| Arc::new(s.clone())).collect();
        let mut known = self.0.write().unwrap_or_else(|e| e.into_inner());
        for state in fresh {
            known.insert(state.host_id.clone(), state);
        }
    }

    /// The states of `hosts`, in their order; None where the writer has none (a host
    /// registered after it started that has sent nothing yet).
    pub fn get_all(&self, hosts: &[String]) -> Vec<Option<Arc<HostState>>> {
        let known = self.0.read().unwrap_or_else(|e| e.into_inner());
        hosts.iter().map(|h| known.get(h).cloned()).collect()
    }

    /// Every state the writer has, in no particular order (alerting's evaluation round).
    pub fn all(&self) -> Vec<Arc<HostState>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn get(&self, host: &str) -> Option<Arc<HostState>> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).get(host).cloned()
    }
}
