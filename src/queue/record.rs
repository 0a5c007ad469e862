//! One stored request and its delivery state, and its bytes inside a store value.
//!
//! redb owns the file, its pages and its durability; a record is one value in
//! a table. Its encoding is a version byte and length-prefixed fields, so that
//! the exact bytes received (header values that are not UTF-8, a binary body)
//! round-trip unchanged and a body is not inflated as JSON arrays would be.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The encoding's version: a store written by a later layout is refused, not misread.
const VERSION: u8 = 1;

/// A verified request, exactly as it will be forwarded, and where its delivery stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub route: String,
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// End-to-end headers in the order received; repeated names kept.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The id the replay store deduplicated on (and `Hookgate-Attestation` carries).
    pub replay_id: [u8; 32],
    /// The provider's address and whether it came over TLS, for `X-Forwarded-*`.
    pub peer: IpAddr,
    pub tls: bool,
    /// Milliseconds since the Unix epoch.
    pub accepted_at: u64,
    pub attempts: u32,
    /// Milliseconds since the Unix epoch.
    pub next_attempt: u64,
    pub last_error: String,
}

/// A stored value that is not a record this version can read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stored record is unreadable ({0})")]
pub struct Corrupt(&'static str);

/// Milliseconds since the Unix epoch (0 before it).
pub(super) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The instant `ms` milliseconds after the Unix epoch.
pub(super) fn instant(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len() + self.uri.len());
        out.push(VERSION);
        out.extend_from_slice(&self.accepted_at.to_be_bytes());
        out.extend_from_slice(&self.attempts.to_be_bytes());
        out.extend_from_slice(&self.next_attempt.to_be_bytes());
        out.extend_from_slice(&self.replay_id);
        out.push(u8::from(self.tls));
        field(&mut out, self.peer.to_string().as_bytes());
        field(&mut out, self.route.as_bytes());
        field(&mut out, self.method.as_bytes());
        field(&mut out, self.uri.as_bytes());
        field(&mut out, self.last_error.as_bytes());
        let count = u32::try_from(self.headers.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (name, value) in self.headers.iter().take(count as usize) {
            field(&mut out, name);
            field(&mut out, value);
        }
        field(&mut out, &self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, Corrupt> {
        let mut r = Reader(bytes);
        if r.take(1)? != [VERSION] {
            return Err(Corrupt("unknown version"));
        }
        let accepted_at = r.u64()?;
        let attempts = r.u32()?;
        let next_attempt = r.u64()?;
        let mut replay_id = [0u8; 32];
        replay_id.copy_from_slice(r.take(32)?);
        let tls = r.take(1)? != [0];
        let peer = r
            .text()?
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let route = r.text()?;
        let method = r.text()?;
        let uri = r.text()?;
        let last_error = r.text()?;
        let count = r.u32()?;
        let mut headers = Vec::new();
        for _ in 0..count {
            let name = r.field()?.to_vec();
            headers.push((name, r.field()?.to_vec()));
        }
        let body = r.field()?.to_vec();
        if !r.0.is_empty() {
            return Err(Corrupt("trailing bytes"));
        }
        Ok(Record {
            route,
            method,
            uri,
            headers,
            body,
            replay_id,
            peer,
            tls,
            accepted_at,
            attempts,
            next_attempt,
            last_error,
        })
    }
}

/// A length (u32, big-endian) and the bytes. Every field is bounded far below
/// 4 GiB (`max_body`, header limits), so the length always fits.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Corrupt> {
        if self.0.len() < n {
            return Err(Corrupt("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Corrupt> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, Corrupt> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn field(&mut self) -> Result<&'a [u8], Corrupt> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Result<String, Corrupt> {
        String::from_utf8(self.field()?.to_vec()).map_err(|_| Corrupt("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_record_round_trips_exactly_and_a_damaged_one_is_refused() {
        let r = Record {
            route: "levers".into(),
            method: "POST".into(),
            uri: "/webhooks/levers?a=1&a=2".into(),
            headers: vec![
                (b"x-a".to_vec(), b"1".to_vec()),
                (b"x-a".to_vec(), vec![0x80, b'z']),
                (b"content-type".to_vec(), b"application/json".to_vec()),
            ],
            body: vec![0, 1, 2, 255, b'{'],
            replay_id: [7; 32],
            peer: "2001:db8::1".parse().unwrap(),
            tls: true,
            accepted_at: 1_700_000_000_123,
            attempts: 3,
            next_attempt: 1_700_000_100_000,
            last_error: "status 503".into(),
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut later = bytes.clone();
        later[0] = 2;
        assert!(Record::decode(&later).is_err());
    }
}
