//! A TCP relay on loopback that can close every connection through it at once: what the
//! agents see when the reverse proxy in front of the server restarts (Caddy closes its
//! WebSocket connections on a restart, and on a config reload unless `stream_close_delay`
//! is set), and what the server sees too. `bench_fleet --reconnect drop` puts it between
//! the simulated agents and the broker, in processes of their own ([`RelayProcess`]): a
//! relayed connection is two sockets, and the agents' process already holds one per agent
//! against an open-file limit (20,000 on the bench machine, not raisable without root).

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// Connections the relay's listener may hold before it accepts them: as many as the
/// kernel allows (`net.core.somaxconn`), so that a whole fleet reconnecting at once
/// queues here rather than being refused by the relay; the broker's own backlog is what
/// the benchmark is about.
const LISTEN_BACKLOG: u32 = 65_535;

/// The value [`Relay`]'s drop sends: the relay is gone, its accept loop ends.
const CLOSED: u64 = u64::MAX;

/// A running relay to one address. Dropping it ends it and closes its connections.
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Incremented by [`Relay::cut`], [`CLOSED`] on drop; every connection task ends
    /// when it changes.
    cuts: watch::Sender<u64>,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to `target`, on the
    /// current tokio runtime.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        let addr = listener.local_addr()?;
        let (cuts, cut) = watch::channel(0);
        tokio::spawn(accept(listener, target, cut));
        Ok(Relay { addr, cuts })
    }

    /// Closes every connection relayed so far, both ways (the broker and the client each
    /// see their socket closed); the relay goes on accepting new ones.
    pub fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cuts.send_replace(CLOSED);
    }
}

/// Accepts until the relay is dropped; each connection ends at the next cut after it.
async fn accept(listener: TcpListener, target: SocketAddr, mut cut: watch::Receiver<u64>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((client, _)) = accepted {
                    // Marked seen first, so that a cut before this accept does not close
                    // the new connection.
                    if *cut.borrow_and_update() == CLOSED {
                        return;
                    }
                    tokio::spawn(relay(client, target, cut.clone()));
                }
            }
            changed = cut.changed() => {
                if changed.is_err() || *cut.borrow_and_update() == CLOSED {
                    return;
                }
            }
        }
    }
}

/// A relay in a child process: `program --relay TARGET` (a binary whose `main` calls
/// [`serve_relay_process`] on that flag). Killed on drop.
pub struct RelayProcess {
    /// Where clients connect.
    pub addr: SocketAddr,
    child: Child,
    commands: ChildStdin,
}

impl RelayProcess {
    pub fn spawn(program: &Path, target: SocketAddr) -> anyhow::Result<RelayProcess> {
        let mut child = Command::new(program)
            .arg("--relay")
            .arg(target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} --relay", program.display()))?;
        let commands = child.stdin.take().context("piped stdin")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("piped stdout")?).read_line(&mut line)?;
        let addr = line.trim().strip_prefix("relay ").and_then(|a| a.parse().ok());
        let addr = addr.with_context(|| format!("the relay printed {line:?}, not `relay ADDR`"))?;
        Ok(RelayProcess { addr, child, commands })
    }

    /// Closes every connection relayed so far (see [`Relay::cut`]), without waiting.
    pub fn cut(&mut self) -> anyhow::Result<()> {
        self.commands.write_all(b"cut\n")?;
        Ok(self.commands.flush()?)
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side of [`RelayProcess`]: relays to `target`, prints `relay ADDR`, cuts on
/// every line read from stdin, and ends when stdin closes.
pub fn serve_relay_process(target: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let relay = runtime.block_on(Relay::start(target))?;
    println!("relay {}", relay.addr);
    std::io::stdout().flush()?;
    let (lines, mut commands) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() || lines.send(()).is_err() {
                return;
            }
        }
    });
    runtime.block_on(async {
        while commands.recv().await.is_some() {
            relay.cut();
        }
    });
    Ok(())
}

/// Copies both ways until either side closes or the relay is cut.
async fn relay(mut client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<u64>) {
    let Ok(mut server) = TcpStream::connect(target).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_cut_closes_both_sides_and_new_connections_still_pass() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay::start(upstream.local_addr().unwrap()).await.unwrap();
        let limit = Duration::from_secs(5);
        let mut client = TcpStream::connect(relay.addr).await.unwrap();
        let (mut server, _) = tokio::time::timeout(limit, upstream.accept()).await.unwrap().unwrap();
        client.write_all(b"ping").await.unwrap();
        let mut got = [0; 4];
        tokio::time::timeout(limit, server.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"ping");

        relay.cut();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(limit, client.read_to_end(&mut rest)).await;
        assert_eq!(read.expect("the client sees the close").unwrap(), 0);
        let read = tokio::time::timeout(limit, server.read_to_end(&mut rest)).await;
        assert_eq!(read.expect("the server sees the close").unwrap(), 0);

        let mut again = TcpStream::connect(relay.addr).await.unwrap();
        let (mut server, _) = tokio::time::timeout(limit, upstream.accept()).await.unwrap().unwrap();
        again.write_all(b"pong").await.unwrap();
        tokio::time::timeout(limit, server.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"pong");
    }
}
