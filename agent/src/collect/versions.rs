//! Software versions: pve-manager (from `pveversion`), the running kernel, and the ZFS module.

use super::ParseError;

/// The relative paths under the `/proc` and `/sys` roots.
pub const OSRELEASE: &str = "sys/kernel/osrelease";
pub const ZFS_MODULE_VERSION: &str = "module/zfs/version";

/// "pve-manager/8.0.3/bbf3993334bfa916 (running kernel: 6.2.16-3-pve)" → "8.0.3".
pub fn parse_pveversion(text: &str) -> Result<String, ParseError> {
    let line = text.lines().find(|l| l.starts_with("pve-manager/")).ok_or_else(|| {
        ParseError::new(format!("no pve-manager/ line in {:?}", super::command::truncate(text.trim(), 60)))
    })?;
    line.split('/')
        .nth(1)
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.contains(' '))
        .map(str::to_string)
        .ok_or_else(|| ParseError::new(format!("no version in {line:?}")))
}

/// `zfs version` prints "zfs-2.2.4-pve1" then "zfs-kmod-2.2.4-pve1"; the kernel module's version
/// is the one that matters, and `/sys/module/zfs/version` is read before this fallback.
pub fn parse_zfs_version(text: &str) -> Result<String, ParseError> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let kmod = lines.iter().find_map(|l| l.strip_prefix("zfs-kmod-"));
    let user = lines.iter().find_map(|l| l.strip_prefix("zfs-"));
    kmod.or(user).map(str::to_string).ok_or_else(|| ParseError::new("no zfs- line in zfs version output"))
}

/// A one-line file such as `osrelease`; empty means unusable.
pub fn parse_one_line(text: &str) -> Result<String, ParseError> {
    let line = text.lines().next().map(str::trim).unwrap_or("");
    if line.is_empty() {
        return Err(ParseError::new("empty file"));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pve_manager_version_from_captured_pveversion() {
        let text = include_str!("../../tests/fixtures/pveversion.txt");
        assert_eq!(parse_pveversion(text).unwrap(), "8.0.3");
    }

    #[test]
    fn verbose_pveversion_also_works() {
        let text = "proxmox-ve: 8.2.0 (running kernel: 6.8.4-2-pve)\npve-manager: 8.2.2 (running version: 8.2.2/9355359cd7afbae4)\n";
        // `pveversion -v` has no "pve-manager/" line; the agent runs plain `pveversion`.
        assert!(parse_pveversion(text).is_err());
        assert_eq!(
            parse_pveversion("pve-manager/9.0.10/deb1ca707ec72a89 (running kernel: 6.14.11-2-pve)\n").unwrap(),
            "9.0.10"
        );
    }

    #[test]
    fn zfs_version_prefers_the_kernel_module() {
        assert_eq!(parse_zfs_version("zfs-2.2.4-pve1\nzfs-kmod-2.2.3-pve2\n").unwrap(), "2.2.3-pve2");
        assert_eq!(parse_zfs_version("zfs-2.3.4-pve1\n").unwrap(), "2.3.4-pve1");
    }

    #[test]
    fn kernel_and_module_files() {
        let osrelease = include_str!("../../tests/fixtures/host/proc/sys/kernel/osrelease");
        assert_eq!(parse_one_line(osrelease).unwrap(), "6.2.16-3-pve");
        let zfs = include_str!("../../tests/fixtures/host/sys/module/zfs/version");
        assert_eq!(parse_one_line(zfs).unwrap(), "2.1.12-pve1");
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(parse_pveversion("").is_err());
        assert!(parse_pveversion("pve-manager/").is_err());
        assert!(parse_zfs_version("unknown command 'version'\n").is_err());
        assert!(parse_one_line("\n").is_err());
    }
}
