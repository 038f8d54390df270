//! Connection and health, the two facts every page shows of a host, always the same way
//! (`templates/status.html`: a presence dot and a health badge). A connected host with a
//! degraded pool is "online" and "critical"; no page says one word for both.

use recorder::state::Card;
use recorder::status::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostStatus {
    /// `online` or `offline`: whether the host's agent is connected.
    pub presence: &'static str,
    /// `ok`, `warning` or `critical`; `unknown` while offline, since the status rules
    /// judge only a connected host (docs/STATUS.md).
    pub health: &'static str,
}

impl HostStatus {
    pub fn of(card: &Card) -> HostStatus {
        HostStatus::new(card.online, card.status)
    }

    /// From the presence and the level the status rules gave.
    pub fn new(online: bool, level: Level) -> HostStatus {
        let health = match level {
            Level::Online => "ok",
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Offline => "unknown",
        };
        let connected = online && level != Level::Offline;
        HostStatus { presence: if connected { "online" } else { "offline" }, health }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_and_health_are_two_facts() {
        assert_eq!(HostStatus::new(true, Level::Critical), HostStatus { presence: "online", health: "critical" });
        assert_eq!(HostStatus::new(true, Level::Online), HostStatus { presence: "online", health: "ok" });
        assert_eq!(HostStatus::new(false, Level::Offline), HostStatus { presence: "offline", health: "unknown" });
    }
}
