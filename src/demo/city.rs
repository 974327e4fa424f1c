//! A synthetic city modelled on central Chongqing: six districts, three
//! streets each, four grid cells per street; in every grid three air
//! stations (PM2.5, PM10, NO2, sent as one gateway message) and one noise
//! meter; one drain-level gauge per street. 306 sensors.
//!
//! The script (event time, from 06:00 Beijing time):
//! - a PM2.5 episode over Yubei, worst in Longxi street, whose hourly means
//!   climb blue → yellow → orange → red and back by 14:00, with a milder
//!   echo in Jiangbei;
//! - a rainstorm filling drains in Yuzhong (to red) and Nan'an (to orange)
//!   from 08:00, peaking at 11:00 and draining by 14:00;
//! - road works in Ciqikou (Shapingba) from 09:00 to 10:30, loud enough for
//!   a yellow noise warning;
//! - two faulty air stations for the data-quality rules: `cq-jb-aq-0004`
//!   falls silent at 07:30, and `cq-spb-aq-0007` repeats one PM2.5 value
//!   from 07:00.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use yujing_ingest::{Sensor, SensorRegistry};

/// Falls silent 1.5 h into the script.
const SILENT_STATION: &str = "cq-jb-aq-0004";
/// Reports a stuck PM2.5 value from 1 h into the script.
const STUCK_STATION: &str = "cq-spb-aq-0007";

/// 2026-07-15T06:00:00+08:00, the script's origin.
pub const SCRIPT_START_MS: i64 = 1_784_066_400_000;
const HOUR_MS: f64 = 3_600_000.0;

struct District {
    name: &'static str,
    /// Its Chinese name, as residents and the bureau write it.
    name_zh: &'static str,
    code: &'static str,
    short: &'static str,
    lat: f64,
    lon: f64,
    streets: [&'static str; 3],
    streets_zh: [&'static str; 3],
}

const DISTRICTS: [District; 6] = [
    District {
        name: "Yuzhong",
        name_zh: "渝中区",
        code: "500103",
        short: "yz",
        lat: 29.556,
        lon: 106.568,
        streets: ["Jiefangbei", "Chaotianmen", "Daxigou"],
        streets_zh: ["解放碑街道", "朝天门街道", "大溪沟街道"],
    },
    District {
        name: "Jiangbei",
        name_zh: "江北区",
        code: "500105",
        short: "jb",
        lat: 29.606,
        lon: 106.574,
        streets: ["Guanyinqiao", "Wulidian", "Huaxinjie"],
        streets_zh: ["观音桥街道", "五里店街道", "华新街街道"],
    },
    District {
        name: "Shapingba",
        name_zh: "沙坪坝区",
        code: "500106",
        short: "spb",
        lat: 29.541,
        lon: 106.456,
        streets: ["Xiaolongkan", "Tianxingqiao", "Ciqikou"],
        streets_zh: ["小龙坎街道", "天星桥街道", "磁器口街道"],
    },
    District {
        name: "Jiulongpo",
        name_zh: "九龙坡区",
        code: "500107",
        short: "jlp",
        lat: 29.502,
        lon: 106.511,
        streets: ["Yangjiaping", "Shiqiaopu", "Xiejiawan"],
        streets_zh: ["杨家坪街道", "石桥铺街道", "谢家湾街道"],
    },
    District {
        name: "Nan'an",
        name_zh: "南岸区",
        code: "500108",
        short: "na",
        lat: 29.523,
        lon: 106.644,
        streets: ["Nanping", "Tongyuanju", "Danzishi"],
        streets_zh: ["南坪街道", "铜元局街道", "弹子石街道"],
    },
    District {
        name: "Yubei",
        name_zh: "渝北区",
        code: "500112",
        short: "yb",
        lat: 29.718,
        lon: 106.631,
        streets: ["Longxi", "Shuangfengqiao", "Huilongba"],
        streets_zh: ["龙溪街道", "双凤桥街道", "回龙坝街道"],
    },
];

/// Area names per language: 渝北区 / Yubei District, 龙溪街道 / Longxi
/// Subdistrict, 第1网格 / grid 1 (within its street).
fn names(d: &District, street: usize, grid: usize) -> std::collections::BTreeMap<String, String> {
    [
        ("district@zh-CN", d.name_zh.to_owned()),
        ("district@en", format!("{} District", d.name)),
        ("street@zh-CN", d.streets_zh[street].to_owned()),
        ("street@en", format!("{} Subdistrict", d.streets[street])),
        ("grid@zh-CN", format!("第{grid}网格")),
        ("grid@en", format!("grid {grid}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The city's sensor registry.
pub fn sensors() -> Vec<Sensor> {
    let mut out = Vec::new();
    for d in &DISTRICTS {
        let mut aq = 0;
        let mut grid_no = 0;
        for (si, street) in d.streets.iter().enumerate() {
            for gi in 0..4 {
                grid_no += 1;
                let grid = format!("cq-{}-g{grid_no:02}", d.short);
                let glat = d.lat + (si as f64 - 1.0) * 0.012 + (gi as f64 - 1.5) * 0.004;
                let glon = d.lon + (gi as f64 - 1.5) * 0.006;
                let mut add = |id: String, kind: &str, dlat: f64, dlon: f64| {
                    out.push(Sensor {
                        sensor_id: id,
                        kind: kind.into(),
                        district: d.name.into(),
                        district_code: d.code.into(),
                        street: (*street).into(),
                        grid: grid.clone(),
                        lat: ((glat + dlat) * 1e5).round() / 1e5,
                        lon: ((glon + dlon) * 1e5).round() / 1e5,
                        names: names(d, si, gi + 1),
                    });
                };
                for k in 0..3 {
                    aq += 1;
                    add(
                        format!("cq-{}-aq-{aq:04}", d.short),
                        "air",
                        0.001 * k as f64,
                        -0.001 * k as f64,
                    );
                }
                add(
                    format!("cq-{}-ns-{grid_no:04}", d.short),
                    "noise",
                    0.0005,
                    0.0005,
                );
                if gi == 0 {
                    add(
                        format!("cq-{}-wl-{:04}", d.short, si + 1),
                        "water",
                        -0.0008,
                        0.0,
                    );
                }
            }
        }
    }
    out
}

pub fn registry() -> SensorRegistry {
    SensorRegistry::new(sensors()).expect("synthetic sensor ids are unique")
}

/// The registry as CSV (the format of `deploy/examples/sensors.csv`).
pub fn registry_csv() -> String {
    let mut s = String::from(
        "sensor_id,kind,district,district@zh-CN,district@en,district_code,\
         street,street@zh-CN,street@en,grid,grid@zh-CN,grid@en,lat,lon\n",
    );
    for x in sensors() {
        let n = |k: &str| x.names.get(k).cloned().unwrap_or_default();
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            x.sensor_id,
            x.kind,
            x.district,
            n("district@zh-CN"),
            n("district@en"),
            x.district_code,
            x.street,
            n("street@zh-CN"),
            n("street@en"),
            x.grid,
            n("grid@zh-CN"),
            n("grid@en"),
            x.lat,
            x.lon
        ));
    }
    s
}

/// Hourly PM2.5 targets of the episode, at the middle of each hour from 06:00.
const EPISODE_PM25: [f64; 10] = [
    35.0, 90.0, 130.0, 175.0, 300.0, 200.0, 135.0, 95.0, 40.0, 35.0,
];

fn interp(points: &[f64], hours: f64) -> f64 {
    // points[k] is the value at hour k + 0.5
    let x = (hours - 0.5).clamp(0.0, (points.len() - 1) as f64);
    let k = x.floor() as usize;
    let f = x - k as f64;
    let next = points.get(k + 1).copied().unwrap_or(points[k]);
    points[k] * (1.0 - f) + next * f
}

/// How strongly the PM2.5 episode hits a sensor (1 = full strength).
fn episode_weight(s: &Sensor) -> f64 {
    match (s.district.as_str(), s.street.as_str()) {
        ("Yubei", "Longxi") => 1.0,
        ("Yubei", _) => 0.75,
        ("Jiangbei", _) => 0.45,
        _ => 0.0,
    }
}

fn drain_peak(s: &Sensor) -> f64 {
    match s.district.as_str() {
        "Yuzhong" => 2.8,
        "Nan'an" => 2.1,
        _ => 0.0,
    }
}

/// Generates the script's readings as Kafka message payloads.
pub struct City {
    sensors: Vec<Sensor>,
    /// Per-sensor constant bias, so sensors are not identical.
    bias: Vec<f64>,
    rng: SmallRng,
    emitted: u64,
    /// Every `bad_every`-th message is replaced by a malformed one (0 = never).
    pub bad_every: u64,
    /// Added to each reading's timestamp: the script plays from
    /// [`SCRIPT_START_MS`], its readings can be stamped at another time.
    pub stamp_offset_ms: i64,
}

impl City {
    pub fn new(seed: u64) -> Self {
        let sensors = sensors();
        let mut rng = SmallRng::seed_from_u64(seed);
        let bias = sensors
            .iter()
            .map(|_| rng.random_range(-3.0..3.0))
            .collect();
        City {
            sensors,
            bias,
            rng,
            emitted: 0,
            bad_every: 2_500,
            stamp_offset_ms: 0,
        }
    }

    /// Messages (key, payload) for one reporting minute starting at
    /// `minute_ms`: every sensor reports once, at a jittered time inside
    /// the minute, so arrival order is not event-time order.
    pub fn minute(&mut self, minute_ms: i64) -> Vec<(String, String)> {
        let mut out = Vec::with_capacity(self.sensors.len());
        let hours = (minute_ms - SCRIPT_START_MS) as f64 / HOUR_MS;
        for i in 0..self.sensors.len() {
            let ts = minute_ms + self.rng.random_range(0..60_000);
            if hours >= 1.5 && self.sensors[i].sensor_id == SILENT_STATION {
                continue;
            }
            self.emitted += 1;
            let stamp = ts + self.stamp_offset_ms;
            if self.bad_every > 0 && self.emitted.is_multiple_of(self.bad_every) {
                let s = &self.sensors[i];
                out.push((
                    s.district_code.clone(),
                    format!(
                        r#"{{"sensor_id":"{}","ts":{stamp},"metric":"pm25","value":"#,
                        s.sensor_id
                    ),
                ));
                continue;
            }
            let payload = self.payload(i, ts, stamp);
            // Keyed by district: one instance sees whole districts.
            out.push((self.sensors[i].district_code.clone(), payload));
        }
        out
    }

    /// Sensor `i`'s message at script time `ts`, stamped `stamp`.
    fn payload(&mut self, i: usize, ts: i64, stamp: i64) -> String {
        let s = &self.sensors[i];
        let hours = (ts - SCRIPT_START_MS) as f64 / HOUR_MS;
        let noise = self.rng.random_range(-1.0..1.0) + self.rng.random_range(-1.0..1.0);
        let bias = self.bias[i];
        match s.kind.as_str() {
            "air" => {
                let base = 32.0 + 6.0 * (hours * std::f64::consts::PI / 12.0).sin() + bias;
                let excess = (interp(&EPISODE_PM25, hours) - 35.0).max(0.0) * episode_weight(s);
                let mut pm25 = (base + excess + 4.0 * noise).max(1.0);
                if hours >= 1.0 && s.sensor_id == STUCK_STATION {
                    pm25 = 38.0;
                }
                let pm10 = pm25 * 1.55 + 8.0 + 3.0 * noise;
                let no2 = 28.0 + 0.15 * excess + 3.0 * noise + bias;
                format!(
                    r#"{{"sensor_id":"{}","ts":{stamp},"values":{{"pm25":{pm25:.1},"pm10":{pm10:.1},"no2":{no2:.1}}}}}"#,
                    s.sensor_id
                )
            }
            "water" => {
                let storm = drain_peak(s) * bump(hours, 2.0, 5.0, 8.0);
                let level = 0.45 + storm + 0.02 * noise + bias * 0.01;
                single(&s.sensor_id, stamp, "level_m", level, "m")
            }
            _ => {
                let works = if s.street == "Ciqikou" {
                    19.5 * bump(hours, 3.0, 3.6, 4.5)
                } else {
                    0.0
                };
                let db = 57.0
                    + 3.0 * (hours * std::f64::consts::PI / 12.0).sin()
                    + works
                    + 1.5 * noise
                    + bias * 0.3;
                single(&s.sensor_id, stamp, "noise_db", db, "dB(A)")
            }
        }
    }
}

/// 0 before `rise`, 1 at `peak` (linear), back to 0 at `fall`.
fn bump(h: f64, rise: f64, peak: f64, fall: f64) -> f64 {
    if h <= rise || h >= fall {
        0.0
    } else if h <= peak {
        (h - rise) / (peak - rise)
    } else {
        (fall - h) / (fall - peak)
    }
}

/// The single-metric message form, with an RFC 3339 timestamp.
fn single(sensor_id: &str, ts: i64, metric: &str, value: f64, unit: &str) -> String {
    let time = yujing_sinks::TimeFormat::new(8 * 3_600_000).rfc3339(ts);
    format!(
        r#"{{"sensor_id":"{sensor_id}","ts":"{time}","metric":"{metric}","value":{value:.2},"unit":"{unit}"}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn city_shape() {
        let s = sensors();
        assert_eq!(s.len(), 306);
        assert_eq!(s.iter().filter(|x| x.kind == "air").count(), 216);
        assert_eq!(s.iter().filter(|x| x.kind == "water").count(), 18);
        registry();
    }

    #[test]
    fn deploy_example_registry_is_the_demo_city() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/examples/sensors.csv");
        if std::env::var_os("YUJING_BLESS").is_some() {
            std::fs::write(&path, registry_csv()).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            on_disk,
            registry_csv(),
            "regenerate with YUJING_BLESS=1 cargo test -p yujing deploy_example_registry"
        );
    }

    #[test]
    fn every_message_decodes_except_the_planted_bad_ones() {
        let mut city = City::new(7);
        city.bad_every = 100;
        let msgs = city.minute(SCRIPT_START_MS);
        let bad = msgs
            .iter()
            .filter(|(_, p)| yujing_ingest::decode_readings(p.as_bytes()).is_err())
            .count();
        assert_eq!(bad, 3);
        assert_eq!(msgs.len(), 306);
    }

    #[test]
    fn episode_targets_are_the_hourly_means() {
        // Mean of the interpolated profile over each hour, by numeric integration.
        let mean = |k: usize| {
            (0..600)
                .map(|i| interp(&EPISODE_PM25, k as f64 + i as f64 / 600.0))
                .sum::<f64>()
                / 600.0
        };
        let means: Vec<f64> = (0..10).map(mean).collect();
        // blue (75), yellow (115), orange (150), red (250) in turn, then back.
        let bands = [0.0, 75.0, 115.0, 150.0, 250.0];
        let grade = |v: f64| bands.iter().rposition(|b| v > *b).unwrap();
        let grades: Vec<usize> = means.iter().map(|v| grade(*v)).collect();
        assert_eq!(grades, [0, 1, 2, 3, 4, 3, 2, 1, 0, 0], "{means:?}");
    }
}
