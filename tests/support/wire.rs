//! One request counter for the tests and the load harness: an SDK interceptor that sees every
//! request a client sends and every answer it hears — the operation, a transaction's actions,
//! the keys written and their write units, the read units, and refusals by error.

#![allow(dead_code)] // each test binary uses its own part of the kit

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a client sent and heard, in all.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Wire {
    /// Requests by operation.
    pub requests: BTreeMap<String, u64>,
    /// Write units: 1 per item written, 2 per transaction action.
    pub write_units: u64,
    /// Read units, estimated from the answers' sizes (a strongly consistent read costs one
    /// unit per 4 KB).
    pub read_units: u64,
    /// Refusals by error.
    pub refusals: BTreeMap<String, u64>,
    /// Writes per key per second (since the epoch).
    pub keys: HashMap<String, BTreeMap<u64, u32>>,
}

impl Wire {
    /// Adds what `other` counted.
    pub fn add(&mut self, other: &Wire) {
        for (operation, n) in &other.requests {
            *self.requests.entry(operation.clone()).or_default() += n;
        }
        for (kind, n) in &other.refusals {
            *self.refusals.entry(kind.clone()).or_default() += n;
        }
        for (key, seconds) in &other.keys {
            let merged = self.keys.entry(key.clone()).or_default();
            for (second, n) in seconds {
                *merged.entry(*second).or_default() += n;
            }
        }
        self.write_units += other.write_units;
        self.read_units += other.read_units;
    }
}

/// Counts a client's requests on the wire, as an SDK interceptor: each request in order (its
/// operation and, for a transaction, its actions), and the totals of [`Wire`]. Cloned, it
/// counts into the same place; one can serve several clients.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter {
    wire: Arc<Mutex<Wire>>,
    sequence: Arc<Mutex<Vec<(String, usize)>>>,
}

impl RequestCounter {
    /// The requests since the last take, in order: operation and transaction actions.
    pub fn take(&self) -> Vec<(String, usize)> {
        std::mem::take(&mut *self.sequence.lock().unwrap())
    }

    /// The totals since the last take of them.
    pub fn take_wire(&self) -> Wire {
        std::mem::take(&mut *self.wire.lock().unwrap())
    }
}

/// A written item's key, as the report names it.
fn key_of(table: &str, key: &Value) -> String {
    let text = |name: &str| {
        key.get(name)
            .and_then(|v| v.get("S"))
            .and_then(Value::as_str)
    };
    match (text("pk"), text("sk"), text("email")) {
        (Some(pk), Some(sk), _) => format!("{pk} | {sk}"),
        (_, _, Some(email)) => format!("{table}: {email}"),
        _ => format!("{table}: ?"),
    }
}

/// The keys a write request names, and its write units.
fn written(operation: &str, body: &Value) -> (Vec<String>, u64) {
    let table = body["TableName"].as_str().unwrap_or_default();
    match operation {
        "PutItem" => (vec![key_of(table, &body["Item"])], 1),
        "UpdateItem" | "DeleteItem" => (vec![key_of(table, &body["Key"])], 1),
        "TransactWriteItems" => {
            let actions = body["TransactItems"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let keys = actions
                .iter()
                .filter_map(|action| {
                    let (kind, inner) = action.as_object()?.iter().next()?;
                    let table = inner["TableName"].as_str().unwrap_or_default();
                    (kind != "ConditionCheck").then(|| match kind.as_str() {
                        "Put" => key_of(table, &inner["Item"]),
                        _ => key_of(table, &inner["Key"]),
                    })
                })
                .collect();
            (keys, 2 * actions.len() as u64)
        }
        "BatchWriteItem" => {
            let mut keys = Vec::new();
            for (table, requests) in body["RequestItems"].as_object().into_iter().flatten() {
                for request in requests.as_array().into_iter().flatten() {
                    if let Some(item) = request.pointer("/PutRequest/Item") {
                        keys.push(key_of(table, item));
                    } else if let Some(key) = request.pointer("/DeleteRequest/Key") {
                        keys.push(key_of(table, key));
                    }
                }
            }
            let units = keys.len() as u64;
            (keys, units)
        }
        _ => (Vec::new(), 0),
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let request = context.request();
        // JSON protocols name the operation in a header, Smithy RPC v2 CBOR at the path's end.
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or_default(),
            None => request.uri().rsplit('/').next().unwrap_or_default(),
        }
        .to_owned();
        let body: Value = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let actions = body
            .get("TransactItems")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let (keys, units) = written(&operation, &body);
        self.sequence
            .lock()
            .unwrap()
            .push((operation.clone(), actions));
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut wire = self.wire.lock().unwrap();
        *wire.requests.entry(operation).or_default() += 1;
        wire.write_units += units;
        for key in keys {
            *wire.keys.entry(key).or_default().entry(second).or_default() += 1;
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(response) = context.response() else {
            return Ok(());
        };
        let Some(bytes) = response.body().bytes() else {
            return Ok(());
        };
        let mut wire = self.wire.lock().unwrap();
        if response.status().as_u16() >= 400 {
            let error: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
            let kind = error["__type"].as_str().unwrap_or("unknown");
            let kind = kind.rsplit('#').next().unwrap_or(kind).to_owned();
            *wire.refusals.entry(kind).or_default() += 1;
            return Ok(());
        }
        // Read units, estimated: a strongly consistent read costs one unit per 4 KB.
        let answer: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        let units = if answer.get("Items").is_some() || answer.get("Item").is_some() {
            (bytes.len() as u64).div_ceil(4096)
        } else if let Some(responses) = answer.get("Responses").and_then(Value::as_object) {
            responses
                .values()
                .filter_map(Value::as_array)
                .map(|items| items.len() as u64)
                .sum()
        } else {
            0
        };
        wire.read_units += units;
        Ok(())
    }
}
