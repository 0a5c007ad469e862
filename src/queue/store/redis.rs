//! The Redis queue store: Redis Streams with one consumer group, so several
//! replicas share one queue (the keys are described in `scripts`).
//!
//! Order per route holds across replicas: a replica delivers a route only
//! while it holds the route's lease (`SET NX PX`, renewed on every pass of
//! the delivery loop, released at shutdown), and the lease holder's head is
//! always the group's oldest pending entry. A replica killed mid-delivery
//! stops renewing; after the lease another takes the route and claims the
//! entry it left pending (`XAUTOCLAIM`). Delivery state lives in Redis too,
//! so `max_attempts` counts every replica's attempts.
//!
//! A record is stored (and answered 202) once Redis acknowledged the script
//! that appended it; from then on its durability is Redis's (AOF with
//! `appendfsync always` or `everysec`, replicas). Every call is bounded by
//! `queue.redis_timeout`; a failure is a `StoreError`, which the request path
//! answers with 503 `queue_unavailable`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::time::SystemTime;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisError, Script, Value};

use super::{Heads, SetAside, StoreError, Stored, Table};
use crate::config::QueueRedis;
use crate::queue::record::{millis, Record};
use crate::redis_link::Link;

mod scripts;

pub struct RedisQueue {
    link: Link,
    prefix: String,
    /// This replica's consumer name in the group: host, pid and start time.
    consumer: String,
    max_bytes: u64,
    lease_ms: u64,
    /// Routes whose lease this replica took, to give back at shutdown.
    held: Mutex<HashSet<String>>,
    push: Script,
    head: Script,
    retry: Script,
    dead: Script,
    remove: Script,
    redrive: Script,
    release: Script,
    renew: Script,
}

/// A stream entry as `XRANGE` returns it: its id and its field/value pairs.
type Entry = (String, Vec<Vec<u8>>);

impl RedisQueue {
    /// Prepares the connection without connecting. Inside a tokio runtime.
    pub fn new(opts: &QueueRedis, max_bytes: u64) -> Result<RedisQueue, StoreError> {
        // config keeps the URL UTF-8 (it was parsed as a Redis URL).
        let url = std::str::from_utf8(opts.url.expose())
            .map_err(|_| StoreError::Redis("queue.redis_url is not UTF-8".into()))?;
        let link = Link::new(url, opts.ca_file.as_deref(), opts.timeout, "queue")
            .map_err(StoreError::Redis)?;
        Ok(RedisQueue {
            link,
            prefix: opts.prefix.clone(),
            consumer: consumer_name(),
            max_bytes,
            lease_ms: u64::try_from(opts.lease.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            held: Mutex::new(HashSet::new()),
            push: Script::new(scripts::PUSH),
            head: Script::new(scripts::HEAD),
            retry: Script::new(scripts::RETRY),
            dead: Script::new(scripts::DEAD),
            remove: Script::new(scripts::REMOVE),
            redrive: Script::new(scripts::REDRIVE),
            release: Script::new(scripts::RELEASE),
            renew: Script::new(scripts::RENEW),
        })
    }

    pub fn keys(&self) -> String {
        format!("{}:q*, {}:dead:*", self.prefix, self.prefix)
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    fn key(&self, kind: &str, route: &str) -> String {
        format!("{}:{kind}:{route}", self.prefix)
    }

    fn meta(&self, name: &str) -> String {
        format!("{}:qmeta:{name}", self.prefix)
    }

    fn stream(&self, table: Table, route: &str) -> String {
        match table {
            Table::Pending => self.key("q", route),
            Table::Dead => self.key("dead", route),
        }
    }

    /// One Redis exchange (see `Link::call`); `again` only for what is safe
    /// to send twice: every script but `PUSH` checks what is there first, so
    /// a second run changes nothing twice.
    async fn run<T, F, Fut>(&self, what: &str, again: bool, attempt: F) -> Result<T, StoreError>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.link
            .call(what, again, attempt)
            .await
            .map_err(StoreError::Redis)
    }

    /// For `/readyz`: Redis answers a PING.
    pub async fn ready(&self) -> bool {
        self.query::<String>("ping", &redis::cmd("PING"))
            .await
            .is_ok()
    }

    async fn eval<T: FromRedisValue>(
        &self,
        what: &str,
        again: bool,
        script: &Script,
        keys: &[String],
        args: &[&[u8]],
    ) -> Result<T, StoreError> {
        self.run(what, again, |mut conn| {
            let mut invocation = script.prepare_invoke();
            for k in keys {
                invocation.key(k);
            }
            for a in args {
                invocation.arg(*a);
            }
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await
    }

    async fn query<T: FromRedisValue>(
        &self,
        what: &str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        self.run(what, true, |mut conn| async move {
            cmd.query_async(&mut conn).await
        })
        .await
    }

    /// The routes ever stored, sorted (each has its stream, maybe empty).
    async fn routes(&self) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.meta("routes"));
        let mut routes: Vec<String> = self.query("routes", &cmd).await?;
        routes.sort();
        Ok(routes)
    }

    pub async fn push(&self, record: &Record) -> Result<Option<u64>, StoreError> {
        let keys = [
            self.key("q", &record.route),
            self.meta("bytes"),
            self.meta("seq"),
            self.meta("routes"),
        ];
        let value = record.encode();
        let max = self.max_bytes.to_string();
        // Not sent again: a first send that reached Redis would store it twice.
        let id: u64 = self
            .eval(
                "push",
                false,
                &self.push,
                &keys,
                &[&value, max.as_bytes(), record.route.as_bytes()],
            )
            .await?;
        Ok((id != 0).then_some(id))
    }

    /// The head of each route whose lease this replica holds or takes now.
    pub async fn heads(&self) -> Result<Heads, StoreError> {
        let mut heads = Heads::default();
        let lease = self.lease_ms.to_string();
        for route in self.routes().await? {
            let keys = [
                self.key("qlease", &route),
                self.key("q", &route),
                self.key("qstate", &route),
            ];
            let found: Vec<Value> = self
                .eval(
                    "head",
                    true,
                    &self.head,
                    &keys,
                    &[self.consumer.as_bytes(), lease.as_bytes()],
                )
                .await?;
            let holds = !matches!(found.first(), Some(Value::Int(0)));
            self.note_lease(&route, holds);
            let Some((head, claimed)) = head(&route, found) else {
                continue;
            };
            if claimed {
                tracing::info!(
                    route,
                    id = head.id,
                    attempts = head.record.attempts,
                    "queue: took over a delivery another replica left pending"
                );
            }
            match head.undecodable {
                None => heads.due.push(head),
                Some(bytes) => {
                    let why = head.record.last_error.clone();
                    let stream_id = stream_id(head.id);
                    let moved = self.move_dead(&route, &stream_id, b"", true).await?;
                    if moved {
                        heads.set_aside.push(SetAside {
                            route: route.clone(),
                            id: head.id,
                            bytes,
                            why,
                        });
                    }
                }
            }
        }
        Ok(heads)
    }

    fn note_lease(&self, route: &str, holds: bool) {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if holds {
            if !held.contains(route) {
                held.insert(route.to_string());
            }
        } else {
            held.remove(route);
        }
    }

    /// Pending records per route: the shared queue's, the same on every replica.
    pub async fn depths(&self) -> Result<HashMap<String, u64>, StoreError> {
        let routes = self.routes().await?;
        if routes.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for route in &routes {
            pipe.cmd("XLEN").arg(self.key("q", route));
        }
        let lens: Vec<u64> = self
            .run("depths", true, |mut conn| {
                let pipe = &pipe;
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        Ok(routes.into_iter().zip(lens).collect())
    }

    pub async fn list(&self, table: Table, route: Option<&str>) -> Result<Vec<Stored>, StoreError> {
        let routes = match route {
            Some(r) => vec![r.to_string()],
            None => self.routes().await?,
        };
        let mut out = Vec::new();
        for route in routes {
            out.extend(self.range(table, &route, "-", "+").await?);
        }
        Ok(out)
    }

    /// The entries of one stream between two ids, with their delivery state.
    async fn range(
        &self,
        table: Table,
        route: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(self.stream(table, route)).arg(from).arg(to);
        let entries: Vec<Entry> = self.query("list", &cmd).await?;
        let states: HashMap<String, String> = match table {
            Table::Pending if !entries.is_empty() => {
                let mut cmd = redis::cmd("HGETALL");
                cmd.arg(self.key("qstate", route));
                self.query("list", &cmd).await?
            }
            Table::Pending | Table::Dead => HashMap::new(),
        };
        Ok(entries
            .into_iter()
            .map(|(id, fields)| {
                let state = states.get(&id).map(String::as_bytes);
                stored(table, route, &id, &value(&fields), state)
            })
            .collect())
    }

    pub async fn find(&self, id: u64) -> Result<Option<Stored>, StoreError> {
        let sid = stream_id(id);
        for route in self.routes().await? {
            for table in [Table::Pending, Table::Dead] {
                if let Some(s) = self.range(table, &route, &sid, &sid).await?.pop() {
                    return Ok(Some(s));
                }
            }
        }
        Ok(None)
    }

    pub async fn retry_later(&self, s: &Stored) -> Result<(), StoreError> {
        let route = &s.record.route;
        let keys = [self.key("q", route), self.key("qstate", route)];
        let state = encode_state(&s.record);
        let _: i64 = self
            .eval(
                "retry",
                true,
                &self.retry,
                &keys,
                &[stream_id(s.id).as_bytes(), state.as_bytes()],
            )
            .await?;
        Ok(())
    }

    pub async fn dead_letter(&self, s: &Stored) -> Result<(), StoreError> {
        self.move_dead(&s.record.route, &stream_id(s.id), &s.record.encode(), false)
            .await
            .map(|_| ())
    }

    async fn move_dead(
        &self,
        route: &str,
        id: &str,
        value: &[u8],
        raw: bool,
    ) -> Result<bool, StoreError> {
        let keys = [
            self.key("q", route),
            self.key("dead", route),
            self.key("qstate", route),
            self.meta("bytes"),
            self.meta("seq"),
        ];
        let mode: &[u8] = if raw { b"raw" } else { b"record" };
        let moved: i64 = self
            .eval(
                "dead letter",
                true,
                &self.dead,
                &keys,
                &[id.as_bytes(), value, mode],
            )
            .await?;
        Ok(moved == 1)
    }

    pub async fn redrive(&self, s: &Stored, record: &Record) -> Result<bool, StoreError> {
        let route = &s.record.route;
        let keys = [
            self.key("dead", route),
            self.key("q", route),
            self.meta("bytes"),
            self.meta("seq"),
            self.meta("routes"),
        ];
        let id: u64 = self
            .eval(
                "redrive",
                true,
                &self.redrive,
                &keys,
                &[
                    stream_id(s.id).as_bytes(),
                    &record.encode(),
                    route.as_bytes(),
                ],
            )
            .await?;
        Ok(id != 0)
    }

    pub async fn remove(&self, s: &Stored) -> Result<bool, StoreError> {
        let route = &s.record.route;
        let keys = [
            self.stream(s.table, route),
            self.key("qstate", route),
            self.meta("bytes"),
        ];
        let which: &[u8] = match s.table {
            Table::Pending => b"pending",
            Table::Dead => b"dead",
        };
        let removed: i64 = self
            .eval(
                "remove",
                true,
                &self.remove,
                &keys,
                &[stream_id(s.id).as_bytes(), which],
            )
            .await?;
        Ok(removed == 1)
    }

    /// Extends every lease this replica holds (while its deliveries drain).
    pub async fn renew(&self) {
        let held: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let lease = self.lease_ms.to_string();
        for route in held {
            let keys = [self.key("qlease", &route)];
            let args: [&[u8]; 2] = [self.consumer.as_bytes(), lease.as_bytes()];
            if let Err(e) = self
                .eval::<i64>("renew", true, &self.renew, &keys, &args)
                .await
            {
                tracing::warn!(route, error = %e, "queue store: could not renew a route's lease");
            }
        }
    }

    /// Gives back every lease this replica holds, so another replica takes
    /// its routes at once rather than after the lease lapses.
    pub async fn release(&self) {
        let held: Vec<String> = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .collect();
        for route in held {
            let keys = [self.key("qlease", &route)];
            let released: Result<i64, _> = self
                .eval(
                    "release",
                    true,
                    &self.release,
                    &keys,
                    &[self.consumer.as_bytes()],
                )
                .await;
            if let Err(e) = released {
                tracing::warn!(route, error = %e, "queue store: could not release a route's lease; it lapses by itself");
            }
        }
    }
}

/// The `HEAD` script's answer as a stored record, when it found one, and
/// whether it was just claimed from another consumer.
fn head(route: &str, found: Vec<Value>) -> Option<(Stored, bool)> {
    let mut it = found.into_iter();
    let claimed = match it.next() {
        Some(Value::Int(3)) => false,
        Some(Value::Int(4)) => true,
        _ => return None,
    };
    let id = text(it.next()?)?;
    let value = bytes(it.next()?)?;
    let state = it.next().and_then(bytes);
    Some((
        stored(Table::Pending, route, &id, &value, state.as_deref()),
        claimed,
    ))
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    Option::<Vec<u8>>::from_redis_value(v).ok().flatten()
}

fn text(v: Value) -> Option<String> {
    bytes(v).and_then(|b| String::from_utf8(b).ok())
}

/// The `r` field's value of an entry (empty if it has none).
fn value(fields: &[Vec<u8>]) -> Vec<u8> {
    fields
        .chunks(2)
        .find(|kv| kv.first().is_some_and(|k| k == b"r"))
        .and_then(|kv| kv.get(1).cloned())
        .unwrap_or_default()
}

/// An entry as a `Stored`, its delivery state applied.
fn stored(table: Table, route: &str, id: &str, value: &[u8], state: Option<&[u8]>) -> Stored {
    let mut s = Stored::decode(seq(id), table, route, value);
    if let (None, Some(state)) = (s.undecodable, state) {
        apply_state(&mut s.record, state);
    }
    s
}

/// `0-{n}` -> n: the sequence part of the ids hookgate gives its entries.
fn seq(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn stream_id(id: u64) -> String {
    format!("0-{id}")
}

/// `attempts next_attempt last_error`.
fn encode_state(r: &Record) -> String {
    format!("{} {} {}", r.attempts, r.next_attempt, r.last_error)
}

fn apply_state(r: &mut Record, state: &[u8]) {
    let text = String::from_utf8_lossy(state);
    let mut parts = text.splitn(3, ' ');
    let attempts = parts.next().and_then(|a| a.parse().ok());
    let next = parts.next().and_then(|n| n.parse().ok());
    if let (Some(attempts), Some(next)) = (attempts, next) {
        r.attempts = attempts;
        r.next_attempt = next;
        r.last_error = parts.next().unwrap_or_default().to_string();
    }
}

/// Unique across replicas and restarts: the host (the pod name in
/// Kubernetes), the process id and the start time.
fn consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "hookgate".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        millis(SystemTime::now())
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn delivery_state_round_trips_and_ids_map_both_ways() {
        let mut r = Stored::decode(1, Table::Pending, "a", b"").record;
        r.attempts = 4;
        r.next_attempt = 1_700_000_000_000;
        r.last_error = "status 503 with spaces".into();
        let mut back = r.clone();
        back.attempts = 0;
        apply_state(&mut back, encode_state(&r).as_bytes());
        assert_eq!(back, r);
        assert_eq!(seq(&stream_id(42)), 42);
        assert_eq!(
            value(&[b"x".to_vec(), b"1".to_vec(), b"r".to_vec(), b"v".to_vec()]),
            b"v"
        );
    }
}
