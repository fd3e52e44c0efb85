//! DynamoDB's rules, played between the workers and the emulator (which answers in
//! microseconds and serialises every request): an HTTP proxy that adds latency from a
//! log-normal distribution, cancels a transaction or write that meets an item another
//! transaction holds, throttles a partition over its write or read units in a second, and
//! counts what it injected and the units DynamoDB would charge, misses included.
//!
//! The model, from DynamoDB's documentation: a `TransactWriteItems` holds its items for
//! `hold_ms` from its arrival; another transaction naming one of them is cancelled
//! (`TransactionCanceledException`, reason `TransactionConflict`) and a single write
//! (`PutItem`, `UpdateItem`, `DeleteItem`) fails with `TransactionConflictException`. A
//! partition (a table's partition-key value) takes at most 1,000 write units and 3,000 read
//! units a second; more is `ProvisionedThroughputExceededException`, which the SDK retries.
//! Units: a write 1 per KB of item (an update 1), a transaction's twice; a strongly consistent
//! read 1 per 4 KB per key asked for, found or not (0.5 eventually consistent); a query the
//! answer's size; a write naming the suppressions' `reason` writes the sparse index too.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Serialize;
use serde_json::{Value, json};

use crate::worker::quantile;

/// What the rules inject.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    /// Median request latency.
    pub(crate) median_ms: f64,
    /// 99th percentile.
    pub(crate) p99_ms: f64,
    /// How long a transaction holds its items.
    pub(crate) hold_ms: u64,
    /// A partition's write and read units a second.
    pub(crate) write_units: f64,
    pub(crate) read_units: f64,
}

/// What was injected and charged, for the report's `injected`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Injected {
    pub(crate) requests: u64,
    /// Latency added: median, 99th percentile and most, in ms.
    pub(crate) latency_ms: BTreeMap<String, f64>,
    pub(crate) hold_ms: u64,
    /// Transactions cancelled and single writes refused for a conflict, by operation.
    pub(crate) conflicts: BTreeMap<String, u64>,
    /// Requests throttled, by operation.
    pub(crate) throttles: BTreeMap<String, u64>,
    /// Units DynamoDB would charge for what passed: reads with misses, writes, index writes.
    pub(crate) read_units: f64,
    pub(crate) write_units: f64,
    pub(crate) index_write_units: f64,
    /// The busiest partition's units in its busiest second.
    pub(crate) busiest_partition_write_units: f64,
    pub(crate) busiest_partition_read_units: f64,
    /// The partitions that took the most write units in all: (partition, write, read).
    pub(crate) partitions: Vec<(String, f64, f64)>,
}

#[derive(Default)]
struct State {
    held: HashMap<String, Instant>,
    /// Units per partition in the current second: (second, write, read).
    partitions: HashMap<String, (u64, f64, f64)>,
    latencies_us: Vec<u64>,
    /// Units per partition in all: (write, read).
    totals: HashMap<String, (f64, f64)>,
    injected: Injected,
    seed: u64,
}

/// The proxy: its endpoint and what it counted.
pub(crate) struct Proxy {
    pub(crate) endpoint: String,
    state: Arc<Mutex<State>>,
    rules: Rules,
}

impl Proxy {
    /// What was injected so far.
    pub(crate) fn injected(&self) -> Injected {
        let mut state = self.state.lock().unwrap();
        let mut latencies: Vec<f64> = std::mem::take(&mut state.latencies_us)
            .into_iter()
            .map(|us| us as f64 / 1000.0)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| quantile(&latencies, q);
        let mut injected = std::mem::take(&mut state.injected);
        let mut partitions: Vec<(String, f64, f64)> = state
            .totals
            .drain()
            .map(|(name, (write, read))| (name, write, read))
            .collect();
        partitions.sort_by(|a, b| b.1.total_cmp(&a.1));
        partitions.truncate(5);
        injected.partitions = partitions;
        injected.latency_ms = BTreeMap::from([
            ("median".to_owned(), at(0.5)),
            ("p99".to_owned(), at(0.99)),
            ("max".to_owned(), at(1.0)),
        ]);
        injected.hold_ms = self.rules.hold_ms;
        injected
    }
}

/// Starts the proxy in front of `upstream` on a free port of 127.0.0.1.
pub(crate) async fn start(rules: Rules, upstream: String) -> anyhow::Result<Proxy> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address: SocketAddr = listener.local_addr()?;
    let state = Arc::new(Mutex::new(State {
        seed: 0x2545_f491_4f6c_dd1d,
        ..State::default()
    }));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let shared = (state.clone(), Arc::new(upstream), client);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (state, upstream, client) = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let (state, upstream, client) =
                        (state.clone(), upstream.clone(), client.clone());
                    async move {
                        Ok::<_, Infallible>(
                            handle(request, rules, &state, &upstream, &client).await,
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Proxy {
        endpoint: format!("http://{address}"),
        state,
        rules,
    })
}

/// A DynamoDB error answer.
fn refusal(kind: &str, message: &str, extra: Value) -> Response<Full<Bytes>> {
    let mut body = json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": message,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a valid response")
}

/// One request under the rules: its latency, then a conflict or a throttle, or the emulator.
async fn handle(
    request: Request<Incoming>,
    rules: Rules,
    state: &Mutex<State>,
    upstream: &str,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let (parts, body) = request.into_parts();
    let body = whole(body).await;
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or_default()
        .to_owned();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let touch = Touch::of(&operation, &parsed);
    let (delay, verdict) = {
        let mut state = state.lock().unwrap();
        let delay = state.latency(&rules);
        (delay, state.judge(&operation, &touch, &rules, arrived))
    };
    tokio::time::sleep(delay).await;
    if let Some(refused) = verdict {
        return refused;
    }
    let mut forwarded = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{}", parts.uri.path()));
    for (name, value) in &parts.headers {
        forwarded = forwarded.header(name, value);
    }
    let Ok(forwarded) = forwarded.body(Full::new(body)) else {
        return refusal("InternalServerError", "unforwardable request", Value::Null);
    };
    match client.request(forwarded).await {
        Ok(answer) => {
            let (parts, body) = answer.into_parts();
            let bytes = whole(body).await;
            if parts.status.is_success() && operation == "Query" {
                let units = (bytes.len() as f64 / 4096.0).ceil().max(1.0);
                state.lock().unwrap().injected.read_units += units;
            }
            Response::from_parts(parts, Full::new(bytes))
        }
        Err(error) => refusal("InternalServerError", &error.to_string(), Value::Null),
    }
}

/// A request's or an answer's whole body (empty when it could not be read).
async fn whole(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}

/// What a request touches: the items it writes and holds, its units per partition.
#[derive(Default)]
struct Touch {
    keys: Vec<String>,
    transaction: bool,
    writes: Vec<(String, f64)>,
    reads: Vec<(String, f64)>,
    index_writes: f64,
}

/// An item's key and its partition's, as `table|pk|sk`.
fn key_and_partition(table: &str, key: &Value) -> (String, String) {
    let text = |name: &str| {
        key.get(name)
            .and_then(|v| v.get("S").or_else(|| v.get("N")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let pk = if key.get("pk").is_some() {
        text("pk")
    } else {
        text("email")
    };
    let partition = format!("{table}|{pk}");
    (format!("{partition}|{}", text("sk")), partition)
}

impl Touch {
    fn of(operation: &str, body: &Value) -> Touch {
        let mut touch = Touch {
            transaction: operation.starts_with("Transact"),
            ..Touch::default()
        };
        let table = body["TableName"].as_str().unwrap_or_default();
        match operation {
            "PutItem" => touch.write(table, &body["Item"], &body["Item"], 1.0),
            "UpdateItem" | "DeleteItem" => touch.write(table, &body["Key"], body, 1.0),
            "TransactWriteItems" => {
                for action in body["TransactItems"].as_array().into_iter().flatten() {
                    let Some((kind, inner)) = action.as_object().and_then(|o| o.iter().next())
                    else {
                        continue;
                    };
                    let table = inner["TableName"].as_str().unwrap_or_default();
                    let key = if kind == "Put" {
                        &inner["Item"]
                    } else {
                        &inner["Key"]
                    };
                    touch.write(table, key, inner, 2.0);
                }
            }
            "BatchWriteItem" => {
                for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                    for request in requests.as_array().into_iter().flatten() {
                        if let Some(item) = request.pointer("/PutRequest/Item") {
                            touch.write(table, item, item, 1.0);
                        } else if let Some(key) = request.pointer("/DeleteRequest/Key") {
                            touch.write(table, key, key, 1.0);
                        }
                    }
                }
                // Not held against transactions here: a batch's writes are not conditional.
                touch.keys.clear();
            }
            "GetItem" => touch.read(table, &body["Key"], body["ConsistentRead"].as_bool()),
            "BatchGetItem" => {
                for (table, asked) in body["RequestItems"].as_object().into_iter().flatten() {
                    let consistent = asked["ConsistentRead"].as_bool();
                    for key in asked["Keys"].as_array().into_iter().flatten() {
                        touch.read(table, key, consistent);
                    }
                }
            }
            // A query's units come from its answer's size (counted when it returns).
            _ => {}
        }
        touch
    }

    fn write(&mut self, table: &str, key: &Value, whole: &Value, factor: f64) {
        let (key, partition) = key_and_partition(table, key);
        let text = whole.to_string();
        let units = factor * (text.len() as f64 / 1024.0).ceil().max(1.0);
        if table.contains("suppressions") && text.contains("reason") {
            self.index_writes += 1.0;
        }
        self.keys.push(key);
        self.writes.push((partition, units));
    }

    fn read(&mut self, table: &str, key: &Value, consistent: Option<bool>) {
        let (_, partition) = key_and_partition(table, key);
        let units = if consistent == Some(true) { 1.0 } else { 0.5 };
        self.reads.push((partition, units));
    }
}

impl State {
    /// A latency from the log-normal distribution of the rules (Box–Muller over xorshift).
    fn latency(&mut self, rules: &Rules) -> Duration {
        let mut uniform = || {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 7;
            self.seed ^= self.seed << 17;
            (self.seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (u, v) = (uniform().max(1e-12), uniform());
        let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos();
        let sigma = (rules.p99_ms / rules.median_ms).ln() / 2.326;
        let ms = rules.median_ms * (sigma * normal).exp();
        let us = (ms * 1000.0) as u64;
        self.latencies_us.push(us);
        Duration::from_micros(us)
    }

    /// Refused for a conflict or a throttle, or `None` and counted.
    fn judge(
        &mut self,
        operation: &str,
        touch: &Touch,
        rules: &Rules,
        now: Instant,
    ) -> Option<Response<Full<Bytes>>> {
        self.injected.requests += 1;
        self.held.retain(|_, until| *until > now);
        let conflicts: Vec<bool> = touch
            .keys
            .iter()
            .map(|k| self.held.contains_key(k))
            .collect();
        if conflicts.iter().any(|&c| c) {
            *self
                .injected
                .conflicts
                .entry(operation.to_owned())
                .or_default() += 1;
            if touch.transaction {
                let reasons: Vec<Value> = conflicts
                    .iter()
                    .map(|&c| match c {
                        true => json!({"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}),
                        false => json!({"Code": "None"}),
                    })
                    .collect();
                return Some(refusal(
                    "TransactionCanceledException",
                    "Transaction cancelled, please refer cancellation reasons for specific reasons",
                    json!({"CancellationReasons": reasons}),
                ));
            }
            return Some(refusal(
                "TransactionConflictException",
                "Transaction is ongoing for the item",
                Value::Null,
            ));
        }
        let second = epoch_second();
        let mut added: HashMap<&str, (f64, f64)> = HashMap::new();
        for (partition, units) in &touch.writes {
            added.entry(partition).or_default().0 += units;
        }
        for (partition, units) in &touch.reads {
            added.entry(partition).or_default().1 += units;
        }
        for (partition, (write, read)) in &added {
            let (at, w, r) = self.partitions.get(*partition).copied().unwrap_or_default();
            let (w, r) = if at == second { (w, r) } else { (0.0, 0.0) };
            if w + write > rules.write_units || r + read > rules.read_units {
                *self
                    .injected
                    .throttles
                    .entry(operation.to_owned())
                    .or_default() += 1;
                return Some(refusal(
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded",
                    Value::Null,
                ));
            }
        }
        for (partition, (write, read)) in added {
            let entry = self.partitions.entry(partition.to_owned()).or_default();
            if entry.0 != second {
                *entry = (second, 0.0, 0.0);
            }
            entry.1 += write;
            entry.2 += read;
            let injected = &mut self.injected;
            injected.busiest_partition_write_units =
                injected.busiest_partition_write_units.max(entry.1);
            injected.busiest_partition_read_units =
                injected.busiest_partition_read_units.max(entry.2);
            injected.write_units += write;
            injected.read_units += read;
            let total = self.totals.entry(partition.to_owned()).or_default();
            total.0 += write;
            total.1 += read;
        }
        self.injected.index_write_units += touch.index_writes;
        if touch.transaction && operation == "TransactWriteItems" {
            let until = now + Duration::from_millis(rules.hold_ms);
            for key in &touch.keys {
                self.held.insert(key.clone(), until);
            }
        }
        None
    }
}

/// Seconds since the epoch now.
fn epoch_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}
