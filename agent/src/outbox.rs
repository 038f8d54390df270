//! The outage buffer: while the server is unreachable, payloads go to a bounded file in
//! the agent's state directory, and are replayed in order (with their original
//! timestamps) after the next CONNACK. It survives an agent restart; when full, the oldest
//! payloads are dropped and counted, and the count travels in the next payload.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::schedule::Message;

/// Default size limit of the buffer file.
pub const DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;

/// An append-only file of `[u32 topic len][u32 payload len][topic][payload]` records.
pub struct Outbox {
    path: PathBuf,
    max_bytes: u64,
    /// Payloads dropped because the buffer was full; the scheduler reports and resets it.
    pub dropped: Arc<AtomicU64>,
}

impl Outbox {
    /// Opens (or creates) `dir/outbox.bin`.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Outbox> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("outbox.bin");
        OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Outbox { path, max_bytes, dropped: Arc::new(AtomicU64::new(0)) })
    }

    pub fn len_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len_bytes() == 0
    }

    /// Appends one payload, first dropping the oldest ones if it would not fit.
    pub fn push(&mut self, message: &Message) -> std::io::Result<()> {
        let size = record_len(message);
        if self.len_bytes() + size > self.max_bytes {
            // Drop a quarter at once, so a long outage rewrites the file rarely.
            self.drop_oldest((self.max_bytes / 4).max(size))?;
        }
        let mut file = OpenOptions::new().append(true).open(&self.path)?;
        file.write_all(&record(message))?;
        file.sync_data()
    }

    /// Every buffered payload, oldest first. A torn last record (a crash mid-write) is
    /// ignored.
    pub fn read_all(&self) -> std::io::Result<Vec<Message>> {
        let mut bytes = Vec::new();
        BufReader::new(File::open(&self.path)?).read_to_end(&mut bytes)?;
        Ok(parse(&bytes))
    }

    /// Forgets everything (after a successful replay).
    pub fn clear(&mut self) -> std::io::Result<()> {
        File::create(&self.path).map(|_| ())
    }

    fn drop_oldest(&mut self, at_least: u64) -> std::io::Result<()> {
        let messages = self.read_all()?;
        let mut freed = 0u64;
        let mut skip = 0;
        for m in &messages {
            if freed >= at_least {
                break;
            }
            freed += record_len(m);
            skip += 1;
        }
        self.dropped.fetch_add(skip as u64, Ordering::Relaxed);
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = File::create(&tmp)?;
            for m in &messages[skip..] {
                file.write_all(&record(m))?;
            }
            file.sync_all()?;
        }
        std::fs::rename(tmp, &self.path)
    }
}

/// Bytes one message takes in the file.
fn record_len(message: &Message) -> u64 {
    8 + message.topic.len() as u64 + message.payload.len() as u64
}

/// One message as a record: `[u32 topic len][u32 payload len][topic][payload]`.
fn record(message: &Message) -> Vec<u8> {
    let mut record = Vec::with_capacity(record_len(message) as usize);
    record.extend_from_slice(&(message.topic.len() as u32).to_le_bytes());
    record.extend_from_slice(&(message.payload.len() as u32).to_le_bytes());
    record.extend_from_slice(message.topic.as_bytes());
    record.extend_from_slice(&message.payload);
    record
}

/// Parses records, stopping at the first incomplete one.
fn parse(mut bytes: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let topic_len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        let payload_len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        let Some(record) = bytes.get(8..8 + topic_len + payload_len) else { break };
        let Ok(topic) = std::str::from_utf8(&record[..topic_len]) else { break };
        out.push(Message { topic: topic.to_owned(), payload: record[topic_len..].to_vec() });
        bytes = &bytes[8 + topic_len + payload_len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: usize) -> Message {
        Message { topic: "pmon/v1/h/fast".into(), payload: format!("payload-{i:04}").into_bytes() }
    }

    #[test]
    fn keeps_order_across_reopen_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 1 << 20).unwrap();
        for i in 0..5 {
            outbox.push(&msg(i)).unwrap();
        }
        let reopened = Outbox::open(dir.path(), 1 << 20).unwrap();
        let got: Vec<Vec<u8>> = reopened.read_all().unwrap().into_iter().map(|m| m.payload).collect();
        assert_eq!(got, (0..5).map(|i| msg(i).payload).collect::<Vec<_>>());
        outbox.clear().unwrap();
        assert!(outbox.is_empty());
    }

    #[test]
    fn when_full_the_oldest_go_first_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let one = 8 + msg(0).topic.len() + msg(0).payload.len();
        let mut outbox = Outbox::open(dir.path(), (one * 10) as u64).unwrap();
        for i in 0..25 {
            outbox.push(&msg(i)).unwrap();
        }
        let kept = outbox.read_all().unwrap();
        assert!(outbox.len_bytes() <= (one * 10) as u64);
        assert_eq!(kept.last().unwrap().payload, msg(24).payload, "the newest is kept");
        let dropped = outbox.dropped.load(Ordering::Relaxed) as usize;
        assert_eq!(dropped + kept.len(), 25, "every payload is either kept or counted");
        let first = String::from_utf8(kept[0].payload.clone()).unwrap();
        assert_eq!(first, format!("payload-{dropped:04}"), "dropped oldest first, order kept");
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path(), 1 << 20).unwrap();
        outbox.push(&msg(1)).unwrap();
        let mut f = OpenOptions::new().append(true).open(dir.path().join("outbox.bin")).unwrap();
        f.write_all(&[9, 0, 0, 0, 200, 0]).unwrap();
        assert_eq!(outbox.read_all().unwrap().len(), 1);
    }
}
