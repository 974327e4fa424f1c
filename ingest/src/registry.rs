//! The sensor registry: where each sensor stands in the city.
//!
//! CSV (header row required):
//! ```text
//! sensor_id,kind,district,district_code,street,grid,lat,lon
//! cq-yb-aq-0001,air,Yubei,500112,Longxi,cq-yb-g01,29.59,106.52
//! ```
//! or YAML: `sensors: [{sensor_id: …, kind: …, …}]`. Unknown columns are
//! refused so a typo in a header is caught at start.
//!
//! Area names people read, per language, are optional columns
//! `district@zh-CN`, `street@zh-CN`, `grid@zh-CN` (any language tag; in
//! YAML, `names: {district@zh-CN: 渝北区}`). Without them warnings name
//! an area by its key.

use std::collections::{BTreeMap, HashMap};

use rustc_hash::FxHashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::StringArray;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;

/// One physical sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    pub sensor_id: String,
    /// What it measures, e.g. `air`, `water`, `noise`, `weather`.
    pub kind: String,
    /// District name, e.g. `Yubei`.
    pub district: String,
    /// GB/T 2260 administrative division code, e.g. `500112`.
    pub district_code: String,
    /// Street (街道) or town.
    pub street: String,
    /// Grid cell (网格) id, the smallest unit of urban governance.
    pub grid: String,
    pub lat: f64,
    pub lon: f64,
    /// Names per language, keyed `district@zh-CN`, `street@en`, `grid@zh-CN`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, String>,
}

/// Levels whose areas may carry names per language.
pub const NAMED_LEVELS: [AreaLevel; 3] = [AreaLevel::District, AreaLevel::Street, AreaLevel::Grid];

/// The `names` key of `level`'s name in `language`: `district@zh-CN`.
pub fn name_key(level: AreaLevel, language: &str) -> String {
    format!("{}@{language}", level.as_str())
}

/// Why a `names` key is not `district@…`, `street@…` or `grid@…`.
fn check_name_key(key: &str) -> Result<(), String> {
    match key.split_once('@') {
        Some((level, lang))
            if !lang.is_empty() && NAMED_LEVELS.iter().any(|l| l.as_str() == level) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "unknown name column {key:?}: expected district@<language>, street@<language> or grid@<language>, e.g. district@zh-CN"
        )),
    }
}

/// The level at which readings are grouped into one warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AreaLevel {
    Sensor,
    Grid,
    Street,
    District,
}

impl AreaLevel {
    /// Column holding this level's key in a window batch.
    pub fn column(self) -> &'static str {
        match self {
            AreaLevel::Sensor => "sensor_id",
            AreaLevel::Grid => "grid",
            AreaLevel::Street => "street",
            AreaLevel::District => "district",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::Sensor => "sensor",
            AreaLevel::Grid => "grid",
            AreaLevel::Street => "street",
            AreaLevel::District => "district",
        }
    }

    /// The level [`AreaLevel::as_str`] names (as alert and response
    /// messages carry it).
    pub fn parse(name: &str) -> Option<Self> {
        [
            AreaLevel::Sensor,
            AreaLevel::Grid,
            AreaLevel::Street,
            AreaLevel::District,
        ]
        .into_iter()
        .find(|l| l.as_str() == name)
    }
}

/// What is known of an area (a sensor, grid, street or district): its place
/// in the hierarchy and the centre of its sensors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Area {
    pub district: String,
    pub district_code: String,
    /// Set for grids and sensors (and streets): the street they lie in.
    pub street: Option<String>,
    /// Set for grids and sensors.
    pub grid: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// Distance from the centre to the farthest sensor, in km (0 for one sensor).
    pub radius_km: f64,
    pub sensors: usize,
    /// Names per language of the area and the areas above it (as
    /// [`Sensor::names`]).
    pub names: BTreeMap<String, String>,
}

impl Area {
    /// The name of this area's `level` part (its district, street or grid)
    /// in `language`, if the registry gives one.
    pub fn name(&self, level: AreaLevel, language: &str) -> Option<&str> {
        self.names
            .get(&name_key(level, language))
            .map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlRegistry {
    sensors: Vec<Sensor>,
}

/// All sensors, indexed by id, with Arrow columns for enrichment.
#[derive(Debug, Clone)]
pub struct SensorRegistry {
    sensors: Arc<Vec<Sensor>>,
    /// Looked up once per reading: Fx hashing (ids are not attacker-chosen
    /// keys of a long-lived map that grows from input).
    index: Arc<FxHashMap<String, u32>>,
    columns: Arc<RegistryColumns>,
    areas: Arc<HashMap<(AreaLevel, String), Area>>,
    /// Per level (sensor, grid, street, district), each sensor's group as
    /// the index of the group's first sensor: a group id without strings.
    groups: Arc<[Vec<u32>; 4]>,
}

/// One Arrow array per attribute, row `i` = sensor index `i`.
#[derive(Debug)]
pub struct RegistryColumns {
    pub sensor_id: StringArray,
    pub grid: StringArray,
    pub street: StringArray,
    pub district: StringArray,
}

impl SensorRegistry {
    /// Load a `.csv`, `.yaml` or `.yml` registry.
    pub fn load(path: &Path) -> Result<Self, IngestError> {
        let text = std::fs::read_to_string(path).map_err(|source| IngestError::RegistryIo {
            path: path.to_owned(),
            source,
        })?;
        let format_err = |message: String| IngestError::RegistryFormat {
            path: path.to_owned(),
            message,
        };
        let sensors = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => {
                serde_yaml_ng::from_str::<YamlRegistry>(&text)
                    .map_err(|e| format_err(e.to_string()))?
                    .sensors
            }
            _ => parse_csv(&text).map_err(format_err)?,
        };
        Self::new(sensors).map_err(format_err)
    }

    /// Build from a list; sensor ids must be unique.
    pub fn new(sensors: Vec<Sensor>) -> Result<Self, String> {
        let mut index = FxHashMap::with_capacity_and_hasher(sensors.len(), Default::default());
        for (i, s) in sensors.iter().enumerate() {
            if index.insert(s.sensor_id.clone(), i as u32).is_some() {
                return Err(format!("sensor {:?} is listed twice", s.sensor_id));
            }
            for key in s.names.keys() {
                check_name_key(key).map_err(|e| format!("sensor {:?}: {e}", s.sensor_id))?;
            }
        }
        let col = |f: fn(&Sensor) -> &str| StringArray::from_iter_values(sensors.iter().map(f));
        let columns = RegistryColumns {
            sensor_id: col(|s| &s.sensor_id),
            grid: col(|s| &s.grid),
            street: col(|s| &s.street),
            district: col(|s| &s.district),
        };
        let areas = build_areas(&sensors);
        let group_ids = |key: fn(&Sensor) -> &str| {
            let mut first: HashMap<&str, u32> = HashMap::new();
            sensors
                .iter()
                .enumerate()
                .map(|(i, s)| *first.entry(key(s)).or_insert(i as u32))
                .collect::<Vec<u32>>()
        };
        let groups = [
            (0..sensors.len() as u32).collect(),
            group_ids(|s| &s.grid),
            group_ids(|s| &s.street),
            group_ids(|s| &s.district),
        ];
        Ok(SensorRegistry {
            sensors: Arc::new(sensors),
            index: Arc::new(index),
            columns: Arc::new(columns),
            areas: Arc::new(areas),
            groups: Arc::new(groups),
        })
    }

    /// Index of a sensor, used as its row in [`columns`](Self::columns).
    pub fn index_of(&self, sensor_id: &str) -> Option<u32> {
        self.index.get(sensor_id).copied()
    }

    /// The group of `sensor` at `level`, as a number: equal for sensors of
    /// the same grid (street, district). [`group_key`](Self::group_key)
    /// gives its name.
    pub fn group_index(&self, level: AreaLevel, sensor: u32) -> u32 {
        self.groups[level as usize][sensor as usize]
    }

    /// The name of a group index at `level`.
    pub fn group_key(&self, level: AreaLevel, group: u32) -> &str {
        let c = &self.columns;
        let column = match level {
            AreaLevel::Sensor => &c.sensor_id,
            AreaLevel::Grid => &c.grid,
            AreaLevel::Street => &c.street,
            AreaLevel::District => &c.district,
        };
        column.value(group as usize)
    }

    pub fn columns(&self) -> &RegistryColumns {
        &self.columns
    }

    pub fn sensors(&self) -> &[Sensor] {
        &self.sensors
    }

    pub fn get(&self, sensor_id: &str) -> Option<&Sensor> {
        self.index_of(sensor_id).map(|i| &self.sensors[i as usize])
    }

    /// The area a group key names at a level, e.g. grid `cq-yb-g01`.
    pub fn area(&self, level: AreaLevel, key: &str) -> Option<&Area> {
        self.areas.get(&(level, key.to_owned()))
    }

    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }
}

/// Rows of a CSV registry: the `Sensor` columns by name, and the
/// `<level>@<language>` name columns beside them.
fn parse_csv(text: &str) -> Result<Vec<Sensor>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let mut base = csv::StringRecord::new();
    let mut base_at = Vec::new();
    let mut names_at = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if h.contains('@') {
            check_name_key(h).map_err(|e| format!("header: {e}"))?;
            names_at.push((i, h.to_owned()));
        } else {
            base.push_field(h);
            base_at.push(i);
        }
    }
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| e.to_string())?;
        let line = row.position().map_or(0, |p| p.line());
        let fields: csv::StringRecord = base_at.iter().map(|&i| row.get(i).unwrap_or("")).collect();
        let mut sensor: Sensor = fields
            .deserialize(Some(&base))
            .map_err(|e| format!("line {line}: {e}"))?;
        for (i, key) in &names_at {
            match row.get(*i) {
                Some(name) if !name.is_empty() => {
                    sensor.names.insert(key.clone(), name.to_owned());
                }
                _ => {}
            }
        }
        out.push(sensor);
    }
    Ok(out)
}

fn build_areas(sensors: &[Sensor]) -> HashMap<(AreaLevel, String), Area> {
    let mut members: HashMap<(AreaLevel, String), Vec<&Sensor>> = HashMap::new();
    for s in sensors {
        members
            .entry((AreaLevel::Sensor, s.sensor_id.clone()))
            .or_default()
            .push(s);
        members
            .entry((AreaLevel::Grid, s.grid.clone()))
            .or_default()
            .push(s);
        members
            .entry((AreaLevel::Street, s.street.clone()))
            .or_default()
            .push(s);
        members
            .entry((AreaLevel::District, s.district.clone()))
            .or_default()
            .push(s);
    }
    members
        .into_iter()
        .map(|((level, key), group)| {
            let first = group[0];
            let n = group.len() as f64;
            let lat = group.iter().map(|s| s.lat).sum::<f64>() / n;
            let lon = group.iter().map(|s| s.lon).sum::<f64>() / n;
            let radius_km = group
                .iter()
                .map(|s| approx_km(lat, lon, s.lat, s.lon))
                .fold(0.0, f64::max);
            let area = Area {
                district: first.district.clone(),
                district_code: first.district_code.clone(),
                street: (level != AreaLevel::District).then(|| first.street.clone()),
                grid: matches!(level, AreaLevel::Grid | AreaLevel::Sensor)
                    .then(|| first.grid.clone()),
                lat,
                lon,
                radius_km,
                sensors: group.len(),
                names: first.names.clone(),
            };
            ((level, key), area)
        })
        .collect()
}

/// Equirectangular distance; accurate to well under 1% at city scale.
fn approx_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let r = 6371.0;
    let x = (lon2 - lon1).to_radians() * ((lat1 + lat2) / 2.0).to_radians().cos();
    let y = (lat2 - lat1).to_radians();
    r * (x * x + y * y).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_area_level_is_read_back_from_its_name() {
        for l in [
            AreaLevel::Sensor,
            AreaLevel::Grid,
            AreaLevel::Street,
            AreaLevel::District,
        ] {
            assert_eq!(AreaLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(AreaLevel::parse("city"), None);
    }

    const CSV: &str = "sensor_id,kind,district,district_code,street,grid,lat,lon\n\
        a,air,Yubei,500112,Longxi,g1,29.60,106.50\n\
        b,air,Yubei,500112,Longxi,g1,29.62,106.50\n\
        c,water,Yuzhong,500103,Jiefangbei,g9,29.55,106.57\n";

    fn write(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("yujing-reg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn loads_csv_and_indexes_areas() {
        let reg = SensorRegistry::load(&write("s.csv", CSV)).unwrap();
        assert_eq!(reg.len(), 3);
        assert_eq!(reg.index_of("c"), Some(2));
        assert_eq!(reg.columns().grid.value(1), "g1");
        let g1 = reg.area(AreaLevel::Grid, "g1").unwrap();
        assert_eq!(g1.sensors, 2);
        assert_eq!(g1.district_code, "500112");
        assert!((g1.lat - 29.61).abs() < 1e-9);
        assert!(g1.radius_km > 1.0 && g1.radius_km < 1.2, "{}", g1.radius_km);
        let d = reg.area(AreaLevel::District, "Yuzhong").unwrap();
        assert_eq!(d.street, None);
    }

    #[test]
    fn reads_area_names_per_language() {
        let csv = "sensor_id,kind,district,district@zh-CN,district_code,street,street@zh-CN,grid,lat,lon\n\
            a,air,Yubei,渝北区,500112,Longxi,龙溪街道,g1,29.60,106.50\n";
        let reg = SensorRegistry::load(&write("names.csv", csv)).unwrap();
        let g1 = reg.area(AreaLevel::Grid, "g1").unwrap();
        assert_eq!(g1.name(AreaLevel::District, "zh-CN"), Some("渝北区"));
        assert_eq!(g1.name(AreaLevel::Street, "zh-CN"), Some("龙溪街道"));
        assert_eq!(g1.name(AreaLevel::Grid, "zh-CN"), None);
        assert_eq!(g1.name(AreaLevel::District, "en"), None);
        let bad = "sensor_id,kind,district,district_code,street,grid,lat,lon,city@zh-CN\n";
        let e = SensorRegistry::load(&write("badnames.csv", bad)).unwrap_err();
        assert!(e.to_string().contains("city@zh-CN"), "{e}");
    }

    #[test]
    fn loads_yaml() {
        let yaml = "sensors:\n  - {sensor_id: a, kind: air, district: Yubei, district_code: '500112', street: Longxi, grid: g1, lat: 29.6, lon: 106.5}\n";
        let reg = SensorRegistry::load(&write("s.yaml", yaml)).unwrap();
        assert_eq!(reg.get("a").unwrap().street, "Longxi");
    }

    #[test]
    fn refuses_duplicates_and_bad_rows_with_line() {
        let dup = format!("{CSV}a,air,Yubei,500112,Longxi,g1,29.6,106.5\n");
        let e = SensorRegistry::load(&write("dup.csv", &dup)).unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        let bad = "sensor_id,kind,district,district_code,street,grid,lat,lon\na,air,Yubei,500112,Longxi,g1,north,106.5\n";
        let e = SensorRegistry::load(&write("bad.csv", bad)).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
