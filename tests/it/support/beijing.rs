//! The Beijing air-quality samples in `tests/data/` (UCI layout:
//! `station,year,month,day,hour,<metric columns…>`, Beijing time).

const HOUR: i64 = 3_600_000;
const CST: i64 = 8 * HOUR;

/// One station-hour: the station, the UTC milliseconds at which its local
/// hour starts, and the metric columns (`None` for `NA`).
pub struct BeijingHour {
    pub station: String,
    pub hour_start_ms: i64,
    pub values: Vec<Option<f64>>,
}

/// Every row of a sample file, in file order.
pub fn beijing_hours(text: &str) -> Vec<BeijingHour> {
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let date = chrono::NaiveDate::from_ymd_opt(
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
            .unwrap();
            let local = date.and_hms_opt(f[4].parse().unwrap(), 0, 0).unwrap();
            BeijingHour {
                station: f[0].to_owned(),
                hour_start_ms: local.and_utc().timestamp_millis() - CST,
                values: f[5..].iter().map(|v| v.parse().ok()).collect(),
            }
        })
        .collect()
}

/// One reading of a station.
pub struct StationReading {
    pub station: String,
    pub metric: &'static str,
    pub ts: i64,
    pub value: f64,
}

/// The readings of `metrics` (the file's metric columns, in order), each
/// stamped `offset_ms` after its hour starts, with `scale` applied.
pub fn station_readings(
    text: &str,
    metrics: &[&'static str],
    offset_ms: i64,
    scale: impl Fn(&str, f64) -> f64,
) -> Vec<StationReading> {
    let mut out = Vec::new();
    for row in beijing_hours(text) {
        for (metric, value) in metrics.iter().zip(&row.values) {
            if let Some(value) = *value {
                out.push(StationReading {
                    station: row.station.clone(),
                    metric,
                    ts: row.hour_start_ms + offset_ms,
                    value: scale(metric, value),
                });
            }
        }
    }
    out
}

/// The sample files' three stations as a registry, with the street and
/// grid `place` gives each.
pub fn stations(place: impl Fn(&str) -> (String, String)) -> yujing_ingest::SensorRegistry {
    let sensors = ["Dongsi", "Guanyuan", "Tiantan"]
        .into_iter()
        .map(|id| {
            let (street, grid) = place(id);
            yujing_ingest::Sensor {
                sensor_id: id.into(),
                kind: "air".into(),
                district: "Beijing".into(),
                district_code: "110000".into(),
                street,
                grid,
                lat: 39.9,
                lon: 116.4,
                names: Default::default(),
            }
        })
        .collect();
    yujing_ingest::SensorRegistry::new(sensors).unwrap()
}
