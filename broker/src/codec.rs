//! MQTT framing on rumqttd's own codecs, with the protocol version read from CONNECT.

use bytes::BytesMut;
use rumqttd::protocol::{self, v4::V4, v5::V5, ConnAck, ConnectReturnCode, Packet, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol a client spoke in its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 3.1.1 (protocol level 4).
    V4,
    /// MQTT 5.
    V5,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an MQTT CONNECT")]
    NotConnect,
    #[error("unsupported MQTT protocol level {0}")]
    UnsupportedLevel(u8),
    #[error("malformed packet: {0:?}")]
    Malformed(protocol::Error),
    #[error("packet of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// Packet types only a server sends: CONNACK, SUBACK, UNSUBACK and PINGRESP. From a client
/// they break the protocol, and they never reach rumqttd's decoder, which panics on an MQTT 5
/// UNSUBACK (`V5::read_mut` has no arm for it and ends in `unreachable!()`; found by the
/// property tests, issue 15).
const SERVER_ONLY: [u8; 4] = [2, 9, 11, 13];

/// Looks at the first bytes of a connection: `Ok(None)` means "need more bytes".
pub fn detect(buf: &[u8]) -> Result<Option<Version>, CodecError> {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != 0x10 {
        return Err(CodecError::NotConnect);
    }
    // Skip the remaining-length varint (1 to 4 bytes).
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else { return Ok(None) };
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        if i > 4 {
            return Err(CodecError::NotConnect);
        }
    }
    let Some(name_len) = buf.get(i..i + 2) else { return Ok(None) };
    let name_len = u16::from_be_bytes([name_len[0], name_len[1]]) as usize;
    if name_len > 6 {
        return Err(CodecError::NotConnect);
    }
    let Some(&level) = buf.get(i + 2 + name_len) else { return Ok(None) };
    match level {
        4 => Ok(Some(Version::V4)),
        5 => Ok(Some(Version::V5)),
        other => Err(CodecError::UnsupportedLevel(other)),
    }
}

/// What an idle connection's read waits with: enough for a PINGREQ or a small packet.
const IDLE_READ: usize = 64;
/// How much more room a read makes once a packet has begun to arrive.
const READ_CHUNK: usize = 4096;

/// A byte stream framed into MQTT packets of one protocol version.
pub struct Framed<S> {
    pub stream: S,
    pub version: Version,
    read: BytesMut,
    write: BytesMut,
    max_packet: usize,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    /// Reads until the protocol version of the CONNECT is known.
    pub async fn accept(mut stream: S, max_packet: usize) -> Result<Framed<S>, CodecError> {
        let mut read = BytesMut::with_capacity(IDLE_READ);
        let version = loop {
            if let Some(v) = detect(&read)? {
                break v;
            }
            if stream.read_buf(&mut read).await? == 0 {
                return Err(CodecError::Closed);
            }
        };
        Ok(Framed { stream, version, read, write: BytesMut::new(), max_packet })
    }

    /// The next packet already in the buffer, if a whole one is there.
    pub fn try_next(&mut self) -> Result<Option<Packet>, CodecError> {
        if let Some(kind) = self.read.first().map(|b| b >> 4).filter(|k| SERVER_ONLY.contains(k)) {
            return Err(CodecError::Malformed(protocol::Error::InvalidPacketType(kind)));
        }
        let buffered = self.read.len();
        let result = match self.version {
            Version::V4 => V4.read_mut(&mut self.read, self.max_packet),
            Version::V5 => V5.read_mut(&mut self.read, self.max_packet),
        };
        match result {
            Ok(p) => Ok(Some(p)),
            // rumqttd also says "insufficient bytes" for a whole frame too short for its own
            // fields, after taking the frame off the buffer: that is a malformed packet.
            Err(protocol::Error::InsufficientBytes(_)) if self.read.len() == buffered => Ok(None),
            Err(protocol::Error::PayloadSizeLimitExceeded(n)) => Err(CodecError::TooLarge(n)),
            Err(e) => Err(CodecError::Malformed(e)),
        }
    }

    /// Reads one packet. Cancel-safe: bytes already read stay in the buffer.
    ///
    /// An idle connection waits with a buffer of [`IDLE_READ`] bytes, not a full one:
    /// most held connections are idle agents, and 10,000 of them each holding a
    /// kilobyte-sized buffer was a tenth of the server's memory (docs/PERFORMANCE.md).
    /// Once bytes arrive, the rest of the packet is read in [`READ_CHUNK`]s.
    pub async fn next(&mut self) -> Result<Packet, CodecError> {
        loop {
            if let Some(p) = self.try_next()? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Reads what the client sent next into the buffer, where [`Framed::try_next`] finds
    /// the packets it completes. Cancel-safe, and resolves to nothing larger than an
    /// error: a session waits on it rather than on [`Framed::next`], whose packet
    /// (400 bytes) would be part of the session task's size for as long as it is held.
    pub async fn fill(&mut self) -> Result<(), CodecError> {
        if self.read.is_empty() {
            // Also lets go of the allocation the packets just decoded share.
            self.read = BytesMut::with_capacity(IDLE_READ);
        } else {
            self.read.reserve(READ_CHUNK);
        }
        if self.stream.read_buf(&mut self.read).await? == 0 {
            return Err(CodecError::Closed);
        }
        Ok(())
    }

    /// Queues a packet; [`Framed::flush`] sends what is queued.
    pub fn queue(&mut self, packet: Packet) -> Result<(), CodecError> {
        let result = match self.version {
            Version::V4 => V4.write(packet, &mut self.write),
            Version::V5 => V5.write(packet, &mut self.write),
        };
        result.map(|_| ()).map_err(CodecError::Malformed)
    }

    pub async fn flush(&mut self) -> Result<(), CodecError> {
        if !self.write.is_empty() {
            self.stream.write_all(&self.write).await?;
            // Not kept between flushes: an idle connection holds no write buffer.
            self.write = BytesMut::new();
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// Answers a CONNECT with "not authorized" (3.1.1 code 5, MQTT 5 reason 0x87) and
    /// closes, so that a client can tell a bad token from a network failure.
    pub async fn refuse(&mut self, code: ConnectReturnCode) {
        let ack = ConnAck { session_present: false, code };
        if self.queue(Packet::ConnAck(ack, None)).is_ok() {
            let _ = self.flush().await;
        }
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    // CONNECT headers as mosquitto_pub sends them.
    const V311: &[u8] = &[0x10, 0x1a, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02];
    const V5_: &[u8] = &[0x10, 0x1a, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05, 0x02];
    const V31: &[u8] = &[0x10, 0x1a, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03];

    #[test]
    fn version_is_read_from_the_connect() {
        assert_eq!(detect(V311).unwrap(), Some(Version::V4));
        assert_eq!(detect(V5_).unwrap(), Some(Version::V5));
        assert!(matches!(detect(V31), Err(CodecError::UnsupportedLevel(3))));
        assert!(matches!(detect(b"GET / HTTP/1.1"), Err(CodecError::NotConnect)));
        for n in 0..9 {
            assert_eq!(detect(&V311[..n]).unwrap(), None, "prefix of {n} bytes");
        }
    }

    #[test]
    fn a_whole_packet_too_short_for_its_content_is_malformed_not_awaited() {
        // Issue 15, found by the `codec` fuzz target: rumqttd answers "insufficient bytes" for
        // a SUBSCRIBE whose frame is complete but too short for its own fields, after taking
        // the frame off the buffer. Taken for "need more bytes", the packet vanished and the
        // PINGREQ behind it waited for the client's next segment.
        let (stream, _) = tokio::io::duplex(64);
        let mut framed =
            Framed { stream, version: Version::V5, read: BytesMut::new(), write: BytesMut::new(), max_packet: 1024 };
        framed.read.extend_from_slice(&[0x82, 0x02, 0x00, 0x01, 0xc0, 0x00]);
        assert!(matches!(framed.try_next(), Err(CodecError::Malformed(_))));
    }

    #[tokio::test]
    async fn an_idle_connection_holds_small_buffers_whatever_came_before() {
        // Most held connections are idle agents (docs/PERFORMANCE.md): after a 3,000-byte
        // publish and its answer, waiting for the next packet holds a few bytes, not the
        // publish's buffer, and nothing is kept for writing.
        let (mut client, stream) = tokio::io::duplex(8192);
        let mut framed =
            Framed { stream, version: Version::V4, read: BytesMut::new(), write: BytesMut::new(), max_packet: 8192 };
        let publish = [&[0x30, 0xbd, 0x17, 0x00, 0x03][..], b"a/b", &[7u8; 3000]].concat();
        tokio::io::AsyncWriteExt::write_all(&mut client, &publish).await.unwrap();
        assert!(matches!(framed.next().await.unwrap(), Packet::Publish(..)));
        framed.queue(Packet::PingResp(protocol::PingResp)).unwrap();
        framed.flush().await.unwrap();
        assert_eq!(framed.write.capacity(), 0);
        let idle = tokio::time::timeout(std::time::Duration::from_millis(50), framed.next()).await;
        assert!(idle.is_err(), "nothing more was sent");
        assert!(framed.read.capacity() <= IDLE_READ, "idle read buffer of {}", framed.read.capacity());
    }

    #[test]
    fn packets_only_a_server_sends_are_refused_not_decoded() {
        // An MQTT 5 UNSUBACK panicked rumqttd's decoder (issue 15, found by the property tests).
        for (version, bytes) in
            [(Version::V5, [0xb0, 0x03, 0x00, 0x01, 0x00]), (Version::V4, [0x20, 0x02, 0x00, 0x00, 0])]
        {
            let (stream, _) = tokio::io::duplex(64);
            let mut framed =
                Framed { stream, version, read: BytesMut::new(), write: BytesMut::new(), max_packet: 1024 };
            framed.read.extend_from_slice(&bytes);
            assert!(matches!(framed.try_next(), Err(CodecError::Malformed(_))), "{version:?} {bytes:?}");
        }
    }
}
