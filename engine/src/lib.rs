//! The engine: readings in, warning transitions out, driven by the
//! watermark. No Kafka, no sinks, no metrics (Cargo keeps it so: this crate
//! depends on neither rdkafka, axum nor prometheus): `yujing run` wraps it
//! with a consumer and producers, `yujing backtest`, `rules test`, `bench`
//! and the golden tests drive it directly, so every path runs the same
//! windows, rules and warning lifecycle.
//!
//! # Layout
//! - this module: the engine, its window stores, and placing readings;
//! - [`settings`]: the time zone and tolerances, parsed once into types;
//! - [`error`]: [`EngineError`], the one error this crate raises;
//! - [`checkpoint`]: the open windows saved to disk and taken up again;
//! - [`handover`]: one partition's state, for its next owner;
//! - [`partitions`]: which partition each sensor's readings arrive on;
//! - [`limits`]: what a metric can physically do (range, "no measurement"
//!   codes, rate of change), readings against it refused;
//! - [`close`]: closing what the watermark passed and grading it;
//! - [`sessions`]: session-window rules;
//! - [`reload`]: swapping the rules of a running engine;
//! - [`silence`]: minutes since each sensor's last reading, per window end.

// The layout above names private modules for readers of the source.
#![allow(rustdoc::private_intra_doc_links)]

use std::collections::{BTreeMap, HashMap};

use yujing_ingest::AreaLevel;
use yujing_ingest::{
    DecodeError, Measurements, MetricCatalog, Reading, SensorRegistry, Watermarks, WindowStore,
    Windows,
};
use yujing_rules::{
    Aggregate, BaselineBook, Grade, Quality, Rule, RuleSet, WarningBook, WarningTransition,
    WindowAggregator, WindowSpec,
};

mod checkpoint;
mod close;
pub mod error;
mod handover;
mod limits;
mod partitions;
mod reload;
mod sessions;
pub mod settings;
mod silence;

pub use checkpoint::EngineSnapshot;
pub use error::EngineError;
pub use handover::PartitionState;
pub use reload::Reload;
pub use settings::{EngineSettings, TimeZone};

/// Window size, slide and allowed lateness: rules sharing them share one
/// store.
type StoreKey = (WindowSpec, i64);

/// The rules sharing one window size and slide, and their store.
struct WindowGroup {
    key: StoreKey,
    store: WindowStore,
    /// `1h` or `24h/1h`, for metrics.
    label: String,
    rules: Vec<Rule>,
    /// The latest window end evaluated (with or without readings).
    evaluated_until: Option<i64>,
    /// Windows ending before this are closed but not graded: a store
    /// created by a rules reload has only seen part of them.
    grade_from: i64,
}

impl WindowGroup {
    /// The latest window end at or before `watermark`.
    fn latest_end(&self, watermark: i64) -> i64 {
        self.store.windows().pane_of(watermark)
    }

    /// Whether window ends without readings must still be graded here: a
    /// silence rule, or a rule with warnings or pending grades to resolve.
    fn is_tracked(&self, book: &WarningBook) -> bool {
        self.has_silence_rule() || self.rules.iter().any(|r| book.tracks_rule(&r.id))
    }

    /// Whether every rule here is a silence rule (graded from reading
    /// times, with no query over the window).
    fn only_silence(&self) -> bool {
        self.rules
            .iter()
            .all(|r| r.quality == Some(Quality::Silent))
    }

    /// Whether a rule here grades silence: it must see every window end.
    fn has_silence_rule(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.quality == Some(Quality::Silent))
    }

    /// Consecutive window ends without readings worth evaluating: after
    /// this many, every rule has resolved or reset what it tracked.
    fn empty_run_limit(&self) -> i64 {
        if self.has_silence_rule() {
            return i64::MAX;
        }
        let slide = self.store.windows().slide_ms;
        self.rules
            .iter()
            .map(|r| i64::from(r.tolerate_missing) + r.keep_firing_for_ms / slide + 2)
            .max()
            .unwrap_or(0)
    }
}

/// What became of one message's readings.
#[derive(Debug, Default, PartialEq)]
pub struct Placed {
    /// Readings that went into at least one window.
    pub accepted: u64,
    /// Valid readings of metrics no rule uses.
    pub unused: u64,
    /// Readings whose every window had closed, with the first one's reason.
    pub late: Option<(DecodeError, u64)>,
    /// Readings received before (same sensor, metric and timestamp),
    /// skipped, with the first one's reason.
    pub duplicates: Option<(DecodeError, u64)>,
    /// The latest window end the accepted readings wait for.
    pub done_at: Option<i64>,
}

/// Windows closed by one watermark step and the transitions they caused.
#[derive(Debug, Default)]
pub struct Closed {
    pub watermark: i64,
    /// Label (`1h`, `24h/1h`) of each window closed, in close order, and
    /// whether it was a correction of a window closed before.
    pub windows: Vec<(String, bool)>,
    /// In event-time order of the windows, then by rule and group.
    pub transitions: Vec<WarningTransition>,
}

pub struct Engine {
    groups: Vec<WindowGroup>,
    catalog: MetricCatalog,
    registry: SensorRegistry,
    watermarks: Watermarks,
    book: WarningBook,
    /// Recent timestamps per (sensor, metric), to skip duplicates.
    recent: yujing_ingest::duplicates::RecentReadings,
    aggregator: WindowAggregator,
    max_future_skew_ms: i64,
    max_age_ms: Option<i64>,
    utc_offset_ms: i64,
    default_lateness_ms: i64,
    rules: RuleSet,
    /// Metric ids some silence rule reads, and each sensor's last reading
    /// time of them.
    silent_metrics: Vec<u16>,
    last_seen: HashMap<(u32, u16), silence::LastSeen>,
    /// Known metrics and their physical ranges, and the ranges by metric id.
    measurements: Option<Measurements>,
    limits: Vec<limits::MetricLimits>,
    /// Each sensor's last value of metrics with a rate limit.
    last_values: limits::LastValues,
    /// Session-window rules and their stores, and the watermark they were
    /// last closed at.
    sessions: Vec<sessions::SessionGroup>,
    sessions_closed_at: i64,
    /// Past window values of baseline rules, per rule and group.
    baselines: BaselineBook,
    /// The partition each sensor's readings come from.
    sensor_partitions: partitions::SensorPartitions,
}

/// The 8-hour and 24-hour moving windows an hourly AQI reads, with the
/// metrics it needs from each.
const AQI_MOVING: [(WindowSpec, &[&str]); 2] = [
    (
        WindowSpec {
            size_ms: 8 * 3_600_000,
            slide_ms: 3_600_000,
        },
        &["o3"],
    ),
    (
        WindowSpec {
            size_ms: 24 * 3_600_000,
            slide_ms: 3_600_000,
        },
        &["pm25", "pm10"],
    ),
];

/// What one store holds: the rules graded on its windows, and metrics it
/// keeps for rules of other stores (the moving means of an hourly AQI).
#[derive(Default)]
struct StorePlan {
    rules: Vec<Rule>,
    extra_metrics: Vec<&'static str>,
}

/// Rules by store: one store per window and lateness (rules may override
/// the pipeline's allowed lateness).
fn by_store(rules: &RuleSet, default_lateness_ms: i64) -> BTreeMap<StoreKey, StorePlan> {
    let mut out: BTreeMap<StoreKey, StorePlan> = BTreeMap::new();
    for rule in rules.rules.iter().filter(|r| r.session.is_none()) {
        let lateness = rule.allowed_lateness_ms.unwrap_or(default_lateness_ms);
        out.entry((rule.window, lateness))
            .or_default()
            .rules
            .push(rule.clone());
        if rule.is_aqi() {
            for (spec, metrics) in AQI_MOVING {
                let plan = out.entry((spec, lateness)).or_default();
                for m in metrics {
                    if !plan.extra_metrics.contains(m) {
                        plan.extra_metrics.push(m);
                    }
                }
            }
        }
    }
    out
}

/// What a rule's window aggregates depend on.
type SeriesKey = (String, Aggregate, AreaLevel, Option<i64>);

/// The key under which rules share aggregates; `None` for rules whose
/// aggregates depend on their own thresholds (a quorum counts sensors
/// crossing them).
fn series_key(rule: &Rule) -> Option<SeriesKey> {
    let own_query =
        rule.quorum.is_set() || rule.quality.is_some() || rule.is_aqi() || rule.sql.is_some();
    (!own_query).then(|| {
        (
            rule.metric.clone(),
            rule.aggregate,
            rule.group_by,
            rule.predict_horizon_ms,
        )
    })
}

fn metric_ids(plan: &StorePlan, catalog: &MetricCatalog) -> Vec<u16> {
    plan.rules
        .iter()
        .flat_map(|r| r.input_metrics())
        .chain(plan.extra_metrics.iter().copied())
        .filter_map(|m| catalog.id(m))
        .collect()
}

fn wants_sketches(rules: &[Rule]) -> bool {
    rules.iter().any(|r| r.aggregate.percentile().is_some())
}

fn new_group(
    key: StoreKey,
    plan: StorePlan,
    catalog: &MetricCatalog,
    utc_offset_ms: i64,
    grade_from: i64,
) -> WindowGroup {
    let (spec, lateness) = key;
    let windows = Windows::hopping(spec.size_ms, spec.slide_ms, utc_offset_ms);
    WindowGroup {
        key,
        store: WindowStore::new(windows, catalog, &metric_ids(&plan, catalog))
            .with_lateness(lateness)
            .with_sketches(wants_sketches(&plan.rules)),
        label: spec.label(),
        rules: plan.rules,
        evaluated_until: None,
        grade_from,
    }
}

impl Engine {
    pub fn new(rules: &RuleSet, registry: SensorRegistry, settings: &EngineSettings) -> Self {
        use settings::ms;
        let utc_offset_ms = settings.time_zone.utc_offset_ms();
        let catalog = MetricCatalog::new(rules.metrics());
        let default_lateness_ms = ms(settings.allowed_lateness);
        let groups = by_store(rules, default_lateness_ms)
            .into_iter()
            .map(|(key, rules)| new_group(key, rules, &catalog, utc_offset_ms, i64::MIN))
            .collect();
        Engine {
            groups,
            catalog: catalog.clone(),
            watermarks: Watermarks::new(ms(settings.allowed_delay), settings.idle_timeout.map(ms)),
            book: WarningBook::new(),
            recent: yujing_ingest::duplicates::RecentReadings::new(),
            aggregator: WindowAggregator::new(),
            max_future_skew_ms: ms(settings.max_future_skew),
            max_age_ms: settings.max_age.map(ms),
            utc_offset_ms,
            default_lateness_ms,
            rules: rules.clone(),
            silent_metrics: silence::silent_metrics(rules, &catalog),
            last_seen: HashMap::new(),
            measurements: None,
            limits: Vec::new(),
            last_values: limits::LastValues::default(),
            sessions: sessions::by_session_store(rules)
                .into_iter()
                .map(|(key, rules)| sessions::new_session_group(key, rules, &catalog))
                .collect(),
            sessions_closed_at: i64::MIN,
            baselines: BaselineBook::new(),
            sensor_partitions: partitions::SensorPartitions::new(registry.len()),
            registry,
        }
    }

    /// Refuse readings outside their metric's physical range (as
    /// `out_of_range`, to the dead-letter topic).
    pub fn with_measurements(mut self, measurements: Measurements) -> Self {
        self.limits = limits::by_metric(&self.catalog, Some(&measurements));
        self.measurements = Some(measurements);
        self
    }

    /// The rules running now.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    pub fn registry(&self) -> &SensorRegistry {
        &self.registry
    }

    /// Place one message's readings, read from `topic`/`partition` at
    /// processing time `now_ms`. The whole message is checked first: an
    /// unknown sensor or a timestamp too far ahead refuses all of it.
    pub fn place(
        &mut self,
        topic: &str,
        partition: i32,
        readings: &[Reading],
        now_ms: i64,
    ) -> Result<Placed, DecodeError> {
        let mut ids = Vec::with_capacity(readings.len());
        let mut updates = Vec::new();
        for r in readings {
            let Some(sensor) = self.registry.index_of(&r.sensor_id) else {
                return Err(DecodeError::UnknownSensor(r.sensor_id.clone()));
            };
            if r.ts_ms > now_ms + self.max_future_skew_ms {
                return Err(DecodeError::FutureTimestamp {
                    sensor_id: r.sensor_id.clone(),
                    ts_ms: r.ts_ms,
                    skew_ms: self.max_future_skew_ms,
                });
            }
            if let Some(max_age_ms) = self.max_age_ms
                && r.ts_ms < now_ms.saturating_sub(max_age_ms)
            {
                return Err(DecodeError::TooOld {
                    sensor_id: r.sensor_id.clone(),
                    ts_ms: r.ts_ms,
                    max_age_ms,
                });
            }
            let metric = self.catalog.id(&r.metric);
            if let Some(m) = metric
                && let Some(limits) = self.limits.get(m as usize)
            {
                match limits.check(r, (sensor, m), &self.last_values) {
                    Ok(update) => updates.extend(update),
                    Err(refusal) => {
                        let (e, update) = *refusal;
                        if let Some(u) = update {
                            self.last_values.apply(u);
                        }
                        return Err(e);
                    }
                }
            }
            ids.push((sensor, metric));
        }
        for u in updates {
            self.last_values.apply(u);
        }
        let from = self.sensor_partitions.index(topic, partition);
        for &(sensor, _) in &ids {
            self.sensor_partitions.saw(&self.registry, sensor, from);
        }
        // Silence rules need each sensor's last reading time.
        for (r, &(sensor, metric)) in readings.iter().zip(&ids) {
            if let Some(m) = metric
                && self.silent_metrics.contains(&m)
            {
                self.last_seen.entry((sensor, m)).or_default().saw(r.ts_ms);
            }
        }
        let mut placed = Placed::default();
        let mut late_count = 0;
        let mut late = None;
        let mut duplicates = None;
        let mut duplicate_count = 0;
        for (r, (sensor, metric)) in readings.iter().zip(ids) {
            let Some(metric) = metric else {
                placed.unused += 1;
                continue;
            };
            if self.recent.is_duplicate(sensor, metric, r.ts_ms) {
                duplicate_count += 1;
                duplicates.get_or_insert(DecodeError::Duplicate {
                    sensor_id: r.sensor_id.clone(),
                    metric: r.metric.clone(),
                    ts_ms: r.ts_ms,
                });
                continue;
            }
            let (mut used, mut was_late) = (false, false);
            for g in &mut self.groups {
                if !g.store.wants(metric) {
                    continue;
                }
                match g.store.insert(sensor, metric, r.ts_ms, r.value) {
                    Ok(end) => {
                        placed.done_at = Some(placed.done_at.map_or(end, |d| d.max(end)));
                        used = true;
                    }
                    Err(window_end_ms) => {
                        was_late = true;
                        late.get_or_insert(DecodeError::Late {
                            sensor_id: r.sensor_id.clone(),
                            ts_ms: r.ts_ms,
                            window_end_ms,
                        });
                    }
                }
            }
            for sg in &mut self.sessions {
                if !sg.store.wants(metric) {
                    continue;
                }
                match sg
                    .store
                    .insert(&self.registry, sensor, metric, r.ts_ms, r.value)
                {
                    Ok(end) => {
                        placed.done_at = Some(placed.done_at.map_or(end, |d| d.max(end)));
                        used = true;
                    }
                    Err(watermark) => {
                        was_late = true;
                        late.get_or_insert(DecodeError::Late {
                            sensor_id: r.sensor_id.clone(),
                            ts_ms: r.ts_ms,
                            window_end_ms: watermark,
                        });
                    }
                }
            }
            placed.accepted += u64::from(used);
            late_count += u64::from(was_late);
        }
        placed.late = late.map(|e| (e, late_count));
        placed.duplicates = duplicates.map(|e| (e, duplicate_count));
        // After placing the readings, so a message never makes itself late.
        if let Some(max_ts) = readings.iter().map(|r| r.ts_ms).max() {
            self.watermarks.observe(topic, partition, max_ts, now_ms);
        }
        Ok(placed)
    }

    /// A partition was assigned: it holds the watermark back until its
    /// first reading, or until it has been idle for the idle timeout.
    pub fn expect_partition(&mut self, topic: &str, partition: i32, now_ms: i64) {
        self.watermarks.expect(topic, partition, now_ms);
    }

    /// Districts whose sensors arrived on more than one partition.
    pub fn split_districts(&self) -> usize {
        self.sensor_partitions.split_districts()
    }

    /// The pipeline watermark as last computed.
    pub fn watermark(&self) -> Option<i64> {
        self.watermarks.current()
    }

    pub fn idle_partitions(&self, now_ms: i64) -> usize {
        self.watermarks.idle_partitions(now_ms)
    }

    /// Partial states, panes and approximate state bytes held, over all
    /// window sizes.
    /// Open sessions count as panes, their per-sensor states as states.
    pub fn state_size(&self) -> (usize, usize, usize) {
        let session_states: usize = self.sessions.iter().map(|s| s.store.states()).sum();
        let states = self.groups.iter().map(|g| g.store.states()).sum::<usize>() + session_states;
        let panes = self.groups.iter().map(|g| g.store.panes()).sum::<usize>()
            + self
                .sessions
                .iter()
                .map(|s| s.store.sessions())
                .sum::<usize>();
        const SESSION_STATE: usize = std::mem::size_of::<(u32, yujing_ingest::PartialState)>() + 1;
        let bytes = self
            .groups
            .iter()
            .map(|g| g.store.state_bytes())
            .sum::<usize>()
            + session_states * SESSION_STATE
            + self.recent.len() * 48
            // Baseline values: a B-tree entry each, about 32 bytes.
            + self.baselines.len() * 32;
        (states, panes, bytes)
    }

    /// Active and pending warnings, to be saved.
    pub fn warning_book(&self) -> &WarningBook {
        &self.book
    }

    /// Take up warnings saved by an earlier run; rules no longer running
    /// are dropped, their ids returned.
    pub fn restore_warning_book(&mut self, mut book: WarningBook) -> Vec<String> {
        let running: std::collections::HashSet<&str> =
            self.rules.rules.iter().map(|r| r.id.as_str()).collect();
        let gone = book.keep_rules(&|r| running.contains(r));
        book.resume();
        self.book = book;
        gone
    }

    pub fn active_count(&self) -> usize {
        self.book.active_count()
    }

    /// Groups with a crossing threshold whose `for` has not run out.
    pub fn pending_count(&self) -> usize {
        self.book.pending_count()
    }

    /// Active warnings per (district, grade); warnings of groups the
    /// registry does not place count under `unknown`.
    pub fn active_by_district(&self) -> Vec<(String, Grade, i64)> {
        let levels: HashMap<&str, yujing_ingest::AreaLevel> = self
            .rules
            .rules
            .iter()
            .map(|r| (r.id.as_str(), r.group_by))
            .collect();
        let mut counts: HashMap<(&str, Grade), i64> = HashMap::new();
        for (rule, key, grade) in self.book.active_groups() {
            let district = levels
                .get(rule)
                .and_then(|level| self.registry.area(*level, key))
                .map_or("unknown", |a| a.district.as_str());
            *counts.entry((district, grade)).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|((d, g), n)| (d.to_owned(), g, n))
            .collect()
    }

    /// Active warnings per (rule, grade), with zeros for every rule and
    /// grade so a gauge can be reset.
    pub fn active_by_rule(&self) -> Vec<(String, Grade, i64)> {
        let mut counts: HashMap<(&str, Grade), i64> = HashMap::new();
        for (rule, grade) in self.book.active() {
            *counts.entry((rule, grade)).or_default() += 1;
        }
        let mut out = Vec::new();
        for g in &self.groups {
            for rule in &g.rules {
                for grade in Grade::ALL {
                    let n = counts.get(&(rule.id.as_str(), grade)).copied().unwrap_or(0);
                    out.push((rule.id.clone(), grade, n));
                }
            }
        }
        out
    }
}
