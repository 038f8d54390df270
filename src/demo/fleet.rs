//! The demo's fleet as data: twelve hosts of different sizes, and the guests each runs,
//! named like a real company's so that a search for one name finds one or two hosts.

pub const HOSTS: usize = 12;
/// The host whose root pool lost a disk two and a half days before the demo started.
pub const DEGRADED: usize = 3;
/// The host that drops out now and then (and did in its history).
pub const FLAKY: usize = 7;

/// One host's hardware and what it runs.
pub struct HostSpec {
    pub cores: u32,
    pub mem_gib: u64,
    /// The root pool: a mirror of two NVMe disks.
    pub rpool_gib: u64,
    /// A raidz2 pool of six disks for bulk data, on the bigger hosts.
    pub tank_tib: Option<u64>,
    /// How full the pools were a year ago (0–1); they grow from there.
    pub fill: f64,
    /// How many guests of [`CATALOG`] it runs, in catalog order.
    pub guests: usize,
    /// The ZFS ARC's limit as a share of memory (Proxmox 8 installs default to 10%).
    pub arc_share: f64,
}

const fn host(
    cores: u32,
    mem_gib: u64,
    rpool_gib: u64,
    tank_tib: Option<u64>,
    fill: f64,
    guests: usize,
    arc_share: f64,
) -> HostSpec {
    HostSpec { cores, mem_gib, rpool_gib, tank_tib, fill, guests, arc_share }
}

pub const SPECS: [HostSpec; HOSTS] = [
    host(32, 256, 960, Some(16), 0.35, 9, 0.25),
    host(16, 64, 480, None, 0.30, 5, 0.10),
    host(64, 512, 1920, Some(48), 0.45, 12, 0.10),
    host(24, 128, 960, None, 0.40, 7, 0.20),
    host(8, 32, 240, None, 0.20, 3, 0.10),
    host(48, 384, 1920, Some(32), 0.72, 10, 0.15),
    host(16, 128, 960, Some(8), 0.50, 6, 0.40),
    host(12, 64, 480, None, 0.25, 4, 0.10),
    host(32, 192, 960, Some(24), 0.40, 8, 0.30),
    host(20, 96, 960, None, 0.55, 6, 0.05),
    host(64, 512, 3840, Some(64), 0.30, 11, 0.20),
    host(8, 48, 480, None, 0.15, 4, 0.10),
];

/// How a guest's CPU moves over a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Busy in office hours, quiet at night.
    Web,
    /// Steady, with a daytime rise; memory full of buffers.
    Db,
    /// Kubernetes nodes: a steady base with a daytime rise.
    K8s,
    /// Long idle stretches with bursts (CI builds, the nightly backup).
    Batch,
    /// Little and steady (DNS, VPN, directory).
    Infra,
    /// Remote desktops: busy on weekdays from 8 to 18, idle otherwise.
    Desktop,
    /// Stopped: templates and machines nobody started.
    Off,
}

/// One VM or container of the catalog.
pub struct GuestSpec {
    pub name: &'static str,
    pub container: bool,
    pub cores: u32,
    pub mem_gib: u64,
    pub role: Role,
}

const fn vm(name: &'static str, cores: u32, mem_gib: u64, role: Role) -> GuestSpec {
    GuestSpec { name, container: false, cores, mem_gib, role }
}

const fn ct(name: &'static str, cores: u32, mem_gib: u64, role: Role) -> GuestSpec {
    GuestSpec { name, container: true, cores, mem_gib, role }
}

use Role::*;

/// Every guest of the fleet, dealt to the hosts in order ([`HostSpec::guests`] each).
const CATALOG: [GuestSpec; 85] = [
    // pve-01: the public web stack.
    vm("web-01", 4, 8, Web),
    vm("web-02", 4, 8, Web),
    ct("haproxy-01", 2, 2, Web),
    vm("db-pg-01", 8, 64, Db),
    ct("redis-01", 2, 8, Db),
    vm("keycloak", 4, 8, Web),
    vm("nextcloud", 4, 16, Web),
    vm("mail", 4, 8, Infra),
    ct("roundcube", 1, 2, Web),
    // pve-02
    vm("web-03", 2, 4, Web),
    ct("haproxy-02", 2, 2, Web),
    vm("db-pg-02", 4, 16, Db),
    ct("dns-01", 1, 1, Infra),
    ct("wiki", 2, 4, Web),
    // pve-03: Kubernetes and logs.
    vm("k8s-master-1", 4, 8, K8s),
    vm("k8s-worker-1", 16, 64, K8s),
    vm("k8s-worker-2", 16, 64, K8s),
    vm("k8s-worker-3", 16, 64, K8s),
    vm("elastic-01", 8, 32, Db),
    vm("elastic-02", 8, 32, Db),
    vm("kibana", 2, 4, Web),
    vm("kafka-01", 4, 16, Db),
    vm("kafka-02", 4, 16, Db),
    ct("zookeeper-01", 2, 4, Infra),
    vm("minio-01", 4, 16, Db),
    vm("harbor", 4, 8, Batch),
    // pve-04 (degraded pool): CI.
    vm("gitlab", 8, 16, Web),
    vm("gitlab-runner-1", 8, 16, Batch),
    vm("gitlab-runner-2", 8, 16, Batch),
    vm("nexus", 4, 8, Web),
    vm("sonarqube", 4, 8, Batch),
    ct("ci-cache", 2, 4, Batch),
    vm("debian12-template", 2, 2, Off),
    // pve-05: a small edge box.
    ct("dns-02", 1, 1, Infra),
    ct("pihole", 1, 1, Infra),
    ct("unifi", 2, 2, Infra),
    // pve-06: Windows and ERP.
    vm("win-dc-01", 4, 8, Infra),
    vm("win-dc-02", 4, 8, Infra),
    vm("win-file-01", 4, 16, Infra),
    vm("win-rds-01", 16, 64, Desktop),
    vm("win-rds-02", 16, 64, Desktop),
    vm("sql-server-01", 8, 64, Db),
    vm("erp-prod", 8, 32, Web),
    vm("erp-test", 4, 16, Off),
    vm("crm", 4, 16, Web),
    vm("win11-template", 4, 8, Off),
    // pve-07: backup and files.
    vm("pbs", 4, 16, Batch),
    ct("samba", 2, 4, Infra),
    ct("jellyfin", 4, 8, Web),
    ct("syslog", 2, 4, Infra),
    ct("backup-proxy", 2, 2, Batch),
    vm("minio-02", 4, 16, Db),
    // pve-08 (flaky): developers' machines.
    vm("devbox-anna", 4, 16, Desktop),
    vm("devbox-marc", 4, 16, Off),
    vm("docker-01", 4, 8, Batch),
    ct("ansible", 2, 2, Infra),
    // pve-09: monitoring and chat.
    vm("prometheus", 4, 16, Db),
    ct("grafana", 2, 4, Web),
    vm("loki", 4, 16, Db),
    vm("zabbix", 4, 8, Infra),
    ct("netbox", 2, 4, Web),
    ct("vault", 2, 2, Infra),
    vm("mattermost", 4, 8, Web),
    vm("jitsi", 4, 8, Desktop),
    // pve-10: a second Kubernetes cluster, short of memory.
    vm("k8s-master-2", 4, 8, K8s),
    vm("k8s-master-3", 4, 8, K8s),
    vm("k8s-worker-4", 8, 24, K8s),
    vm("k8s-worker-5", 8, 24, K8s),
    vm("rabbitmq-01", 4, 8, Db),
    vm("mongo-01", 4, 12, Db),
    // pve-11: the big one.
    vm("k8s-worker-6", 16, 64, K8s),
    vm("sap-dev", 16, 128, Db),
    vm("mariadb-01", 8, 32, Db),
    vm("jenkins", 8, 16, Batch),
    vm("awx", 4, 8, Batch),
    ct("ldap-01", 2, 2, Infra),
    ct("bitwarden", 2, 2, Web),
    vm("matrix-synapse", 4, 8, Web),
    vm("docker-02", 8, 16, Batch),
    ct("ntp", 1, 1, Infra),
    vm("jira", 8, 16, Web),
    // pve-12: a small branch office.
    ct("openvpn", 1, 1, Infra),
    vm("confluence", 4, 12, Web),
    ct("mail-relay", 1, 1, Infra),
    ct("nginx-proxy", 2, 2, Web),
];

/// The guests of host `index` and the VMID of the first: VMIDs are unique in the fleet,
/// as in one Proxmox cluster.
pub fn guests_of(index: usize) -> (&'static [GuestSpec], u32) {
    let first: usize = SPECS[..index].iter().map(|s| s.guests).sum();
    (&CATALOG[first..first + SPECS[index].guests], 100 + first as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_dealt_exactly_and_every_host_has_room_for_its_guests() {
        assert_eq!(SPECS.iter().map(|s| s.guests).sum::<usize>(), CATALOG.len());
        for (i, spec) in SPECS.iter().enumerate() {
            let running: u64 = guests_of(i).0.iter().filter(|g| g.role != Role::Off).map(|g| g.mem_gib).sum();
            assert!(running < spec.mem_gib * 9 / 10, "pve-{:02}: {running} GiB of guests in {}", i + 1, spec.mem_gib);
            assert!((8..=64).contains(&spec.cores) && (32..=512).contains(&spec.mem_gib));
        }
    }

    #[test]
    fn a_name_is_found_on_one_or_two_hosts() {
        for needle in ["web", "db-pg", "mail", "gitlab", "nextcloud", "pbs", "dns", "k8s-worker-3", "win-"] {
            let hosts = (0..HOSTS).filter(|i| guests_of(*i).0.iter().any(|g| g.name.contains(needle))).count();
            assert!((1..=2).contains(&hosts), "{needle} is on {hosts} hosts");
        }
    }
}
