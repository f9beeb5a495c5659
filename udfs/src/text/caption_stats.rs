//! `caption_stats(caption)`: an aggregate describing a set of captions:
//! length, vocabulary and corpus-level distinct-n.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, StructArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, UInt64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::ngrams::ngrams;

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        crate::common::docs::TEXT,
        "Aggregate statistics of a set of captions (NULLs skipped): a struct of rows, mean_words, \
         median_words, vocab (distinct words), distinct_1 and distinct_2 (corpus-level distinct \
         unigrams and bigrams over all of them, Li et al. 2016) and mean_chars. Words are \
         `ngrams(caption, 1)`: lower-cased letter-or-digit runs.",
        "caption_stats(caption)",
    )
    .with_argument("caption", "A caption or alt text column.")
    .with_sql_example(
        "SELECT 'alt' AS source, caption_stats(alt) FROM lake \
         UNION ALL SELECT 'recaption', caption_stats(caption) FROM captions;",
    )
    .build()
});

fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("rows", DataType::UInt64, false),
        Field::new("mean_words", DataType::Float64, true),
        Field::new("median_words", DataType::Float64, true),
        Field::new("vocab", DataType::UInt64, false),
        Field::new("distinct_1", DataType::Float64, true),
        Field::new("distinct_2", DataType::Float64, true),
        Field::new("mean_chars", DataType::Float64, true),
    ])
}

fn list_of(t: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("item", t, true)))
}

/// The aggregate `caption_stats`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CaptionStatsFunc {
    signature: Signature,
}

impl Default for CaptionStatsFunc {
    fn default() -> Self {
        CaptionStatsFunc {
            signature: Signature::uniform(
                1,
                vec![DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View],
                Volatility::Immutable,
            ),
        }
    }
}

impl AggregateUDFImpl for CaptionStatsFunc {
    fn name(&self) -> &str {
        "caption_stats"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(output_fields()))
    }

    fn accumulator(&self, _: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<Stats>::default())
    }

    fn state_fields(&self, _: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let u64 = |n: &str| Arc::new(Field::new(n, DataType::UInt64, true));
        let list = |n: &str, t| Arc::new(Field::new(n, list_of(t), true));
        Ok(vec![
            u64("rows"),
            u64("chars"),
            list("word_counts", DataType::UInt64),
            list("unigrams", DataType::Utf8),
            u64("unigram_total"),
            list("bigrams", DataType::Utf8),
            u64("bigram_total"),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// What has been seen: counts, each caption's word count, distinct n-grams.
#[derive(Debug, Default)]
struct Stats {
    rows: u64,
    chars: u64,
    word_counts: Vec<u64>,
    unigrams: HashSet<String>,
    unigram_total: u64,
    bigrams: HashSet<String>,
    bigram_total: u64,
}

impl Stats {
    fn add(&mut self, caption: &str) {
        let (one, two) = (ngrams(caption, 1), ngrams(caption, 2));
        self.rows += 1;
        self.chars += caption.chars().count() as u64;
        self.word_counts.push(one.len() as u64);
        self.unigram_total += one.len() as u64;
        self.bigram_total += two.len() as u64;
        self.unigrams.extend(one);
        self.bigrams.extend(two);
    }
}

fn strings(set: &HashSet<String>) -> ScalarValue {
    let values: Vec<ScalarValue> = set
        .iter()
        .map(|s| ScalarValue::Utf8(Some(s.clone())))
        .collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Utf8))
}

impl Accumulator for Stats {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = datafusion::arrow::compute::cast(&values[0], &DataType::Utf8)?;
        for caption in v.as_string::<i32>().iter().flatten() {
            self.add(caption);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let ratio = |a: u64, b: u64| (b > 0).then(|| a as f64 / b as f64);
        let mut counts = self.word_counts.clone();
        counts.sort_unstable();
        let median = match counts.len() {
            0 => None,
            n if n % 2 == 1 => Some(counts[n / 2] as f64),
            n => Some((counts[n / 2 - 1] + counts[n / 2]) as f64 / 2.0),
        };
        let f64s = |v: Option<f64>| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        let u64s = |v: u64| Arc::new(UInt64Array::from(vec![v])) as ArrayRef;
        let row = StructArray::try_new(
            output_fields(),
            vec![
                u64s(self.rows),
                f64s(ratio(self.unigram_total, self.rows)),
                f64s(median),
                u64s(self.unigrams.len() as u64),
                f64s(ratio(self.unigrams.len() as u64, self.unigram_total)),
                f64s(ratio(self.bigrams.len() as u64, self.bigram_total)),
                f64s(ratio(self.chars, self.rows)),
            ],
            None,
        )?;
        Ok(ScalarValue::Struct(Arc::new(row)))
    }

    fn size(&self) -> usize {
        let set = |s: &HashSet<String>| s.iter().map(|w| w.len() + 24).sum::<usize>();
        size_of::<Self>() + 8 * self.word_counts.len() + set(&self.unigrams) + set(&self.bigrams)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let counts: Vec<ScalarValue> = self
            .word_counts
            .iter()
            .map(|&c| ScalarValue::UInt64(Some(c)))
            .collect();
        Ok(vec![
            ScalarValue::UInt64(Some(self.rows)),
            ScalarValue::UInt64(Some(self.chars)),
            ScalarValue::List(ScalarValue::new_list_nullable(&counts, &DataType::UInt64)),
            strings(&self.unigrams),
            ScalarValue::UInt64(Some(self.unigram_total)),
            strings(&self.bigrams),
            ScalarValue::UInt64(Some(self.bigram_total)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let u64s = |i: usize| states[i].as_primitive::<UInt64Type>();
        let lists = |i: usize| states[i].as_list::<i32>();
        for r in 0..states[0].len() {
            if states[0].is_null(r) {
                continue;
            }
            self.rows += u64s(0).value(r);
            self.chars += u64s(1).value(r);
            let counts = lists(2).value(r);
            self.word_counts
                .extend(counts.as_primitive::<UInt64Type>().values());
            self.unigrams.extend(
                lists(3)
                    .value(r)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
            self.unigram_total += u64s(4).value(r);
            self.bigrams.extend(
                lists(5)
                    .value(r)
                    .as_string::<i32>()
                    .iter()
                    .flatten()
                    .map(str::to_string),
            );
            self.bigram_total += u64s(6).value(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::StringArray;

    fn field(s: &ScalarValue, name: &str) -> ScalarValue {
        let ScalarValue::Struct(a) = s else {
            panic!("{s:?}")
        };
        ScalarValue::try_from_array(a.column_by_name(name).unwrap(), 0).unwrap()
    }

    #[test]
    fn stats_and_their_merge_agree() {
        let captions = [
            "a cat on a mat",
            "a cat on a sofa",
            "a dog in the snow, 2019",
        ];
        let mut one = Stats::default();
        one.update_batch(&[Arc::new(StringArray::from(captions.to_vec())) as ArrayRef])
            .unwrap();
        let whole = one.evaluate().unwrap();
        assert_eq!(field(&whole, "rows"), ScalarValue::UInt64(Some(3)));
        assert_eq!(
            field(&whole, "median_words"),
            ScalarValue::Float64(Some(5.0))
        );
        assert_eq!(
            field(&whole, "mean_words"),
            ScalarValue::Float64(Some(16.0 / 3.0))
        );
        // a cat on mat sofa dog in the snow 2019
        assert_eq!(field(&whole, "vocab"), ScalarValue::UInt64(Some(10)));
        assert_eq!(
            field(&whole, "distinct_1"),
            ScalarValue::Float64(Some(10.0 / 16.0))
        );
        assert_eq!(
            field(&whole, "distinct_2"),
            ScalarValue::Float64(Some(10.0 / 13.0))
        );
        // Two partial states merged give the same answer.
        let (mut a, mut b, mut m) = (Stats::default(), Stats::default(), Stats::default());
        a.update_batch(&[Arc::new(StringArray::from(captions[..1].to_vec())) as ArrayRef])
            .unwrap();
        b.update_batch(&[Arc::new(StringArray::from(captions[1..].to_vec())) as ArrayRef])
            .unwrap();
        for s in [&mut a, &mut b] {
            let state: Vec<ArrayRef> = s
                .state()
                .unwrap()
                .iter()
                .map(|v| v.to_array().unwrap())
                .collect();
            m.merge_batch(&state).unwrap();
        }
        assert_eq!(m.evaluate().unwrap(), whole);
        assert_eq!(
            field(&Stats::default().evaluate().unwrap(), "mean_words"),
            ScalarValue::Float64(None)
        );
    }
}
