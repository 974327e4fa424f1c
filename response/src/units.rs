//! Who is responsible: the units of the city's grid governance and the
//! areas each answers for, from a YAML file checked like the rules (every
//! problem at once, `file:line:column`).
//!
//! ```yaml
//! units:
//!   - id: yb-g01
//!     name: Yubei grid 01 team
//!     level: grid                  # grid | community | street | district | city | department
//!     areas: [cq-yb-g01]           # grid ids, community names, street names, district names or codes
//!     token_env: YUJING_TOKEN_YB_G01
//!   - id: yb-longxi
//!     level: street
//!     areas: [Longxi]
//!   - id: yb-eeb
//!     name: Yubei environmental enforcement
//!     level: department
//!     areas: [Yubei]
//!     categories: [env]
//!   - id: city-centre
//!     level: city
//! communities:                     # the optional level between grid and street
//!   - name: Longxi-1
//!     grids: [cq-yb-g01, cq-yb-g02]
//! deadlines: { red: { acknowledge: 3m } }
//! ```
//!
//! A unit answers for warnings of the categories it lists (all when none
//! are listed) in its areas; `route` labels are put on the alerts assigned
//! to it, so a sink's `route: { labels: … }` reaches it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use yujing_ingest::{AreaLevel, SensorRegistry};
use yujing_rules::locate::locate_top_key;
use yujing_rules::{Problem, yaml_error_position};

use crate::deadlines::{DeadlineOverrides, Deadlines};
use crate::error::ResponseError;

/// A rung of the ladder, lowest first; departments stand beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitLevel {
    Grid,
    Community,
    Street,
    District,
    City,
    /// A specialist department (enforcement, drainage, sensor maintenance)
    /// a unit refers warnings to.
    Department,
}

impl UnitLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            UnitLevel::Grid => "grid",
            UnitLevel::Community => "community",
            UnitLevel::Street => "street",
            UnitLevel::District => "district",
            UnitLevel::City => "city",
            UnitLevel::Department => "department",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unit {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub level: UnitLevel,
    /// Areas at its level (none for the city).
    #[serde(default)]
    pub areas: Vec<String>,
    /// Warning categories it handles (`env`, `met`, `infra`, `data`); all
    /// when empty.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Labels put on the alerts assigned to it.
    #[serde(default)]
    pub route: BTreeMap<String, String>,
    /// Environment variable holding its API token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding its API token (relative to the responsibility file).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Unit {
    pub fn handles(&self, category: &str) -> bool {
        self.categories.is_empty() || self.categories.iter().any(|c| c == category)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Community {
    pub name: String,
    pub grids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    units: Vec<Unit>,
    #[serde(default)]
    communities: Vec<Community>,
    #[serde(default)]
    deadlines: DeadlineOverrides,
}

/// The responsibility registry, checked against the sensor registry.
#[derive(Debug, Clone)]
pub struct Units {
    pub path: PathBuf,
    pub units: Vec<Unit>,
    /// Grid → community, where communities are given.
    pub community_of: BTreeMap<String, String>,
    pub deadlines: Deadlines,
    /// Unit id → index in `units` (ids are unique: the file is refused
    /// otherwise). Looked up for every response change and every open
    /// response at each tick.
    by_id: std::collections::HashMap<String, usize>,
}

const CATEGORIES: [&str; 4] = ["env", "met", "infra", "data"];

impl Units {
    pub fn load(path: &Path, registry: &SensorRegistry) -> Result<Self, ResponseError> {
        let text = std::fs::read_to_string(path).map_err(|source| ResponseError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, registry)
    }

    /// Parse and check `text`; `path` names the file in problems.
    pub fn parse(
        path: &Path,
        text: &str,
        registry: &SensorRegistry,
    ) -> Result<Self, ResponseError> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| {
            let (line, column, message) = yaml_error_position(&e);
            ResponseError::Rejected(vec![Problem {
                path: path.to_owned(),
                line,
                column,
                rule: None,
                message,
            }])
        })?;
        let mut problems = Vec::new();
        // Units are placed by position (ids may repeat): the n-th item.
        let mut at = |unit: (usize, &str), key: &str, message: String| {
            let (n, unit) = unit;
            let (line, column) = if unit.is_empty() {
                locate_top_key(text, key)
            } else {
                locate_in_nth_unit(text, n, key)
            };
            problems.push(Problem {
                path: path.to_owned(),
                line,
                column,
                rule: None,
                message: if unit.is_empty() {
                    message
                } else {
                    format!("unit {unit:?}: {message}")
                },
            });
        };
        let known = Known::of(registry, &file.communities);
        let mut ids = BTreeSet::new();
        for (n, u) in file.units.iter().enumerate() {
            let here = (n, u.id.as_str());
            if !ids.insert(u.id.as_str()) {
                at(here, "id", "a second unit with this id".into());
            }
            if u.level == UnitLevel::City && !u.areas.is_empty() {
                at(
                    here,
                    "areas",
                    "the city unit covers the whole city: no `areas`".into(),
                );
            }
            if u.level != UnitLevel::City && u.areas.is_empty() {
                at(
                    here,
                    "areas",
                    format!("a {} unit needs `areas`", u.level.as_str()),
                );
            }
            for a in &u.areas {
                if !known.has(u.level, a) {
                    at(here, "areas", known.unknown(u.level, a));
                }
            }
            for c in u
                .categories
                .iter()
                .filter(|c| !CATEGORIES.contains(&c.as_str()))
            {
                at(
                    here,
                    "categories",
                    format!("`{c}` is not a category ({})", CATEGORIES.join(", ")),
                );
            }
            if u.level == UnitLevel::Department && u.categories.is_empty() {
                at(
                    here,
                    "categories",
                    "a department names the categories it handles".into(),
                );
            }
            if u.token_env.is_some() && u.token_file.is_some() {
                at(
                    here,
                    "token_file",
                    "give token_env or token_file, not both".into(),
                );
            }
        }
        if !file.units.iter().any(|u| u.level == UnitLevel::City) {
            at(
                (0, ""),
                "units",
                "no `level: city` unit: escalation must end somewhere".into(),
            );
        }
        let mut community_of = BTreeMap::new();
        for c in &file.communities {
            for g in &c.grids {
                if registry.area(AreaLevel::Grid, g).is_none() {
                    at(
                        (0, ""),
                        "communities",
                        format!(
                            "community {:?}: grid {g:?} is not in the sensor registry",
                            c.name
                        ),
                    );
                } else if let Some(other) = community_of.insert(g.clone(), c.name.clone()) {
                    at(
                        (0, ""),
                        "communities",
                        format!("grid {g:?} is in communities {other:?} and {:?}", c.name),
                    );
                }
            }
        }
        let deadlines = match Deadlines::with(&file.deadlines) {
            Ok(d) => Some(d),
            Err(bad) => {
                for (grade, step, message) in bad {
                    at(
                        (0, ""),
                        "deadlines",
                        format!("deadlines.{grade}.{}: {message}", step.as_str()),
                    );
                }
                None
            }
        };
        if !problems.is_empty() {
            problems.sort_by_key(|p| (p.line, p.column));
            return Err(ResponseError::Rejected(problems));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut units = file.units;
        for u in &mut units {
            if let Some(f) = &mut u.token_file {
                *f = base.join(&*f);
            }
        }
        let by_id = units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
        Ok(Units {
            path: path.to_owned(),
            units,
            by_id,
            community_of,
            deadlines: deadlines.expect("no problems"),
        })
    }

    pub fn get(&self, id: &str) -> Option<&Unit> {
        self.by_id.get(id).map(|i| &self.units[*i])
    }
}

/// The areas the sensor registry (and the communities) know, per level.
struct Known {
    grids: BTreeSet<String>,
    communities: BTreeSet<String>,
    streets: BTreeSet<String>,
    districts: BTreeSet<String>,
}

impl Known {
    fn of(registry: &SensorRegistry, communities: &[Community]) -> Self {
        let s = registry.sensors();
        Known {
            grids: s.iter().map(|x| x.grid.clone()).collect(),
            communities: communities.iter().map(|c| c.name.clone()).collect(),
            streets: s.iter().map(|x| x.street.clone()).collect(),
            districts: s
                .iter()
                .flat_map(|x| [x.district.clone(), x.district_code.clone()])
                .collect(),
        }
    }

    fn set(&self, level: UnitLevel) -> Option<&BTreeSet<String>> {
        match level {
            UnitLevel::Grid => Some(&self.grids),
            UnitLevel::Community => Some(&self.communities),
            UnitLevel::Street => Some(&self.streets),
            // A department covers districts.
            UnitLevel::District | UnitLevel::Department => Some(&self.districts),
            UnitLevel::City => None,
        }
    }

    fn has(&self, level: UnitLevel, area: &str) -> bool {
        self.set(level).is_some_and(|s| s.contains(area))
    }

    fn unknown(&self, level: UnitLevel, area: &str) -> String {
        let what = match level {
            UnitLevel::Community => "community (see `communities:`)",
            UnitLevel::Department | UnitLevel::District => "district name or code",
            other => other.as_str(),
        };
        format!("area {area:?} is not a {what} of the sensor registry")
    }
}

/// Line and column of `key:` in the `n`-th item of `units:` (its `- `
/// line when the key is not there).
fn locate_in_nth_unit(text: &str, n: usize, key: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let Some(units) = lines.iter().position(|l| l.starts_with("units:")) else {
        return (1, 1);
    };
    let items: Vec<usize> = (units + 1..lines.len())
        .take_while(|&i| {
            lines[i].is_empty()
                || lines[i].starts_with(' ')
                || lines[i].starts_with('-')
                || lines[i].starts_with('#')
        })
        .filter(|&i| lines[i].trim_start().starts_with("- "))
        .filter(|&i| {
            let indent = lines[i].len() - lines[i].trim_start().len();
            indent
                == lines[units + 1..]
                    .iter()
                    .find(|l| l.trim_start().starts_with("- "))
                    .map_or(0, |l| l.len() - l.trim_start().len())
        })
        .collect();
    let Some(&start) = items.get(n) else {
        return (units + 1, 1);
    };
    let end = items.get(n + 1).copied().unwrap_or(lines.len());
    let prefix = format!("{key}:");
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let body = line.trim_start().trim_start_matches("- ");
        if body.starts_with(&prefix) {
            return (i + 1, line.len() - body.len() + 1);
        }
    }
    let l = lines[start];
    (
        start + 1,
        l.len() - l.trim_start().trim_start_matches("- ").len() + 1,
    )
}
