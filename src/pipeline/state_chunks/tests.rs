use super::*;

/// The JSON of an empty state of `readings/<partition>`, told apart by
/// `written_at_ms`.
fn state(partition: i32, written_at_ms: i64) -> Vec<u8> {
    format!(
        r#"{{"format":"yujing.partition-state/v1","topic":"readings","partition":{partition},"fingerprint":"f","written_at_ms":{written_at_ms},"progress":null,"sensors":[],"stores":[],"sessions":[],"last_seen":[],"max_event_ms":null,"warnings":[]}}"#
    )
    .into_bytes()
}

fn read(records: &[(String, Option<Vec<u8>>)]) -> (HashMap<(String, i32), i64>, usize) {
    let mut a = Assembler::default();
    for (k, v) in records {
        a.add(k, v.as_deref());
    }
    let (states, incomplete) = a.finish();
    let written = states
        .into_iter()
        .map(|(k, s)| (k, s.written_at_ms))
        .collect();
    (written, incomplete)
}

fn some(records: Vec<(String, Vec<u8>)>) -> Vec<(String, Option<Vec<u8>>)> {
    records.into_iter().map(|(k, v)| (k, Some(v))).collect()
}

#[test]
fn a_small_state_is_one_record_under_the_partition_key() {
    let body = state(3, 7);
    let records = records("readings/3", body.clone(), 1_000_000, 1);
    assert_eq!(records, vec![("readings/3".to_owned(), body)]);
    let (states, incomplete) = read(&some(records));
    assert_eq!(states[&("readings".to_owned(), 3)], 7);
    assert_eq!(incomplete, 0);
}

#[test]
fn a_large_state_goes_in_chunks_then_a_manifest_and_comes_back_whole() {
    let body = state(0, 42);
    let records = records("readings/0", body.clone(), 100, u64::MAX);
    assert!(records.len() >= 3, "{}", records.len());
    assert!(records.iter().all(|(_, v)| v.len() <= 100), "{records:?}");
    let (last_key, _) = records.last().unwrap();
    assert_eq!(last_key, "readings/0", "the manifest comes last");
    assert_eq!(records[0].0, "readings/0#0");
    let (states, incomplete) = read(&some(records));
    assert_eq!(states[&("readings".to_owned(), 0)], 42);
    assert_eq!(incomplete, 0);
}

#[test]
fn the_latest_write_wins_and_leftover_chunks_of_older_writes_are_ignored() {
    // A long chunked state, then a shorter chunked one (fewer chunks: the
    // old ones beyond remain), then for partition 1 a chunked state
    // replaced by a single record.
    let mut log = some(records("readings/0", state(0, 1), 20, 1));
    log.extend(some(records("readings/0", state(0, 222_222), 120, 2)));
    log.extend(some(records("readings/1", state(1, 3), 20, 3)));
    log.extend(some(records("readings/1", state(1, 4), 1_000, 4)));
    let (states, incomplete) = read(&log);
    assert_eq!(states[&("readings".to_owned(), 0)], 222_222);
    assert_eq!(states[&("readings".to_owned(), 1)], 4);
    assert_eq!(incomplete, 0);
}

#[test]
fn a_state_with_a_chunk_missing_or_of_another_write_is_left_out() {
    let mut missing = some(records("readings/0", state(0, 5), 30, 1));
    missing.remove(1);
    let (states, incomplete) = read(&missing);
    assert!(states.is_empty());
    assert_eq!(incomplete, 1);

    // Chunk 0 overwritten by a later write whose manifest never came (a
    // crash between the two): the manifest's chunks no longer match.
    let mut torn = some(records("readings/0", state(0, 5), 30, 1));
    torn.push(some(records("readings/0", state(0, 6), 30, 2)).remove(0));
    let (states, incomplete) = read(&torn);
    assert!(states.is_empty());
    assert_eq!(incomplete, 1);
}

#[test]
fn a_tombstone_or_an_unreadable_body_leaves_no_state() {
    let mut log = some(records("readings/0", state(0, 5), 1_000, 1));
    log.push(("readings/0".to_owned(), None));
    log.extend(some(records("readings/2", b"not json".to_vec(), 1_000, 1)));
    log.push(("not-a-partition-key".to_owned(), Some(state(0, 1))));
    let (states, incomplete) = read(&log);
    assert!(states.is_empty(), "{states:?}");
    assert_eq!(incomplete, 0);
}
