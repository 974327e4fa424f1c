//! Partition states larger than one Kafka message, on the state topic.
//!
//! A state that fits in `kafka.state_chunk_bytes` is one record, keyed
//! `<topic>/<partition>`, its body the state's JSON. A larger one is cut
//! into chunks keyed `<topic>/<partition>#<i>`, written first, then a
//! manifest under the partition's own key naming the chunks' count and
//! generation. Compaction keeps the latest record of each key, so the
//! latest manifest finds the chunks written with it; chunks of older,
//! longer states that remain are of another generation and are ignored.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use yujing_engine::PartitionState;

/// The record under a partition's key when its state was cut into chunks.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Manifest {
    /// Number of chunks, keyed `#0` … `#chunks-1`.
    state_chunks: usize,
    /// The write the chunks belong to (also at the head of each chunk).
    generation: u64,
    /// Length of the whole state.
    bytes: usize,
}

/// A chunk: its generation (the body's first 8 bytes, big-endian), then
/// its part of the state's JSON.
struct Chunk {
    generation: u64,
    data: Vec<u8>,
}

impl Chunk {
    fn decode(body: &[u8]) -> Option<Self> {
        let (generation, data) = body.split_first_chunk::<8>()?;
        Some(Chunk {
            generation: u64::from_be_bytes(*generation),
            data: data.to_vec(),
        })
    }
}

/// The records (key, body) that carry `body`, the JSON of the state of
/// `partition_key` (`<topic>/<partition>`): itself, or chunks and then
/// their manifest (last, so a reader never sees a manifest without them).
pub(super) fn records(
    partition_key: &str,
    body: Vec<u8>,
    chunk_bytes: usize,
    generation: u64,
) -> Vec<(String, Vec<u8>)> {
    if body.len() <= chunk_bytes {
        return vec![(partition_key.to_owned(), body)];
    }
    let per_chunk = chunk_bytes.saturating_sub(8).max(1);
    let mut out: Vec<(String, Vec<u8>)> = body
        .chunks(per_chunk)
        .enumerate()
        .map(|(i, data)| {
            let mut chunk = Vec::with_capacity(8 + data.len());
            chunk.extend_from_slice(&generation.to_be_bytes());
            chunk.extend_from_slice(data);
            (format!("{partition_key}#{i}"), chunk)
        })
        .collect();
    let manifest = Manifest {
        state_chunks: out.len(),
        generation,
        bytes: body.len(),
    };
    out.push((
        partition_key.to_owned(),
        serde_json::to_vec(&manifest).expect("manifest serializes"),
    ));
    out
}

/// The partition (`<topic>/<partition>`) a record's key belongs to, for a
/// state, a manifest or a chunk.
pub(super) fn partition_of(key: &str) -> Option<(String, i32)> {
    let owner = key.rsplit_once('#').map_or(key, |(owner, _)| owner);
    let (topic, partition) = owner.rsplit_once('/')?;
    Some((topic.to_owned(), partition.parse().ok()?))
}

/// The state topic's partition for the states of readings partition
/// `partition` (of any readings topic): a reader then reads only the state
/// partitions of the readings partitions it was given.
pub(super) fn state_partition(partition: i32, state_partitions: i32) -> i32 {
    partition.rem_euclid(state_partitions.max(1))
}

/// A generation for the next chunked write: the wall clock in ms, and a
/// counter so two writes in one millisecond differ.
pub(super) fn next_generation() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ms = u64::try_from(yujing_ingest::clock::wall_now_ms()).unwrap_or(0);
    (ms << 16) | (n & 0xffff)
}

/// Collects the state topic's records in order and gives each partition's
/// latest whole state.
#[derive(Default)]
pub(super) struct Assembler {
    /// Latest record under each partition's key: a state, or a manifest.
    heads: HashMap<(String, i32), Head>,
    /// Latest chunk under each chunk key.
    chunks: HashMap<(String, i32, usize), Chunk>,
}

enum Head {
    State(Box<PartitionState>),
    Chunked(Manifest),
    /// A tombstone or a body this yujing cannot read.
    Nothing,
}

impl Assembler {
    /// One record of the topic; records of keys that are not a state's are
    /// ignored.
    pub fn add(&mut self, key: &str, body: Option<&[u8]>) {
        let chunk = match key.rsplit_once('#') {
            Some((_, i)) => match i.parse::<usize>() {
                Ok(i) => Some(i),
                Err(_) => return,
            },
            None => None,
        };
        let Some((topic, partition)) = partition_of(key) else {
            return;
        };
        match chunk {
            Some(i) => {
                if let Some(c) = body.and_then(Chunk::decode) {
                    self.chunks.insert((topic, partition, i), c);
                }
            }
            None => {
                let head = match body {
                    None => Head::Nothing,
                    Some(b) => {
                        if let Ok(m) = serde_json::from_slice::<Manifest>(b) {
                            Head::Chunked(m)
                        } else if let Ok(s) = serde_json::from_slice::<PartitionState>(b) {
                            Head::State(Box::new(s))
                        } else {
                            Head::Nothing
                        }
                    }
                };
                self.heads.insert((topic, partition), head);
            }
        }
    }

    /// Each partition's latest state; a chunked one whose chunks are
    /// missing or of another generation is left out (counted in the
    /// second value), so that partition is replayed.
    pub fn finish(mut self) -> (HashMap<(String, i32), PartitionState>, usize) {
        let mut out = HashMap::new();
        let mut incomplete = 0;
        for ((topic, partition), head) in self.heads {
            match head {
                Head::State(s) => {
                    out.insert((topic, partition), *s);
                }
                Head::Chunked(m) => {
                    let mut body = Vec::with_capacity(m.bytes);
                    let whole = (0..m.state_chunks).all(|i| {
                        match self.chunks.remove(&(topic.clone(), partition, i)) {
                            Some(c) if c.generation == m.generation => {
                                body.extend_from_slice(&c.data);
                                true
                            }
                            _ => false,
                        }
                    });
                    match serde_json::from_slice::<PartitionState>(&body) {
                        Ok(s) if whole && body.len() == m.bytes => {
                            out.insert((topic, partition), s);
                        }
                        _ => incomplete += 1,
                    }
                }
                Head::Nothing => {}
            }
        }
        (out, incomplete)
    }
}

#[cfg(test)]
mod tests;
