//! China's Air Quality Index, HJ 633-2012.
//!
//! IAQI = (IH − IL) / (BPH − BPL) × (C − BPL) + IL for the breakpoints
//! around the concentration C, rounded up; AQI = the highest IAQI; the
//! primary pollutant is the one with that IAQI, named when AQI > 50.
//!
//! The hourly (real-time) AQI uses seven items: SO2, NO2, CO and O3 1-hour
//! means, the O3 8-hour moving mean and the PM2.5 and PM10 24-hour moving
//! means. Concentrations in µg/m³, CO in mg/m³.
//!
//! [`ChinaIaqi`] is the DataFusion scalar UDF `china_iaqi(item, c)` the AQI
//! rules are computed with; [`iaqi`] is the same function for Rust callers.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn::{count, first_value, max, sum};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{Expr, cast, col, lit, when};
use yujing_ingest::ClosedWindow;

use crate::aggregate::{WindowAggregate, WindowAggregator, column};
use crate::error::RulesError;
use crate::model::Rule;
use crate::window_set::{PerWindow, WindowSet};

/// IAQI at each breakpoint.
const IAQI: [f64; 8] = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0];

/// Breakpoints per item (HJ 633-2012 table 1). Shorter tables stop where
/// the standard switches to another item.
fn breakpoints(item: &str) -> Option<&'static [f64]> {
    Some(match item {
        "so2_24h" => &[0.0, 50.0, 150.0, 475.0, 800.0, 1600.0, 2100.0, 2620.0],
        // Above 800 the standard uses the 24-hour IAQI (see `iaqi`).
        "so2_1h" => &[0.0, 150.0, 500.0, 650.0, 800.0],
        "no2_24h" => &[0.0, 40.0, 80.0, 180.0, 280.0, 565.0, 750.0, 940.0],
        "no2_1h" => &[0.0, 100.0, 200.0, 700.0, 1200.0, 2340.0, 3090.0, 3840.0],
        "pm10_24h" => &[0.0, 50.0, 150.0, 250.0, 350.0, 420.0, 500.0, 600.0],
        "co_24h" => &[0.0, 2.0, 4.0, 14.0, 24.0, 36.0, 48.0, 60.0],
        "co_1h" => &[0.0, 5.0, 10.0, 35.0, 60.0, 90.0, 120.0, 150.0],
        "o3_1h" => &[0.0, 160.0, 200.0, 300.0, 400.0, 800.0, 1000.0, 1200.0],
        // Above 800 the standard uses the 1-hour IAQI, a separate item.
        "o3_8h" => &[0.0, 100.0, 160.0, 215.0, 265.0, 800.0],
        "pm25_24h" => &[0.0, 35.0, 75.0, 115.0, 150.0, 250.0, 350.0, 500.0],
        _ => return None,
    })
}

/// Items of the hourly AQI: (metric, averaging, item).
pub const HOURLY_ITEMS: &[(&str, &str, &str)] = &[
    ("so2", "1h", "so2_1h"),
    ("no2", "1h", "no2_1h"),
    ("co", "1h", "co_1h"),
    ("o3", "1h", "o3_1h"),
    ("o3", "8h", "o3_8h"),
    ("pm25", "24h", "pm25_24h"),
    ("pm10", "24h", "pm10_24h"),
];

/// Metrics the AQI reads.
pub const POLLUTANTS: &[&str] = &["pm25", "pm10", "so2", "no2", "co", "o3"];

/// The IAQI of one item at concentration `c`; `None` for an unknown item,
/// a negative or non-finite concentration, or O3 8h above 800 (the O3 1h
/// item counts then). Concentrations above the last breakpoint give 500.
pub fn iaqi(item: &str, c: f64) -> Option<f64> {
    if !c.is_finite() || c < 0.0 {
        return None;
    }
    let bp = breakpoints(item)?;
    let top = bp[bp.len() - 1];
    if c > top {
        return match item {
            "o3_8h" => None,
            "so2_1h" => iaqi("so2_24h", c),
            _ => Some(500.0),
        };
    }
    let i = bp.windows(2).position(|w| c <= w[1]).unwrap_or(0);
    let (bpl, bph, il, ih) = (bp[i], bp[i + 1], IAQI[i], IAQI[i + 1]);
    Some(((ih - il) / (bph - bpl) * (c - bpl) + il).ceil())
}

/// A pollutant's name for people: `pm25_24h` → `PM2.5`.
pub fn pollutant_name(item: &str) -> &'static str {
    match item.split('_').next().unwrap_or_default() {
        "pm25" => "PM2.5",
        "pm10" => "PM10",
        "so2" => "SO2",
        "no2" => "NO2",
        "co" => "CO",
        "o3" => "O3",
        _ => "?",
    }
}

/// `china_iaqi(item Utf8, concentration Float64) → Float64`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ChinaIaqi {
    signature: Signature,
}

impl ChinaIaqi {
    pub fn udf() -> ScalarUDF {
        ScalarUDF::from(ChinaIaqi {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Float64],
                Volatility::Immutable,
            ),
        })
    }
}

impl ScalarUDFImpl for ChinaIaqi {
    fn name(&self) -> &str {
        "china_iaqi"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (Some(items), Some(values)) = (
            arrays[0].as_any().downcast_ref::<StringArray>(),
            arrays[1].as_any().downcast_ref::<Float64Array>(),
        ) else {
            return exec_err!("china_iaqi expects (Utf8, Float64)");
        };
        let out: Float64Array = (0..items.len())
            .map(|i| {
                if items.is_null(i) || values.is_null(i) {
                    None
                } else {
                    iaqi(items.value(i), values.value(i))
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}

/// The window sets an hourly AQI needs, closed by the same watermark.
pub struct AqiSets<'a> {
    pub hourly: &'a WindowSet,
    pub o3_8h: Option<&'a WindowSet>,
    pub pm_24h: Option<&'a WindowSet>,
}

/// The closed windows an hourly AQI needs, all ending at the same time.
pub struct AqiWindows<'a> {
    /// The rule's own 1-hour window: SO2, NO2, CO, O3.
    pub hourly: &'a ClosedWindow,
    /// The 8-hour moving window: O3.
    pub o3_8h: Option<&'a ClosedWindow>,
    /// The 24-hour moving window: PM2.5, PM10.
    pub pm_24h: Option<&'a ClosedWindow>,
}

impl WindowAggregator {
    /// The hourly AQI per group: IAQI per item by `china_iaqi`, AQI = the
    /// maximum, and the primary pollutant when AQI > 50.
    pub async fn aqi(
        &self,
        windows: AqiWindows<'_>,
        rule: &Rule,
    ) -> std::result::Result<Vec<WindowAggregate>, RulesError> {
        let end = windows.hourly.end_ms;
        let hourly = WindowSet::new([windows.hourly])?;
        let o3_8h = windows.o3_8h.map(|w| WindowSet::new([w])).transpose()?;
        let pm_24h = windows.pm_24h.map(|w| WindowSet::new([w])).transpose()?;
        let sets = AqiSets {
            hourly: &hourly,
            o3_8h: o3_8h.as_ref(),
            pm_24h: pm_24h.as_ref(),
        };
        Ok(self
            .aqi_set(sets, rule)
            .await?
            .remove(&end)
            .unwrap_or_default())
    }

    /// The hourly AQI of every window in `sets.hourly`, in one query.
    pub async fn aqi_set(
        &self,
        sets: AqiSets<'_>,
        rule: &Rule,
    ) -> std::result::Result<PerWindow, RulesError> {
        let mut parts = vec![self.items(sets.hourly, rule, "1h")?];
        if let Some(w) = sets.o3_8h {
            parts.push(self.items(w, rule, "8h")?);
        }
        if let Some(w) = sets.pm_24h {
            parts.push(self.items(w, rule, "24h")?);
        }
        let mut all = parts.remove(0);
        for p in parts {
            all = all.union(p)?;
        }
        let iaqi = ChinaIaqi::udf().call(vec![col("item"), col("conc")]);
        let batches = all
            .select(vec![
                col("window_end"),
                col("group_key"),
                col("item"),
                iaqi.alias("iaqi"),
                col("n"),
                col("sensors"),
            ])?
            .filter(col("iaqi").is_not_null())?
            .aggregate(
                vec![col("window_end"), col("group_key")],
                vec![
                    max(col("iaqi")).alias("aqi"),
                    first_value(
                        col("item"),
                        // Ties go to the first item in name order, so runs repeat.
                        vec![
                            col("iaqi").sort(false, false),
                            col("item").sort(true, false),
                        ],
                    )
                    .alias("primary"),
                    sum(col("n")).alias("readings"),
                    max(col("sensors")).alias("sensors"),
                ],
            )?
            .sort(vec![
                col("window_end").sort(true, false),
                col("group_key").sort(true, false),
            ])?
            .collect()
            .await?;
        let mut out = PerWindow::new();
        for b in batches {
            let ends = column::<Int64Array>(&b, "window_end")?;
            let keys = column::<StringArray>(&b, "group_key")?;
            let aqi = column::<Float64Array>(&b, "aqi")?;
            let primary = column::<StringArray>(&b, "primary")?;
            let readings = column::<Int64Array>(&b, "readings")?;
            let sensors = column::<Int64Array>(&b, "sensors")?;
            for i in 0..b.num_rows() {
                let end = ends.value(i);
                // Moving windows may close at ends the hourly one has no
                // readings for: no hourly window, no AQI.
                let Some(hourly) = sets.hourly.get(end) else {
                    continue;
                };
                if aqi.is_null(i) {
                    continue;
                }
                let mut a = WindowAggregate::plain(
                    rule,
                    keys.value(i).to_owned(),
                    (hourly.start_ms, end),
                    aqi.value(i),
                    readings.value(i),
                    sensors.value(i),
                );
                a.primary_pollutant =
                    (a.value > 50.0).then(|| pollutant_name(primary.value(i)).to_owned());
                out.entry(end).or_default().push(a);
            }
        }
        Ok(out)
    }

    /// Mean concentration per group of each item averaged over `period`
    /// in `window`: columns group_key, item, conc, n, sensors.
    fn items(
        &self,
        set: &WindowSet,
        rule: &Rule,
        period: &str,
    ) -> std::result::Result<DataFrame, RulesError> {
        let items: Vec<(&str, &str)> = HOURLY_ITEMS
            .iter()
            .filter(|(_, p, _)| *p == period)
            .map(|(m, _, item)| (*m, *item))
            .collect();
        let metrics: Vec<Expr> = items.iter().map(|(m, _)| lit(*m)).collect();
        let mut item = when(col("metric").eq(lit(items[0].0)), lit(items[0].1));
        for (m, i) in &items[1..] {
            item = item.when(col("metric").eq(lit(*m)), lit(*i));
        }
        let item = item.end()?;
        Ok(self
            .ctx
            .read_batch(set.batch.clone())?
            .filter(col("metric").in_list(metrics, false))?
            .aggregate(
                vec![
                    col("window_end"),
                    col(rule.group_by.column()).alias("group_key"),
                    col("metric"),
                ],
                vec![
                    (sum(col("sum")) / cast(sum(col("n")), DataType::Float64)).alias("conc"),
                    sum(col("n")).alias("n"),
                    count(lit(1)).alias("sensors"),
                ],
            )?
            .select(vec![
                col("window_end"),
                col("group_key"),
                item.alias("item"),
                col("conc"),
                col("n"),
                col("sensors"),
            ])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_examples() {
        // PM2.5 24h 80: between 75 (100) and 115 (150):
        // 50/40 × 5 + 100 = 106.25 → 107.
        assert_eq!(iaqi("pm25_24h", 80.0), Some(107.0));
        // On a breakpoint: exactly its IAQI.
        assert_eq!(iaqi("pm25_24h", 75.0), Some(100.0));
        assert_eq!(iaqi("pm25_24h", 0.0), Some(0.0));
        // PM10 24h 200: 150 (100) .. 250 (150): 50/100 × 50 + 100 = 125.
        assert_eq!(iaqi("pm10_24h", 200.0), Some(125.0));
        // NO2 1h 150: 100 (50) .. 200 (100): 50/100 × 50 + 50 = 75.
        assert_eq!(iaqi("no2_1h", 150.0), Some(75.0));
        // CO 1h 1.5 mg/m3: 0 .. 5 (50): 15.
        assert_eq!(iaqi("co_1h", 1.5), Some(15.0));
        // O3 8h 180: 160 (100) .. 215 (150): 50/55 × 20 + 100 = 118.18 → 119.
        assert_eq!(iaqi("o3_8h", 180.0), Some(119.0));
        // O3 8h above 800: the 1h item is used instead.
        assert_eq!(iaqi("o3_8h", 900.0), None);
        // SO2 1h above 800: the 24h table (800..1600 is 200..300): 225.
        assert_eq!(iaqi("so2_1h", 1000.0), Some(225.0));
        // Beyond the table: 500.
        assert_eq!(iaqi("pm25_24h", 700.0), Some(500.0));
        assert_eq!(iaqi("pm25_24h", -1.0), None);
        assert_eq!(iaqi("benzene_1h", 3.0), None);
        assert_eq!(pollutant_name("pm25_24h"), "PM2.5");
    }
}
