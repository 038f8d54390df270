//! The payloads' enumerated strings: pool and vdev states, scan function and state, guest
//! status.
//!
//! Each is an enum of the values we act on plus `Other(String)`, which keeps anything else
//! verbatim: ZFS and Proxmox add values over time, and an agent on a newer host must not
//! have its payload refused for one. On the wire each is exactly its string (`topics.md`).
//! Build one with `From<&str>`/`From<String>`, which never puts a known value in `Other`,
//! so `==` between two values compares what they mean.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a string enum: known variants with their wire strings, and `Other(String)`.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// Any other value, kept as it was sent (empty when the source gave none).
            Other(String),
        }

        impl $name {
            /// The wire string.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(s),
                }
            }
        }

        /// The empty `Other`: a value the source did not give.
        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        // Read as a borrowed string where the format allows: a known value then allocates
        // nothing (the recorder decodes every host's held payloads on every fleet read).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Text;
                impl Visitor<'_> for Text {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$name, E> {
                        Ok($name::from(s))
                    }
                    fn visit_string<E: de::Error>(self, s: String) -> Result<$name, E> {
                        Ok($name::from(s))
                    }
                }
                deserializer.deserialize_str(Text)
            }
        }
    };
}

string_enum! {
    /// The state of a ZFS pool or vdev, as `zpool status` prints it. Spares may also be
    /// `AVAIL` or `INUSE`, and class headers (`logs`, `cache`, ...) have none: both `Other`.
    PoolState {
        Online = "ONLINE",
        Degraded = "DEGRADED",
        Faulted = "FAULTED",
        Offline = "OFFLINE",
        Unavail = "UNAVAIL",
        Removed = "REMOVED",
        Suspended = "SUSPENDED",
    }
}

string_enum! {
    /// What a pool's last or current scan does.
    ScanFunction {
        Scrub = "SCRUB",
        Resilver = "RESILVER",
    }
}

string_enum! {
    /// Where a pool's last or current scan is. A paused scrub is still `Scanning`.
    ScanState {
        Scanning = "SCANNING",
        Finished = "FINISHED",
        Canceled = "CANCELED",
    }
}

string_enum! {
    /// A VM's or container's status, as Proxmox reports it.
    GuestStatus {
        Running = "running",
        Stopped = "stopped",
        Paused = "paused",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_parse_and_print_their_wire_string() {
        for s in ["ONLINE", "DEGRADED", "FAULTED", "OFFLINE", "UNAVAIL", "REMOVED", "SUSPENDED"] {
            let state = PoolState::from(s);
            assert!(!matches!(state, PoolState::Other(_)), "{s}");
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(GuestStatus::from("running"), GuestStatus::Running);
        assert_eq!(GuestStatus::from(String::from("paused")), GuestStatus::Paused);
        assert_eq!(ScanFunction::from("RESILVER").to_string(), "RESILVER");
        assert_eq!(ScanState::from("CANCELED"), ScanState::Canceled);
    }

    #[test]
    fn unknown_values_are_kept_not_refused() {
        let status: GuestStatus = serde_json::from_str("\"prelaunch\"").unwrap();
        assert_eq!(status, GuestStatus::Other("prelaunch".into()));
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"prelaunch\"");
        // Case matters: the wire strings are exact.
        assert_eq!(PoolState::from("online"), PoolState::Other("online".into()));
        assert_eq!(PoolState::default().as_str(), "");
        assert_eq!(serde_json::from_str::<ScanFunction>("\"ERRORSCRUB\"").unwrap().as_str(), "ERRORSCRUB");
    }
}
