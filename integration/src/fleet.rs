//! The fleet simulator's parts (`bench_fleet`): simulated agents that run the agent
//! crate's own scheduler and publisher (rumqttc, MQTT over WebSocket, real tokens), an
//! observer that times each delivery, and Mosquitto 2 as a pass-through broker to compare
//! with. Only the collectors are simulated: each tier's data is a realistic fixed payload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxmox_monitor_agent::collect::Errors;
use proxmox_monitor_agent::config::{ServerUrl, Settings};
use proxmox_monitor_agent::outbox::Outbox;
use proxmox_monitor_agent::publisher;
use proxmox_monitor_agent::schedule::{self, Envelopes, Intervals};
use proxmox_monitor_agent::source::{Source, TierData};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use wire::{HostId, Kind, Topic};

use crate::{free_port, samples, terminate, wait_for};

/// A simulated host's collectors: the same realistic payload every time (the fast tier's
/// CPU and uptime move), so the broker and the recorder see what a real fleet sends.
struct SimHost {
    fast_seq: u64,
}

impl Source for SimHost {
    async fn collect(&mut self, tier: Kind, _timeout: Duration) -> (TierData, Errors) {
        let data = match tier {
            Kind::Medium => TierData::Medium(samples::medium_data()),
            Kind::Slow => TierData::Slow(samples::slow_data()),
            Kind::Fast | Kind::Status => {
                self.fast_seq += 1;
                TierData::Fast(samples::fast_data(self.fast_seq))
            }
        };
        (data, Errors::new())
    }
}

/// One simulated agent's settings: `ws://addr/mqtt` with the host's token.
pub fn agent_settings(ws: SocketAddr, host: &str, token: &str, tiers: Intervals, state: &Path) -> Settings {
    let host_id = HostId::parse(host).expect("a valid host id");
    Settings {
        server: ServerUrl::Ws { url: format!("ws://{ws}/mqtt"), port: ws.port() },
        token: token.into(),
        host_id,
        node: host.into(),
        fast: tiers.fast,
        medium: tiers.medium,
        slow: tiers.slow,
        keepalive: Duration::from_secs(30),
        ca_file: None,
        state_dir: state.join(host),
        buffer_max_bytes: 1 << 20,
    }
}

/// Runs one agent until `stop` changes: the agent's scheduler and its publisher, with its
/// outage buffer under `state_dir`.
pub async fn run_agent(settings: Settings, mut stop: watch::Receiver<()>) {
    let Ok(outbox) = Outbox::open(&settings.state_dir, settings.buffer_max_bytes) else { return };
    let (tx, rx) = mpsc::channel(16);
    let intervals = Intervals { fast: settings.fast, medium: settings.medium, slow: settings.slow };
    let envelopes = Envelopes::new(settings.host_id.clone(), outbox.dropped.clone());
    let stopped = async move {
        let _ = stop.changed().await;
    };
    let publishing = publisher::run(&settings, rx, outbox, stopped);
    let scheduling = schedule::run(SimHost { fast_seq: 0 }, envelopes, intervals, tx);
    tokio::select! {
        _ = publishing => {}
        _ = scheduling => {}
    }
}

/// What the observer saw: hosts announced online (when each first was, since the map was
/// last cleared), and while recording, each tier payload's delivery latency (receipt − the
/// payload's `ts_ms`, stamped by the agent's envelope just before it is handed to the
/// publisher).
#[derive(Default)]
pub struct Deliveries {
    pub online: HashMap<String, Instant>,
    pub recording: bool,
    pub latencies_ms: Vec<u32>,
}

/// An observer's record, and its thread (stopped on drop).
pub struct Observer {
    pub seen: Arc<Mutex<Deliveries>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.take().map(|stop| stop.send(()));
    }
}

/// Subscribes to `pmon/v1/+/+` at QoS 1 on `addr` (plain MQTT), again after each
/// reconnect, and records into [`Observer::seen`] until dropped. It runs on a thread and
/// runtime of its own, so that thousands of simulated agents cannot starve it (its
/// timings and its keepalive would suffer).
pub fn observe(addr: SocketAddr, user: &str, password: &str) -> Observer {
    // A client id of its own, so that two observers of one credential do not replace each other.
    static OBSERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = OBSERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut options = MqttOptions::new(format!("{user}-observer-{n}"), addr.ip().to_string(), addr.port());
    options.set_credentials(user, password).set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(60)).set_inflight(1000);
    let seen = Arc::new(Mutex::new(Deliveries::default()));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (ready, subscribed) = std::sync::mpsc::channel();
    let record = seen.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            tokio::select! {
                _ = stopped => {}
                _ = observe_loop(options, &record, ready) => {}
            }
        });
    });
    subscribed.recv_timeout(Duration::from_secs(20)).expect("the observer subscribed");
    Observer { seen, stop: Some(stop) }
}

async fn observe_loop(options: MqttOptions, record: &Mutex<Deliveries>, ready: std::sync::mpsc::Sender<()>) {
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // A clean session: the subscription is made again on every connection.
                let _ = client.try_subscribe("pmon/v1/+/+", QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = ready.send(());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => delivered(record, &p.topic, &p.payload),
            Ok(_) => {}
            Err(e) => {
                eprintln!("observer: {e}; reconnecting");
                // Soon: after a broker restart (`bench_fleet --reconnect restart`) it must be
                // subscribed again before most agents are back, to see their `online` live.
                // Our server's retained replay holds at most 100 of them (rumqttd's
                // MAX_INFLIGHT; docs/RELIABILITY.md).
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn delivered(seen: &Mutex<Deliveries>, topic: &str, payload: &[u8]) {
    let received = wire::now_ms();
    let Ok(topic) = Topic::parse(topic) else { return };
    let mut seen = seen.lock().unwrap();
    if topic.kind == Kind::Status {
        if payload == wire::topic::ONLINE.as_bytes() {
            seen.online.entry(topic.host.to_string()).or_insert_with(Instant::now);
        }
    } else if seen.recording {
        if let Some(ts) = ts_ms(payload) {
            seen.latencies_ms.push((received - ts).max(0) as u32);
        }
    }
}

/// The envelope's `ts_ms`, read without parsing the whole payload.
fn ts_ms(payload: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(payload).ok()?;
    let rest = &text[text.find("\"ts_ms\":")? + 8..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// The `q` quantile (0..=1) of `values`, sorted in place; 0 when empty.
pub fn quantile(values: &mut [u32], q: f64) -> u32 {
    values.sort_unstable();
    let i = ((values.len() as f64 * q) as usize).min(values.len().saturating_sub(1));
    values.get(i).copied().unwrap_or(0)
}

/// Debian's Mosquitto 2 on loopback, a plain MQTT and a WebSocket listener, anonymous,
/// nothing persisted: a pass-through broker for the same generator. Killed on drop.
pub struct Mosquitto {
    child: Child,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let (tcp, ws) = (free_port(), free_port());
        let config_text = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             max_queued_messages 1000000\nlog_dest stderr\nlog_type error\nlog_type warning\n\
             listener {tcp} 127.0.0.1\nlistener {ws} 127.0.0.1\nprotocol websockets\n"
        );
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(&config, config_text)?;
        let tcp = SocketAddr::from(([127, 0, 0, 1], tcp));
        let ws = SocketAddr::from(([127, 0, 0, 1], ws));
        let child = spawn_mosquitto(&config, [tcp, ws])?;
        Ok(Mosquitto { child, tcp, ws, config, _dir: dir })
    }

    /// Stops it with SIGTERM and starts it again on the same ports (nothing persisted:
    /// retained messages are gone, as after a real restart with `persistence false`).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        terminate(&mut self.child);
        self.child = spawn_mosquitto(&self.config, [self.tcp, self.ws])?;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Runs `mosquitto -c config` and waits until it accepts connections on `listeners`.
fn spawn_mosquitto(config: &Path, listeners: [SocketAddr; 2]) -> anyhow::Result<Child> {
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run mosquitto ({e}): apt-get install mosquitto"))?;
    for addr in listeners {
        wait_for("mosquitto listening", Duration::from_secs(10), || std::net::TcpStream::connect(addr).ok());
    }
    Ok(child)
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_ms_is_read_from_the_envelope() {
        assert_eq!(ts_ms(br#"{"schema":1,"host_id":"h","ts_ms":1764000000123,"seq":4}"#), Some(1_764_000_000_123));
        assert_eq!(ts_ms(b"online"), None);
    }

    #[test]
    fn quantiles_of_sorted_values() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(quantile(&mut v, 0.5), 51);
        assert_eq!(quantile(&mut v, 0.99), 100);
        assert_eq!(quantile(&mut [], 0.5), 0);
    }
}
