//! Where tier data comes from: the real host, or (in the demo) a simulated one.

use std::future::Future;
use std::time::Duration;

use wire::{Fast, Kind, Medium, Slow};

use crate::collect::{Collectors, Errors};

/// The data of one tier, as a source produced it.
#[derive(Debug, Clone)]
pub enum TierData {
    Fast(Fast),
    Medium(Medium),
    Slow(Slow),
}

/// Something the scheduler can collect tiers from.
pub trait Source: Send + 'static {
    /// Collects `tier` (never [`Kind::Status`]) within `timeout`. A failing part of the
    /// collection is reported in the errors, never as a missing tier.
    fn collect(&mut self, tier: Kind, timeout: Duration) -> impl Future<Output = (TierData, Errors)> + Send;
}

/// The real Proxmox host this agent runs on.
pub struct HostSource(pub Collectors);

impl Source for HostSource {
    async fn collect(&mut self, tier: Kind, timeout: Duration) -> (TierData, Errors) {
        match tier {
            Kind::Medium => {
                let (d, e) = self.0.medium(timeout).await;
                (TierData::Medium(d), e)
            }
            Kind::Slow => {
                let (d, e) = self.0.slow(timeout).await;
                (TierData::Slow(d), e)
            }
            Kind::Fast | Kind::Status => {
                let (d, e) = self.0.fast();
                (TierData::Fast(d), e)
            }
        }
    }
}
