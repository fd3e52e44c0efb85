//! A DNS server of known records for local runs: tests, `make demo` and the rehearsal point
//! `SESGUARD_DNS` at it, so that prevention's lookups never leave the machine. It answers
//! over UDP from a zone file of one line per domain:
//!
//! ```text
//! # domain          kind     value          ttl
//! shop.example      MX       mx.shop.example 300
//! web-only.example  A        192.0.2.10
//! parked.example    NULLMX
//! slow.example      TIMEOUT               # never answered
//! broken.example    SERVFAIL
//! ```
//!
//! Any other domain is NXDOMAIN; a listed domain asked for a type it lacks gets an empty
//! answer. Both negative answers carry an SOA whose minimum (`negative_ttl 60` line, default
//! 300) is their TTL, as RFC 2308 has it. Counts the questions it gets, for request budgets.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the zone holds for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// Records, each with its TTL.
    Records(Vec<(RData, u32)>),
    /// Never answered.
    Timeout,
    /// Answered with SERVFAIL.
    ServFail,
}

/// A zone: domains and what they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Zone {
    entries: HashMap<String, Entry>,
    negative_ttl: u32,
}

impl Zone {
    /// Reads a zone file's text; the error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut zone = Zone {
            negative_ttl: 300,
            ..Zone::default()
        };
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            let fields: Vec<&str> = line.split_whitespace().collect();
            let bad = |what: &str| format!("zone line {}: {what}: `{line}`", number + 1);
            let ttl = |at: usize| -> Result<u32, String> {
                fields
                    .get(at)
                    .map_or(Ok(300), |t| t.parse().map_err(|_| bad("a TTL is a number")))
            };
            match fields.as_slice() {
                [] => continue,
                ["negative_ttl", seconds] => {
                    zone.negative_ttl = seconds.parse().map_err(|_| bad("a number"))?
                }
                [domain, kind, rest @ ..] => {
                    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                    let entry = match (kind.to_ascii_uppercase().as_str(), rest) {
                        ("MX", [host, ..]) => {
                            let host = Name::from_ascii(host).map_err(|_| bad("a host name"))?;
                            Some((RData::MX(MX::new(10, host)), ttl(3)?))
                        }
                        ("NULLMX", _) => Some((RData::MX(MX::new(0, Name::root())), ttl(2)?)),
                        ("A" | "AAAA", [ip, ..]) => {
                            let ip: IpAddr = ip.parse().map_err(|_| bad("an IP address"))?;
                            let data = match ip {
                                IpAddr::V4(v4) => RData::A(A(v4)),
                                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                            };
                            Some((data, ttl(3)?))
                        }
                        ("TIMEOUT", _) => {
                            zone.entries.insert(domain.clone(), Entry::Timeout);
                            None
                        }
                        ("SERVFAIL", _) => {
                            zone.entries.insert(domain.clone(), Entry::ServFail);
                            None
                        }
                        _ => {
                            return Err(bad(
                                "expected MX HOST, NULLMX, A IP, AAAA IP, TIMEOUT or SERVFAIL",
                            ));
                        }
                    };
                    if let Some(record) = entry {
                        match zone
                            .entries
                            .entry(domain)
                            .or_insert_with(|| Entry::Records(Vec::new()))
                        {
                            Entry::Records(records) => records.push(record),
                            _ => return Err(bad("a TIMEOUT or SERVFAIL domain has no records")),
                        }
                    }
                }
                _ => return Err(bad("expected `DOMAIN KIND [VALUE] [TTL]`")),
            }
        }
        Ok(zone)
    }

    /// The answer to one query, or `None` when it is not to be answered.
    fn answer(&self, query: &Message) -> Option<Message> {
        let question = query.queries.first()?;
        let mut response = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = query.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.add_query(question.clone());
        let name = question
            .name
            .to_ascii()
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let records = match self.entries.get(&name) {
            Some(Entry::Timeout) => return None,
            Some(Entry::ServFail) => {
                response.metadata.response_code = ResponseCode::ServFail;
                return Some(response);
            }
            Some(Entry::Records(records)) => records,
            None => {
                response.metadata.response_code = ResponseCode::NXDomain;
                response.add_authority(self.soa(&question.name));
                return Some(response);
            }
        };
        let wanted: Vec<Record> = records
            .iter()
            .filter(|(data, _)| data.record_type() == question.query_type)
            .map(|(data, ttl)| Record::from_rdata(question.name.clone(), *ttl, data.clone()))
            .collect();
        if wanted.is_empty() {
            response.add_authority(self.soa(&question.name));
        }
        response.insert_answers(wanted);
        Some(response)
    }

    fn soa(&self, name: &Name) -> Record {
        let host = |h: &str| Name::from_ascii(h).unwrap_or_else(|_| Name::root());
        let soa = SOA::new(
            host("ns.test."),
            host("hostmaster.test."),
            1,
            3600,
            600,
            86_400,
            self.negative_ttl,
        );
        Record::from_rdata(name.clone(), self.negative_ttl, RData::SOA(soa))
    }
}

/// A running zone server.
pub struct ZoneServer {
    address: SocketAddr,
    queries: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl ZoneServer {
    /// Serves `zone` on `bind` (port 0: any free port) until dropped.
    pub async fn start(zone: Zone, bind: SocketAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(bind).await?;
        let address = socket.local_addr()?;
        let queries = Arc::new(AtomicU64::new(0));
        let counted = queries.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            loop {
                let Ok((length, peer)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                let Ok(query) = Message::from_vec(&buffer[..length]) else {
                    continue;
                };
                if query.queries.first().map(|q| q.query_type) == Some(RecordType::ANY) {
                    continue;
                }
                if let Some(bytes) = zone.answer(&query).and_then(|r| r.to_vec().ok()) {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        Ok(Self {
            address,
            queries,
            task,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many questions it has been asked.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// Serves until the process ends.
    pub async fn run(self) {
        let task = &mut { self }.task;
        let _ = task.await;
    }
}

impl Drop for ZoneServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_line_that_cannot_be_read_is_named_by_its_number() {
        for (text, says) in [
            ("a.example MX", "line 1: expected MX HOST"),
            (
                "ok.example A 192.0.2.1\nb.example A nowhere",
                "line 2: an IP address",
            ),
            (
                "c.example MX mx.c.example soon",
                "line 1: a TTL is a number",
            ),
            (
                "d.example TIMEOUT\nd.example A 192.0.2.1",
                "line 2: a TIMEOUT or SERVFAIL",
            ),
            ("lonely", "line 1: expected `DOMAIN KIND"),
        ] {
            let error = Zone::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
        let zone =
            Zone::parse("# comment\n\nnegative_ttl 30\nE.example. MX mx.e.example 60 # trailing")
                .unwrap();
        assert_eq!(zone.negative_ttl, 30);
        assert!(
            zone.entries.contains_key("e.example"),
            "lower-cased, the root dot gone"
        );
    }
}
