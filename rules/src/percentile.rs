//! Window percentiles: a DataFusion aggregate UDF that merges the panes'
//! quantile sketches (see `yujing_ingest::sketch`) per group and returns
//! one quantile, within 1 % relative accuracy. DataFusion has no aggregate
//! over mergeable sketches, so this is one.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray};
use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use yujing_ingest::Sketch;

/// `sketch_pNN(sketch)`: quantile NN/100 of the merged sketches.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SketchQuantile {
    name: String,
    /// The quantile in per mille (500 = median), to keep `Eq` and `Hash`.
    per_mille: u32,
    signature: Signature,
}

impl SketchQuantile {
    pub fn udaf(percent: u32) -> AggregateUDF {
        AggregateUDF::from(SketchQuantile {
            name: format!("sketch_p{percent}"),
            per_mille: percent * 10,
            signature: Signature::exact(vec![DataType::Binary], Volatility::Immutable),
        })
    }
}

impl AggregateUDFImpl for SketchQuantile {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SketchAccumulator {
            sketch: Sketch::new(),
            quantile: self.per_mille as f64 / 1000.0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[sketch]", args.name),
            DataType::Binary,
            true,
        ))])
    }
}

#[derive(Debug)]
struct SketchAccumulator {
    sketch: Sketch,
    quantile: f64,
}

impl SketchAccumulator {
    fn merge_column(&mut self, column: &ArrayRef) -> Result<()> {
        let Some(bytes) = column.as_any().downcast_ref::<BinaryArray>() else {
            return exec_err!("sketch quantile expects a binary sketch column");
        };
        for b in bytes.iter().flatten() {
            match Sketch::from_bytes(b) {
                Some(s) => self.sketch.merge(&s),
                None => return exec_err!("malformed quantile sketch ({} bytes)", b.len()),
            }
        }
        Ok(())
    }
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.merge_column(&values[0])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.merge_column(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.to_bytes()))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.sketch.quantile(self.quantile)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.sketch.to_bytes().len()
    }
}
