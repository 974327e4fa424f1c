//! The demo's simulated responders: a dispatch system that reads the
//! response topic and answers on the feedback topic, as a city's would.
//!
//! Most warnings are acknowledged within their deadline, dispatched, met
//! on site and closed as confirmed; one is closed as a false alarm; the
//! first data-quality warning (a silent or stuck station) is ignored, so
//! it visibly climbs grid → street → district → city. Delays are in the
//! demo's simulated time.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::watch;
use yujing_ingest::Clock;

const MIN: i64 = 60_000;

/// What the responders saw and did.
#[derive(Debug, Default, Clone)]
pub struct ResponderReport {
    /// Per unit: warnings it acknowledged and the minutes from the raise.
    pub acknowledged: BTreeMap<String, Vec<f64>>,
    /// The ignored warning's climb: (unit that missed, unit now holding).
    pub climbed: Vec<(String, String)>,
    /// Per rule: (confirmed, false alarms).
    pub verdicts: BTreeMap<String, (u32, u32)>,
    /// Warnings nobody acknowledged before their condition ended.
    pub unanswered: u32,
}

/// A command to send at a simulated time.
struct Due {
    at_ms: i64,
    warning_id: String,
    body: Value,
}

/// Answer warnings until `stop`; then say what was done.
pub async fn respond(
    bootstrap: String,
    responses_topic: &str,
    feedback_topic: &str,
    clock: Clock,
    mut stop: watch::Receiver<bool>,
    print: bool,
) -> ResponderReport {
    let mut report = ResponderReport::default();
    let consumer: StreamConsumer = match ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "yujing-demo-responders")
        .set("enable.auto.commit", "false")
        .create()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("demo responders cannot start: {e}");
            return report;
        }
    };
    let mut tpl = TopicPartitionList::new();
    let _ = tpl.add_partition_offset(responses_topic, 0, Offset::Beginning);
    let producer: Option<FutureProducer> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .ok();
    let (Ok(()), Some(producer)) = (consumer.assign(&tpl), producer) else {
        tracing::error!("demo responders cannot read or write their topics");
        return report;
    };
    let mut raised_at: HashMap<String, i64> = HashMap::new();
    let mut ignored: Option<String> = None;
    let mut answered = 0u32;
    let mut queue: Vec<Due> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                let now = clock.now_ms();
                let (due, later): (Vec<Due>, Vec<Due>) =
                    queue.into_iter().partition(|d| d.at_ms <= now);
                queue = later;
                for d in due {
                    let body = d.body.to_string();
                    let record = FutureRecord::to(feedback_topic)
                        .key(d.warning_id.as_str())
                        .payload(body.as_str());
                    if let Err((e, _)) = producer.send(record, Duration::from_secs(5)).await {
                        tracing::warn!("demo responders: {e}");
                    }
                }
            }
            m = consumer.recv() => {
                let Ok(m) = m else { continue };
                let Some(Ok(change)) = m.payload().map(serde_json::from_slice::<Value>) else {
                    continue;
                };
                let id = change["warning_id"].as_str().unwrap_or_default().to_owned();
                let at = change["at_ms"].as_i64().unwrap_or(0);
                let unit = change["assignee"].as_str().unwrap_or_default().to_owned();
                let command = |delay: i64, body: Value| {
                    let mut body = body;
                    body["unit"] = unit.clone().into();
                    Due { at_ms: at + delay, warning_id: id.clone(), body }
                };
                match change["change"].as_str().unwrap_or_default() {
                    "assigned" => {
                        raised_at.insert(id.clone(), at);
                        // A data-quality warning lasts (a silent station stays
                        // silent): long enough to climb every rung.
                        if ignored.is_none() && change["category"] == "data" {
                            if print {
                                eprintln!("  responders: nobody answers {id} ({unit}); watch it climb");
                            }
                            ignored = Some(id.clone());
                            continue;
                        }
                        // Within every grade's deadline (red: 5 min).
                        queue.push(command(2 * MIN, json!({"action": "acknowledge"})));
                    }
                    "escalated" if ignored.as_deref() == Some(id.as_str()) => {
                        let missed = change["missed_by"].as_str().unwrap_or("?").to_owned();
                        if missed == unit {
                            if print {
                                eprintln!("  responders: {id}: nobody at {unit} answered either; overdue at the top");
                            }
                            continue;
                        }
                        if print {
                            eprintln!(
                                "  responders: {id} climbed from {missed} to {unit} ({})",
                                change["assignee_level"].as_str().unwrap_or("?")
                            );
                        }
                        report.climbed.push((missed, unit));
                    }
                    "acknowledged" => {
                        let from = raised_at.get(&id).copied().unwrap_or(at);
                        report
                            .acknowledged
                            .entry(change["actor"].as_str().unwrap_or_default().to_owned())
                            .or_default()
                            .push((at - from) as f64 / MIN as f64);
                        queue.push(command(MIN, json!({"action": "dispatch", "to": "team 1"})));
                        queue.push(command(10 * MIN, json!({"action": "on_site"})));
                    }
                    "on_site" => {
                        answered += 1;
                        // The second warning answered turns out a false alarm.
                        let outcome = if answered == 2 { "false_alarm" } else { "confirmed" };
                        queue.push(command(
                            20 * MIN,
                            json!({"action": "handled", "outcome": outcome, "note": "checked on site"}),
                        ));
                    }
                    "handled" => {
                        let rule = change["rule"].as_str().unwrap_or_default().to_owned();
                        let v = report.verdicts.entry(rule).or_default();
                        match change["outcome"].as_str() {
                            Some("confirmed") => v.0 += 1,
                            Some("false_alarm") => v.1 += 1,
                            _ => {}
                        }
                    }
                    "unanswered" => report.unanswered += 1,
                    _ => {}
                }
            }
        }
    }
    report
}

/// The units of the demo's city: a team per grid, an office per street, a
/// duty office per district, the city centre; written as a responsibility
/// file and checked like one.
pub fn units_yaml(registry: &yujing_ingest::SensorRegistry) -> String {
    use std::collections::BTreeSet;
    let (mut grids, mut streets, mut districts) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for s in registry.sensors() {
        grids.insert(s.grid.clone());
        streets.insert(s.street.clone());
        districts.insert(s.district_code.clone());
    }
    let mut y = String::from("units:\n");
    for g in &grids {
        y.push_str(&format!(
            "  - {{ id: \"grid-{g}\", level: grid, areas: [\"{g}\"] }}\n"
        ));
    }
    for s in &streets {
        y.push_str(&format!(
            "  - {{ id: \"street-{s}\", level: street, areas: [\"{s}\"] }}\n"
        ));
    }
    for d in &districts {
        y.push_str(&format!(
            "  - {{ id: \"district-{d}\", level: district, areas: [\"{d}\"] }}\n"
        ));
    }
    y.push_str("  - { id: city, level: city }\n");
    y
}
