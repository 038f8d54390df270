//! The byte encoding of packed hour blocks: unsigned LEB128 varints, zigzag for signed
//! values, and streams of optional integers stored as deltas from the previous present
//! value, with runs of unchanged values collapsed into one token. Series of hourly
//! aggregates mostly move little from one hour to the next, and many never move (a
//! guest's memory limit, a pool's error count): such a stream costs a byte or two.

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends `v` zigzag-encoded (small magnitudes of either sign stay small).
pub fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Why a packed block could not be read: a truncated or corrupt blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed rollup block is corrupt at byte {0}")]
pub struct Corrupt(pub usize);

/// Reads what [`put_varint`] and friends wrote.
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, at: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub fn varint(&mut self) -> Result<u64, Corrupt> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Corrupt(self.at))
    }

    pub fn byte(&mut self) -> Result<u8, Corrupt> {
        let byte = *self.bytes.get(self.at).ok_or(Corrupt(self.at))?;
        self.at += 1;
        Ok(byte)
    }

    pub fn signed(&mut self) -> Result<i64, Corrupt> {
        self.varint().map(unzigzag)
    }

    /// A length, checked against what is left.
    pub fn len(&mut self) -> Result<usize, Corrupt> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at.min(self.bytes.len()))
            .ok_or(Corrupt(self.at))
    }

    /// The next `n` bytes, as a reader of their own.
    pub fn take(&mut self, n: usize) -> Result<Reader<'a>, Corrupt> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len()).ok_or(Corrupt(self.at))?;
        let inner = Reader { bytes: &self.bytes[..end], at: self.at };
        self.at = end;
        Ok(inner)
    }

    /// Skips `n` bytes (a section or a subject not asked for).
    pub fn skip(&mut self, n: usize) -> Result<(), Corrupt> {
        self.take(n).map(|_| ())
    }
}

/// Values of a stream saturate at plus or minus this, so that a difference and its
/// token fit 64 bits.
pub const LIMIT: i64 = (1 << 61) - 1;

/// How a stream says which of its slots hold a value.
const ALL_ABSENT: u64 = 0;
const ALL_PRESENT: u64 = 1;
const MASKED: u64 = 2;

/// Appends a stream of optional values: which are present, then each present value as
/// the difference from the one before (the first from zero). A token is either one
/// difference (`zigzag(d) << 1`) or a run of `r` zero differences (`r << 1 | 1`).
pub fn put_stream(out: &mut Vec<u8>, values: &[Option<i64>]) {
    let present = values.iter().filter(|v| v.is_some()).count();
    if present == 0 {
        put_varint(out, ALL_ABSENT);
        return;
    }
    if present == values.len() {
        put_varint(out, ALL_PRESENT);
    } else {
        put_varint(out, MASKED);
        for chunk in values.chunks(8) {
            out.push(chunk.iter().enumerate().fold(0u8, |m, (i, v)| m | (u8::from(v.is_some()) << i)));
        }
    }
    let mut previous = 0i64;
    let mut run = 0u64;
    for v in values.iter().flatten().map(|v| (*v).clamp(-LIMIT, LIMIT)) {
        let delta = v.wrapping_sub(previous);
        previous = v;
        if delta == 0 {
            run += 1;
            continue;
        }
        if run > 0 {
            put_varint(out, run << 1 | 1);
            run = 0;
        }
        put_varint(out, zigzag(delta) << 1);
    }
    if run > 0 {
        put_varint(out, run << 1 | 1);
    }
}

/// Reads a stream of `slots` values written by [`put_stream`].
pub fn read_stream(r: &mut Reader, slots: usize) -> Result<Vec<Option<i64>>, Corrupt> {
    let mut present = vec![false; slots];
    match r.varint()? {
        ALL_ABSENT => return Ok(vec![None; slots]),
        ALL_PRESENT => present.fill(true),
        MASKED => {
            for chunk in present.chunks_mut(8) {
                let mask = r.byte()?;
                for (i, p) in chunk.iter_mut().enumerate() {
                    *p = mask & (1 << i) != 0;
                }
            }
        }
        _ => return Err(Corrupt(r.at)),
    }
    let mut out = vec![None; slots];
    let (mut previous, mut run) = (0i64, 0u64);
    for (slot, p) in out.iter_mut().zip(present) {
        if !p {
            continue;
        }
        if run == 0 {
            let token = r.varint()?;
            if token & 1 == 1 {
                run = token >> 1;
                if run == 0 {
                    return Err(Corrupt(r.at));
                }
            } else {
                previous = previous.wrapping_add(unzigzag(token >> 1));
                *slot = Some(previous);
                continue;
            }
        }
        run -= 1;
        *slot = Some(previous);
    }
    if run > 0 {
        return Err(Corrupt(r.at));
    }
    Ok(out)
}
