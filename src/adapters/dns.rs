//! DNS through hickory-resolver: a domain's MX records, and without any its A/AAAA records,
//! asked of the system's resolver (in Lambda, the VPC's) or of `SESGUARD_DNS`. One attempt per
//! question within the configured timeout; no cache of its own (prevention keeps answers per
//! instance and in the store, by their TTL).

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::config::DnsServer;
use crate::domain::sending::prevention::MailDomain;
use crate::ports::{DomainResolver, ResolveError, Resolved};

/// How long a negative answer holds when the zone sends no SOA to say.
const NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// Asks a DNS server through hickory-resolver.
pub struct HickoryResolver {
    resolver: TokioResolver,
}

impl HickoryResolver {
    /// A resolver asking `server` (the system's configuration, or one address), giving up on a
    /// question after `timeout`. `None` for [`DnsServer::Off`].
    pub fn new(server: &DnsServer, timeout: Duration) -> anyhow::Result<Option<Self>> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            DnsServer::Off => return Ok(None),
            DnsServer::System => TokioResolver::builder(provider)?,
            DnsServer::At(address) => {
                TokioResolver::builder_with_config(one_server(*address), provider)
            }
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = timeout;
        options.attempts = 1;
        options.cache_size = 0;
        Ok(Some(Self {
            resolver: builder.build()?,
        }))
    }

    /// Whether a lookup's failure is an answer (no records: NXDOMAIN or none of this type).
    fn negative(error: &NetError) -> Option<(bool, Duration)> {
        use hickory_resolver::net::{DnsError, NoRecords};
        match error {
            NetError::Dns(DnsError::NoRecordsFound(NoRecords { negative_ttl, .. })) => Some((
                error.is_nx_domain(),
                negative_ttl.map_or(NEGATIVE_TTL, |s| Duration::from_secs(u64::from(s))),
            )),
            _ => None,
        }
    }
}

fn one_server(address: SocketAddr) -> ResolverConfig {
    let port = |mut connection: ConnectionConfig| {
        connection.port = address.port();
        connection
    };
    let server = NameServerConfig::new(
        address.ip(),
        true,
        vec![port(ConnectionConfig::udp()), port(ConnectionConfig::tcp())],
    );
    ResolverConfig::from_name_servers(vec![server])
}

#[async_trait]
impl DomainResolver for HickoryResolver {
    async fn resolve(&self, domain: &str) -> Result<Resolved, ResolveError> {
        let failed = |error: NetError| ResolveError {
            domain: domain.to_owned(),
            detail: error.to_string(),
        };
        // Fully qualified: no search domains are tried.
        let name = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(name.as_str()).await {
            Ok(lookup) => {
                let mx: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx, r.ttl)),
                        _ => None,
                    })
                    .collect();
                let ttl = mx.iter().map(|(_, ttl)| *ttl).min().unwrap_or(0);
                let ttl = Duration::from_secs(u64::from(ttl));
                // RFC 7505: a single MX of preference 0 at the root says "no mail here".
                let null = mx.len() == 1 && mx[0].0.exchange.is_root();
                if null {
                    return Ok(Resolved {
                        answer: MailDomain::NoMailDomain,
                        ttl,
                    });
                }
                if !mx.is_empty() {
                    return Ok(Resolved {
                        answer: MailDomain::Receives,
                        ttl,
                    });
                }
            }
            Err(error) => match Self::negative(&error) {
                Some((true, ttl)) => {
                    return Ok(Resolved {
                        answer: MailDomain::NoSuchDomain,
                        ttl,
                    });
                }
                Some((false, _)) => {}
                None => return Err(failed(error)),
            },
        }
        // No MX: RFC 5321 §5.1 delivers to the domain's own address, if it has one.
        match self.resolver.lookup_ip(name.as_str()).await {
            Ok(lookup) => Ok(Resolved {
                answer: MailDomain::Receives,
                ttl: Duration::from_secs(
                    lookup
                        .as_lookup()
                        .answers()
                        .iter()
                        .map(|r| u64::from(r.ttl))
                        .min()
                        .unwrap_or(0),
                ),
            }),
            Err(error) => match Self::negative(&error) {
                Some((nx, ttl)) => Ok(Resolved {
                    answer: if nx {
                        MailDomain::NoSuchDomain
                    } else {
                        MailDomain::NoMailDomain
                    },
                    ttl,
                }),
                None => Err(failed(error)),
            },
        }
    }
}

/// DNS turned off (`SESGUARD_DNS=off`): every answer is unknown, so only the checks that need
/// no DNS apply.
pub struct NoDns;

#[async_trait]
impl DomainResolver for NoDns {
    async fn resolve(&self, domain: &str) -> Result<Resolved, ResolveError> {
        Err(ResolveError {
            domain: domain.to_owned(),
            detail: "DNS is off (SESGUARD_DNS=off)".into(),
        })
    }
}
