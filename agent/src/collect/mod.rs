//! Collectors: what the agent reads from the host, one file per source.
//! (Placeholder; the real collectors replace this file.)

use std::collections::BTreeMap;
use std::time::Duration;

use wire::{Fast, Medium, Slow};

/// Collector name to error message, for the payload's `errors` map.
pub type Errors = BTreeMap<String, String>;

/// Reads the host. Holds the state that spans cycles (the previous `/proc/stat` sample).
pub struct Collectors {
    node: String,
}

impl Collectors {
    pub fn new(node: String) -> Collectors {
        Collectors { node }
    }

    pub async fn fast(&mut self, _timeout: Duration) -> (Fast, Errors) {
        let _ = &self.node;
        (Fast::default(), Errors::new())
    }

    pub async fn medium(&mut self, _timeout: Duration) -> (Medium, Errors) {
        (Medium::default(), Errors::new())
    }

    pub async fn slow(&mut self, _timeout: Duration) -> (Slow, Errors) {
        (Slow::default(), Errors::new())
    }
}
