//! The read side of RFC 6455 for a server: client frames in, the binary payload out,
//! unmasked in place. Pure: bytes in, bytes out, and the control answers to send.

use super::Replies;

/// The longest frame header: 2 bytes, a 64-bit length, a 4-byte mask.
const MAX_HEAD: usize = 14;
/// The longest payload of a control frame (RFC 6455 5.5).
const MAX_CONTROL: u64 = 125;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// A client's frame this server does not take; the connection ends with a close frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("text frame: MQTT over WebSocket is binary frames only")]
    Text,
    #[error("unmasked frame: a client must mask every frame")]
    Unmasked,
    #[error("reserved bits set: no extension was agreed")]
    Reserved,
    #[error("unknown opcode {0:#x}")]
    Opcode(u8),
    #[error("control frame fragmented or over 125 bytes")]
    BadControl,
    #[error("continuation frame outside a message, or a new message inside one")]
    Fragment,
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(u64),
}

impl WsError {
    /// The close code sent before the connection ends (RFC 6455 7.4.1).
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Text => 1003,
            WsError::TooLarge(_) => 1009,
            _ => 1002,
        }
    }
}

/// What the payload of the frame being read is for.
#[derive(Debug)]
enum Payload {
    /// Binary or continuation: the caller's bytes.
    Data,
    /// A ping's payload, echoed in the pong.
    Ping(Vec<u8>),
    /// A close's payload, whose status code is echoed.
    Close(Vec<u8>),
    /// Nothing to do with it.
    Pong,
}

/// The frame whose payload is arriving.
#[derive(Debug)]
struct Frame {
    payload: Payload,
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes unmasked so far, for the mask's position.
    offset: usize,
}

/// The state between reads: a partial header or the frame being read, a few dozen bytes.
#[derive(Debug)]
pub struct Decoder {
    head: [u8; MAX_HEAD],
    head_len: usize,
    frame: Option<Frame>,
    /// A binary message's last frame has not arrived yet.
    in_message: bool,
    /// The client sent a close frame: what follows is ignored.
    closed: bool,
    /// The client sent a frame it may not: what follows is ignored.
    failed: Option<WsError>,
    max_frame: u64,
}

impl Decoder {
    /// Frames longer than `max_frame` are refused ([`WsError::TooLarge`]).
    pub fn new(max_frame: u64) -> Decoder {
        Decoder {
            head: [0; MAX_HEAD],
            head_len: 0,
            frame: None,
            in_message: false,
            closed: false,
            failed: None,
            max_frame,
        }
    }

    /// The client sent a close frame.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// Why the client's frames were refused.
    pub fn failed(&self) -> Option<WsError> {
        self.failed
    }

    /// Bytes of a frame or message are missing: the end of the stream here is not clean.
    pub fn partway(&self) -> bool {
        self.failed.is_none() && self.head_len > 0 || self.frame.is_some() || self.in_message
    }

    /// Takes `data` as read from the client: moves its binary payload, unmasked, to the
    /// front of `data` and returns its length; pings and a close queue their answers.
    /// Stops at a close frame, or at a frame it refuses (with a close frame saying why):
    /// the payload before either still counts, so where reads cut the stream changes
    /// nothing.
    pub fn decode(&mut self, data: &mut [u8], replies: &mut Replies) -> usize {
        let (mut read, mut out) = (0, 0);
        while read < data.len() && !self.closed && self.failed.is_none() {
            let Some(frame) = &mut self.frame else {
                match self.take_head(&data[read..]) {
                    Ok(used) => read += used,
                    Err(e) => {
                        replies.close(Some(e.close_code()));
                        self.failed = Some(e);
                    }
                }
                self.finish_empty(replies);
                continue;
            };
            // The remaining length is at most the limit, a usize: `min` keeps it in range.
            let n = (data.len() - read).min(usize::try_from(frame.remaining).unwrap_or(usize::MAX));
            match &mut frame.payload {
                Payload::Data => {
                    data.copy_within(read..read + n, out);
                    unmask(&mut data[out..out + n], frame.mask, frame.offset);
                    out += n;
                }
                Payload::Ping(kept) | Payload::Close(kept) => {
                    let start = kept.len();
                    kept.extend_from_slice(&data[read..read + n]);
                    unmask(&mut kept[start..], frame.mask, frame.offset);
                }
                Payload::Pong => {}
            }
            read += n;
            frame.offset += n;
            frame.remaining -= n as u64;
            if frame.remaining == 0 {
                self.finish(replies);
            }
        }
        out
    }

    /// Takes header bytes from the front of `data`; returns how many. Once the header is
    /// whole, the frame begins.
    fn take_head(&mut self, data: &[u8]) -> Result<usize, WsError> {
        let mut used = 0;
        loop {
            let needed = head_size(&self.head[..self.head_len]);
            if self.head_len == needed {
                break;
            }
            let Some(&byte) = data.get(used) else { return Ok(used) };
            self.head[self.head_len] = byte;
            self.head_len += 1;
            used += 1;
            if self.head_len == 2 {
                self.check_start()?;
            }
        }
        self.begin()?;
        Ok(used)
    }

    /// The first two bytes: flags, opcode, mask bit and the 7-bit length.
    fn check_start(&mut self) -> Result<(), WsError> {
        let (first, second) = (self.head[0], self.head[1]);
        let (fin, opcode, len7) = (first & 0x80 != 0, first & 0x0F, u64::from(second & 0x7F));
        if first & 0x70 != 0 {
            return Err(WsError::Reserved);
        }
        if second & 0x80 == 0 {
            return Err(WsError::Unmasked);
        }
        match opcode {
            OP_TEXT => Err(WsError::Text),
            OP_BINARY if self.in_message => Err(WsError::Fragment),
            OP_CONTINUATION if !self.in_message => Err(WsError::Fragment),
            OP_BINARY | OP_CONTINUATION => Ok(()),
            OP_CLOSE | OP_PING | OP_PONG if !fin || len7 > MAX_CONTROL => Err(WsError::BadControl),
            OP_CLOSE | OP_PING | OP_PONG => Ok(()),
            other => Err(WsError::Opcode(other)),
        }
    }

    /// The header is whole: the frame's length and mask are known.
    fn begin(&mut self) -> Result<(), WsError> {
        let head = &self.head[..self.head_len];
        let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0F);
        let (len, mask_at) = match head[1] & 0x7F {
            126 => (u64::from(u16::from_be_bytes([head[2], head[3]])), 4),
            127 => (u64::from_be_bytes(head[2..10].try_into().expect("a 14-byte header has 8 length bytes")), 10),
            short => (u64::from(short), 2),
        };
        if len > self.max_frame {
            return Err(WsError::TooLarge(len));
        }
        let mask = head[mask_at..mask_at + 4].try_into().expect("the mask ends the header");
        let small = len as usize; // Control frames are at most 125 bytes (checked above).
        let payload = match opcode {
            OP_PING => Payload::Ping(Vec::with_capacity(small)),
            OP_CLOSE => Payload::Close(Vec::with_capacity(small)),
            OP_PONG => Payload::Pong,
            _ => {
                self.in_message = !fin;
                Payload::Data
            }
        };
        self.head_len = 0;
        self.frame = Some(Frame { payload, remaining: len, mask, offset: 0 });
        Ok(())
    }

    /// A frame with an empty payload ends as soon as it begins.
    fn finish_empty(&mut self, replies: &mut Replies) {
        if self.frame.as_ref().is_some_and(|f| f.remaining == 0) {
            self.finish(replies);
        }
    }

    /// The frame's payload is all here.
    fn finish(&mut self, replies: &mut Replies) {
        match self.frame.take().map(|f| f.payload) {
            Some(Payload::Ping(payload)) => replies.pong(&payload),
            Some(Payload::Close(payload)) => {
                // Echo the status code, if any; a bare close is answered with a bare close.
                replies.close(payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]])));
                self.closed = true;
            }
            _ => {}
        }
    }
}

/// How long the header is, from what of it has arrived (at least the first 2 bytes).
fn head_size(head: &[u8]) -> usize {
    match head.get(1).map(|b| b & 0x7F) {
        None => 2,
        Some(126) => 2 + 2 + 4,
        Some(127) => 2 + 8 + 4,
        Some(_) => 2 + 4,
    }
}

/// XORs `bytes` with the mask, starting at payload position `offset`.
fn unmask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}
