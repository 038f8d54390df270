//! `pvesh get /nodes/<node>/storage`: every storage this node can see, active or not.
//!
//! The call can hang on a dead NFS or CIFS share; the collector's timeout bounds it.

use serde_json::Value;
use wire::Storage;

use super::lenient::{bool_of, field, string_of, u64_of};
use super::ParseError;

pub fn args(node: &str) -> Vec<String> {
    vec!["get".into(), format!("/nodes/{node}/storage"), "--output-format".into(), "json".into()]
}

/// Storages sorted by name. An inactive storage reports zero sizes, which mean "unknown" rather
/// than "empty", so they become `None`.
pub fn parse(text: &str) -> Result<Vec<Storage>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::new(format!("invalid JSON: {e}")))?;
    let items = value.as_array().ok_or_else(|| ParseError::new("storage list is not a JSON array"))?;
    let mut storages = items
        .iter()
        .map(|item| {
            let name =
                field(item, "storage", string_of).ok_or_else(|| ParseError::new("storage entry without a name"))?;
            let active = field(item, "active", bool_of).unwrap_or(false);
            let size = |key| if active { field(item, key, u64_of) } else { None };
            Ok(Storage {
                kind: field(item, "type", string_of).unwrap_or_default(),
                active,
                // Absent `enabled` means enabled: only a disabled storage carries `disable` in its config.
                enabled: field(item, "enabled", bool_of).unwrap_or(true),
                shared: field(item, "shared", bool_of).unwrap_or(false),
                content: field(item, "content", string_of).unwrap_or_default(),
                total: size("total"),
                used: size("used"),
                avail: size("avail"),
                name,
            })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    storages.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(storages)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE: &str = include_str!("../../tests/fixtures/storage.json");

    #[test]
    fn parses_captured_storage_list() {
        let storages = parse(STORAGE).unwrap();
        let names: Vec<&str> = storages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["local", "local-lvm", "local-zfs", "nas-nfs", "pbs"]);
        assert_eq!(
            storages[0],
            Storage {
                name: "local".into(),
                kind: "dir".into(),
                active: true,
                enabled: true,
                shared: false,
                content: "iso,import,backup,vztmpl,snippets".into(),
                total: Some(100_861_726_720),
                used: Some(13_125_025_792),
                avail: Some(87_736_700_928),
            }
        );
        assert_eq!(storages[2].kind, "zfspool");
    }

    #[test]
    fn an_inactive_nfs_storage_has_no_sizes() {
        let storages = parse(STORAGE).unwrap();
        let nfs = &storages[3];
        assert_eq!((nfs.kind.as_str(), nfs.active, nfs.enabled, nfs.shared), ("nfs", false, true, true));
        assert_eq!((nfs.total, nfs.used, nfs.avail), (None, None, None));
    }

    #[test]
    fn sizes_sent_as_strings_are_read() {
        let pbs = &parse(STORAGE).unwrap()[4];
        assert_eq!(pbs.total, Some(2_037_808_889_856));
        assert_eq!(pbs.used, Some(180_709_048_320));
        assert!(pbs.shared);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse("").is_err());
        assert!(parse("{\"storage\":\"local\"}").is_err());
        assert!(parse("[{\"type\":\"dir\"}]").is_err());
        assert!(parse("[{\"storage\":").is_err());
        assert_eq!(parse("[]").unwrap(), vec![]);
    }
}
