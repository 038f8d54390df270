//! A packed block: one host's hourly cells of every subject over [`BLOCK_HOURS`] hours,
//! as one blob.
//!
//! Layout: a format byte, then one section per group (in [`Group::ALL`] order), each
//! preceded by its length so that a read of one group skips the others. A section lists
//! its subjects, each by its number in `rollup_subjects` and its length (a read can skip
//! it), then the subject's streams ([`codec::put_stream`]) over the block's hours: first
//! `n`, whose absent hours are the hours the subject has no cell in, then each field
//! over the hours present. A gauge's count is stored as `n - count`, its minimum as
//! `mean - min` and its maximum as `max - mean`: all small, and mostly unchanged from one
//! hour to the next.

use std::collections::BTreeMap;

use super::cell::{fields_of, Cell, COUNT, MAX, MEAN, MIN};
use super::codec::{put_stream, put_varint, read_stream, Corrupt, Reader};
use super::{Agg, Group};

/// Hours in a block: four days, eight blocks to a 32-day partition. A longer block
/// spreads each stream's first value over more hours; a host's block is then about
/// 20 KB, a few pages.
pub const BLOCK_HOURS: i64 = 96;
const FORMAT: u8 = 1;

/// One subject's cells over a block, one slot per hour.
pub type Slots = Vec<Option<Cell>>;

/// A decoded block: per group, each subject's hours by subject number.
pub type Block = BTreeMap<(Group, i64), Slots>;

pub fn encode(block: &Block) -> Vec<u8> {
    let mut out = vec![FORMAT];
    for group in Group::ALL {
        let subjects: Vec<_> = block.iter().filter(|((g, _), _)| *g == group).collect();
        let mut section = Vec::new();
        put_varint(&mut section, subjects.len() as u64);
        for ((_, subject), slots) in subjects {
            let body = encode_subject(group, slots);
            put_varint(&mut section, *subject as u64);
            put_varint(&mut section, body.len() as u64);
            section.extend(body);
        }
        put_varint(&mut out, section.len() as u64);
        out.extend(section);
    }
    out
}

fn encode_subject(group: Group, slots: &Slots) -> Vec<u8> {
    let mut out = Vec::new();
    put_stream(&mut out, &slots.iter().map(|c| c.as_ref().map(|c| c.n)).collect::<Vec<_>>());
    let cells: Vec<&Cell> = slots.iter().flatten().collect();
    let mut at = 0;
    for metric in group.metrics() {
        let field = |i: usize| cells.iter().map(move |c| c.fields[at + i]);
        if metric.agg == Agg::Gauge {
            let count = |c: &Cell| c.fields[at + COUNT].unwrap_or(0);
            let spread = |c: &Cell, a: usize, b: usize| Some(c.fields[at + a]? - c.fields[at + b]?);
            put_stream(&mut out, &cells.iter().map(|c| Some(c.n - count(c))).collect::<Vec<_>>());
            put_stream(&mut out, &field(MEAN).collect::<Vec<_>>());
            put_stream(&mut out, &cells.iter().map(|c| spread(c, MEAN, MIN)).collect::<Vec<_>>());
            put_stream(&mut out, &cells.iter().map(|c| spread(c, MAX, MEAN)).collect::<Vec<_>>());
        } else {
            for i in 0..fields_of(metric) {
                put_stream(&mut out, &field(i).collect::<Vec<_>>());
            }
        }
        at += fields_of(metric);
    }
    out
}

/// The subjects of `group` in a block, each with its slots.
pub fn decode_group(bytes: &[u8], group: Group) -> Result<Vec<(i64, Slots)>, Corrupt> {
    let mut r = Reader::new(bytes);
    if r.byte()? != FORMAT {
        return Err(Corrupt(0));
    }
    for g in Group::ALL {
        let len = r.len()?;
        if g != group {
            r.skip(len)?;
            continue;
        }
        let mut section = r.take(len)?;
        let count = section.varint()?;
        let mut out = Vec::new();
        for _ in 0..count {
            let subject = section.varint()? as i64;
            let len = section.len()?;
            out.push((subject, decode_subject(group, &mut section.take(len)?)?));
        }
        return Ok(out);
    }
    Ok(Vec::new())
}

/// Every group of a block.
pub fn decode(bytes: &[u8]) -> Result<Block, Corrupt> {
    let mut block = Block::new();
    for group in Group::ALL {
        for (subject, slots) in decode_group(bytes, group)? {
            block.insert((group, subject), slots);
        }
    }
    Ok(block)
}

fn decode_subject(group: Group, r: &mut Reader) -> Result<Slots, Corrupt> {
    let ns = read_stream(r, BLOCK_HOURS as usize)?;
    let present = ns.iter().flatten().count();
    let mut cells: Vec<Cell> = ns.iter().flatten().map(|n| Cell { n: *n, fields: Vec::new() }).collect();
    for metric in group.metrics() {
        if metric.agg == Agg::Gauge {
            let (missing, mean) = (read_stream(r, present)?, read_stream(r, present)?);
            let (below, above) = (read_stream(r, present)?, read_stream(r, present)?);
            for (i, c) in cells.iter_mut().enumerate() {
                let count = c.n - missing[i].unwrap_or(0);
                let min = mean[i].zip(below[i]).map(|(m, b)| m - b);
                let max = mean[i].zip(above[i]).map(|(m, a)| m + a);
                c.fields.extend([Some(count), min, mean[i], max]);
            }
        } else {
            for _ in 0..fields_of(metric) {
                let values = read_stream(r, present)?;
                for (c, v) in cells.iter_mut().zip(values) {
                    c.fields.push(v);
                }
            }
        }
    }
    let mut cells = cells.into_iter();
    Ok(ns.iter().map(|n| n.and_then(|_| cells.next())).collect())
}
