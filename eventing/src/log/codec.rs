//! The on-disk form of one record, checksummed so that a torn write at the end of a
//! segment (a crash mid-append) is detected and cut off on open.
//!
//! ```text
//! u32 length of what follows the crc | u32 crc32 of it |
//! i64 offset | i64 timestamp (ms) | key: i32 length (-1 = none) + bytes |
//! u32 header count, then each: u16 name length + name, u32 value length + value |
//! u32 value length + value
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::Record;

/// A record as stored: its offset and when it was appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) offset: i64,
    pub(crate) timestamp_ms: i64,
    pub(crate) record: Record,
}

pub(crate) fn encode(out: &mut BytesMut, offset: i64, timestamp_ms: i64, record: &Record) {
    let mut body = BytesMut::with_capacity(64 + record.value.len());
    body.put_i64(offset);
    body.put_i64(timestamp_ms);
    match &record.key {
        Some(k) => {
            body.put_i32(k.len() as i32);
            body.put_slice(k);
        }
        None => body.put_i32(-1),
    }
    body.put_u32(record.headers.len() as u32);
    for (name, value) in &record.headers {
        body.put_u16(name.len() as u16);
        body.put_slice(name.as_bytes());
        body.put_u32(value.len() as u32);
        body.put_slice(value);
    }
    body.put_u32(record.value.len() as u32);
    body.put_slice(&record.value);
    out.put_u32(body.len() as u32);
    out.put_u32(crc32fast::hash(&body));
    out.put_slice(&body);
}

/// What decoding found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole record, and how many bytes it took.
    Record(Stored, usize),
    /// Not enough bytes yet (or a torn write at the end of the file).
    Incomplete,
    /// The bytes are not a record: a checksum or framing mismatch.
    Corrupt,
}

pub(crate) fn decode(buf: &[u8]) -> Decoded {
    if buf.len() < 8 {
        return Decoded::Incomplete;
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if buf.len() < 8 + len {
        return Decoded::Incomplete;
    }
    let body = &buf[8..8 + len];
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt;
    }
    match parse_body(body) {
        Some(stored) => Decoded::Record(stored, 8 + len),
        None => Decoded::Corrupt,
    }
}

fn parse_body(mut b: &[u8]) -> Option<Stored> {
    fn take(b: &mut &[u8], n: usize) -> Option<Bytes> {
        if b.remaining() < n {
            return None;
        }
        let out = Bytes::copy_from_slice(&b[..n]);
        b.advance(n);
        Some(out)
    }
    if b.remaining() < 20 {
        return None;
    }
    let offset = b.get_i64();
    let timestamp_ms = b.get_i64();
    let key_len = b.get_i32();
    let key = if key_len < 0 {
        None
    } else {
        Some(take(&mut b, key_len as usize)?)
    };
    if b.remaining() < 4 {
        return None;
    }
    let count = b.get_u32() as usize;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        if b.remaining() < 2 {
            return None;
        }
        let n = b.get_u16() as usize;
        let name = String::from_utf8(take(&mut b, n)?.to_vec()).ok()?;
        if b.remaining() < 4 {
            return None;
        }
        let v = b.get_u32() as usize;
        headers.push((name, take(&mut b, v)?));
    }
    if b.remaining() < 4 {
        return None;
    }
    let v = b.get_u32() as usize;
    let value = take(&mut b, v)?;
    Some(Stored {
        offset,
        timestamp_ms,
        record: Record {
            key,
            headers,
            value,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            key: Some(Bytes::from_static(b"k1")),
            headers: vec![("ce_type".into(), Bytes::from_static(b"dev.example"))],
            value: Bytes::from_static(b"{\"n\":1}"),
        }
    }

    #[test]
    fn round_trip() {
        let mut buf = BytesMut::new();
        encode(&mut buf, 7, 1000, &record());
        let Decoded::Record(stored, used) = decode(&buf) else {
            panic!("not decoded")
        };
        assert_eq!(used, buf.len());
        assert_eq!(stored.offset, 7);
        assert_eq!(stored.record, record());
        let keyless = Record {
            key: None,
            ..record()
        };
        let mut buf = BytesMut::new();
        encode(&mut buf, 8, 1, &keyless);
        assert!(matches!(decode(&buf), Decoded::Record(s, _) if s.record.key.is_none()));
    }

    #[test]
    fn torn_and_corrupt_records_are_told_apart() {
        let mut buf = BytesMut::new();
        encode(&mut buf, 1, 1, &record());
        assert_eq!(decode(&buf[..buf.len() - 1]), Decoded::Incomplete);
        let mut bad = buf.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        assert_eq!(decode(&bad), Decoded::Corrupt);
    }
}
