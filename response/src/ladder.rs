//! The ladder a warning climbs: grid → community (where the file names
//! communities) → street → district → city, from the warning's own level.

use serde::{Deserialize, Serialize};
use yujing_ingest::{AreaLevel, SensorRegistry};

use crate::units::{UnitLevel, Units};

/// One rung: a level and the area at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    pub level: UnitLevel,
    /// Grid id, community, street or district name; empty for the city.
    pub area: String,
    /// The district's division code too, at the district rung.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Rung {
    fn new(level: UnitLevel, area: &str) -> Self {
        Rung {
            level,
            area: area.to_owned(),
            code: None,
        }
    }
}

/// The rungs above a warning of `level` on group `key`, its own first.
/// Unknown groups start at the city.
pub fn ladder(registry: &SensorRegistry, units: &Units, level: AreaLevel, key: &str) -> Vec<Rung> {
    let mut out = Vec::new();
    if let Some(area) = registry.area(level, key) {
        if level <= AreaLevel::Grid
            && let Some(grid) = &area.grid
        {
            out.push(Rung::new(UnitLevel::Grid, grid));
            if let Some(c) = units.community_of.get(grid) {
                out.push(Rung::new(UnitLevel::Community, c));
            }
        }
        if level <= AreaLevel::Street
            && let Some(street) = &area.street
        {
            out.push(Rung::new(UnitLevel::Street, street));
        }
        out.push(Rung {
            code: Some(area.district_code.clone()),
            ..Rung::new(UnitLevel::District, &area.district)
        });
    }
    out.push(Rung::new(UnitLevel::City, ""));
    out
}

/// Whether `rung` is one of `unit_areas`.
pub fn covers(unit_areas: &[String], rung: &Rung) -> bool {
    rung.level == UnitLevel::City
        || unit_areas
            .iter()
            .any(|a| *a == rung.area || rung.code.as_deref() == Some(a))
}
