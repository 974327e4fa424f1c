//! The metric names yujing aggregates, interned to small ids so a window
//! buffer stores two bytes per reading instead of a string.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use arrow::array::{Array, StringArray};

/// Interned metric names. Built once from the rules at start.
#[derive(Debug, Clone)]
pub struct MetricCatalog {
    ids: FxHashMap<String, u16>,
    names: Arc<StringArray>,
}

impl MetricCatalog {
    pub fn new<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = Vec::new();
        let mut ids = FxHashMap::default();
        for name in names {
            let name = name.into();
            if !ids.contains_key(&name) {
                ids.insert(name.clone(), list.len() as u16);
                list.push(name);
            }
        }
        MetricCatalog {
            ids,
            names: Arc::new(StringArray::from(list)),
        }
    }

    /// This catalog plus `names` not in it yet: existing ids stay the same,
    /// so window state keyed by id survives a rules reload.
    pub fn extended<I, S>(&self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let current = (0..self.names.len()).map(|i| self.names.value(i).to_owned());
        let all: Vec<String> = current.chain(names.into_iter().map(Into::into)).collect();
        Self::new(all)
    }

    /// The id of a metric, or `None` when no rule uses it.
    pub fn id(&self, name: &str) -> Option<u16> {
        self.ids.get(name).copied()
    }

    /// Names indexed by id, as an Arrow array for `take`.
    pub fn names(&self) -> &StringArray {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}
