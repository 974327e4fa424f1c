//! Which partition each sensor's readings come from.
//!
//! - When a rebalance moves a partition to another instance, the state of
//!   its sensors (open windows and sessions, silence and duplicate
//!   history, per-sensor warnings) is dropped here: the new owner rebuilds
//!   it from the uncommitted readings, and this instance must neither
//!   grade those windows from part of their readings nor resolve those
//!   warnings for lack of data.
//! - A district whose sensors arrive on several partitions is counted:
//!   with several instances in the group, each would grade area rules over
//!   only its share of the district's sensors (readings must then be keyed
//!   by district, see docs/contracts.md).

use std::collections::HashMap;

use yujing_ingest::{AreaLevel, SensorRegistry};

#[derive(Debug, Default)]
pub(super) struct SensorPartitions {
    /// Partition index → (topic, partition).
    partitions: Vec<(String, i32)>,
    /// Sensor index → partition index + 1 (0: not heard from).
    of_sensor: Vec<u32>,
    /// District index → partition index → sensors heard from there.
    districts: HashMap<u32, HashMap<u32, u32>>,
}

impl SensorPartitions {
    pub(super) fn new(sensors: usize) -> Self {
        SensorPartitions {
            of_sensor: vec![0; sensors],
            ..Default::default()
        }
    }

    /// The index of (topic, partition), added on first sight. A handful of
    /// partitions: a linear search, the last one first.
    pub(super) fn index(&mut self, topic: &str, partition: i32) -> u32 {
        if let Some(i) = self
            .partitions
            .iter()
            .rposition(|(t, p)| *p == partition && t == topic)
        {
            return i as u32;
        }
        self.partitions.push((topic.to_owned(), partition));
        (self.partitions.len() - 1) as u32
    }

    /// A reading of `sensor` arrived on partition `index`.
    pub(super) fn saw(&mut self, registry: &SensorRegistry, sensor: u32, index: u32) {
        let Some(slot) = self.of_sensor.get_mut(sensor as usize) else {
            return;
        };
        if *slot == index + 1 {
            return;
        }
        let before = std::mem::replace(slot, index + 1);
        let district = registry.group_index(AreaLevel::District, sensor);
        let counts = self.districts.entry(district).or_default();
        if before > 0 {
            release(counts, before - 1);
        }
        *counts.entry(index).or_default() += 1;
    }

    /// The sensors last heard from on (topic, partition), marked; `None`
    /// if nothing was heard from it.
    pub(super) fn sensors_of(&self, topic: &str, partition: i32) -> Option<Vec<bool>> {
        let index = self
            .partitions
            .iter()
            .position(|(t, p)| *p == partition && t == topic)?;
        Some(
            self.of_sensor
                .iter()
                .map(|slot| *slot == index as u32 + 1)
                .collect(),
        )
    }

    /// Whether readings of `sensor` arrive here (on a partition still
    /// assigned).
    pub(super) fn is_heard(&self, sensor: u32) -> bool {
        self.of_sensor.get(sensor as usize).is_some_and(|p| *p > 0)
    }

    /// Districts whose sensors arrived on more than one partition.
    pub(super) fn split_districts(&self) -> usize {
        self.districts.values().filter(|p| p.len() > 1).count()
    }

    /// Mark and forget the sensors last heard from on (topic, partition).
    pub(super) fn take_sensors(
        &mut self,
        registry: &SensorRegistry,
        topic: &str,
        partition: i32,
    ) -> Vec<bool> {
        let mut gone = vec![false; self.of_sensor.len()];
        let Some(index) = self
            .partitions
            .iter()
            .position(|(t, p)| *p == partition && t == topic)
        else {
            return gone;
        };
        for (sensor, slot) in self.of_sensor.iter_mut().enumerate() {
            if *slot == index as u32 + 1 {
                *slot = 0;
                gone[sensor] = true;
                let district = registry.group_index(AreaLevel::District, sensor as u32);
                if let Some(counts) = self.districts.get_mut(&district) {
                    release(counts, index as u32);
                }
            }
        }
        gone
    }
}

fn release(counts: &mut HashMap<u32, u32>, index: u32) {
    if let Some(n) = counts.get_mut(&index) {
        *n -= 1;
        if *n == 0 {
            counts.remove(&index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yujing_ingest::Sensor;

    fn registry() -> SensorRegistry {
        let s = |id: &str, district: &str| Sensor {
            sensor_id: id.into(),
            kind: "air".into(),
            district: district.into(),
            district_code: "500000".into(),
            street: "st".into(),
            grid: "g".into(),
            lat: 29.6,
            lon: 106.5,
            names: Default::default(),
        };
        SensorRegistry::new(vec![s("a1", "Yubei"), s("a2", "Yubei"), s("b1", "Yuzhong")]).unwrap()
    }

    #[test]
    fn districts_read_from_two_partitions_are_counted_until_one_is_revoked() {
        let reg = registry();
        let mut parts = SensorPartitions::new(reg.len());
        let (p0, p1) = (parts.index("r", 0), parts.index("r", 1));
        parts.saw(&reg, 0, p0);
        parts.saw(&reg, 2, p1);
        assert_eq!(parts.split_districts(), 0);
        // a2 is in Yubei too, but keyed elsewhere.
        parts.saw(&reg, 1, p1);
        assert_eq!(parts.split_districts(), 1);

        let gone = parts.take_sensors(&reg, "r", 1);
        assert_eq!(gone, vec![false, true, true]);
        assert_eq!(parts.split_districts(), 0);
        assert!(parts.is_heard(0) && !parts.is_heard(1) && !parts.is_heard(2));
        // The partition comes back: its sensors are heard again.
        let p1 = parts.index("r", 1);
        parts.saw(&reg, 2, p1);
        assert!(parts.is_heard(2));
    }
}
