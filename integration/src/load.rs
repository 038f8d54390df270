//! A lean MQTT 3.1.1 publisher for load generation: blocking CONNECT, then non-blocking
//! QoS 1 PUBLISH packets written by hand and PUBACKs counted as they come back.
//!
//! Why not rumqttc: a load generator on the same two cores as the server under test takes
//! CPU from it. rumqttc (an event loop, a request channel and a task per client) costs a
//! large share of a core at the benchmarks' rates; this costs a write per publish and a
//! read per drain, so the benchmark measures the server rather than its client library. It speaks
//! the real protocol to the real gateway: the server cannot tell it from an agent.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One connected client.
pub struct Publisher {
    stream: TcpStream,
    /// Bytes not yet written (the socket would have blocked).
    unsent: Vec<u8>,
    /// Bytes of a PUBACK read only in part.
    partial: usize,
    pkid: u16,
    pub acked: u64,
}

impl Publisher {
    /// Connects with client id and username `host` and password `token`; fails unless the
    /// server answers CONNACK with return code 0.
    pub fn connect(addr: SocketAddr, host: &str, token: &str) -> std::io::Result<Publisher> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut body = Vec::new();
        put_str(&mut body, "MQTT");
        // Protocol level 4 (3.1.1); flags: username, password, clean session.
        body.extend_from_slice(&[4, 0b1100_0010]);
        body.extend_from_slice(&300u16.to_be_bytes()); // keep-alive, s
        put_str(&mut body, host);
        put_str(&mut body, host);
        put_str(&mut body, token);
        stream.write_all(&packet(0x10, &body))?;
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack)?;
        if connack[0] != 0x20 || connack[3] != 0 {
            return Err(std::io::Error::other(format!("CONNACK refused: {connack:?}")));
        }
        stream.set_nonblocking(true)?;
        Ok(Publisher { stream, unsent: Vec::new(), partial: 0, pkid: 0, acked: 0 })
    }

    /// Queues a QoS 1 PUBLISH and writes what the socket takes without blocking.
    pub fn publish(&mut self, topic: &str, payload: &[u8]) -> std::io::Result<()> {
        self.pkid = self.pkid.checked_add(1).unwrap_or(1);
        let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
        put_str(&mut body, topic);
        body.extend_from_slice(&self.pkid.to_be_bytes());
        body.extend_from_slice(payload);
        self.unsent.extend_from_slice(&packet(0x32, &body));
        self.flush()
    }

    /// Writes queued bytes and counts the PUBACKs that arrived, without blocking.
    pub fn flush(&mut self) -> std::io::Result<()> {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(n) => drop(self.unsent.drain(..n)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                // The server sends this client nothing but 4-byte PUBACKs.
                Ok(n) => {
                    self.acked += ((self.partial + n) / 4) as u64;
                    self.partial = (self.partial + n) % 4;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// An MQTT string field: its length (2 bytes, big-endian), then its bytes.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A whole packet: fixed header byte, variable-length remaining length, body.
pub fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(header);
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::packet;

    #[test]
    fn remaining_length_is_variable_length_encoded() {
        assert_eq!(packet(0x32, &[0; 3])[..2], [0x32, 3]);
        assert_eq!(packet(0x32, &[0; 321])[..3], [0x32, 0xC1, 0x02]);
    }
}
