//! Arrow columns from per-row values, written once for every function:
//! [`column`] for plain values ([`ArrowValue`]), [`StructColumns`] for the
//! struct-returning functions (fields declared once, for the return type
//! and the column), and the embedding vector type.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, FixedSizeListArray, Float32Array,
    StringArray, StructArray, UInt8Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Float32Type, Float64Type};
use datafusion::common::{Result, exec_err};

/// A per-row value type and the Arrow column that holds it.
pub(crate) trait ArrowValue: Sized {
    fn data_type() -> DataType;
    fn column(values: impl Iterator<Item = Option<Self>>) -> ArrayRef;
}

macro_rules! arrow_value {
    ($($t:ty => $data_type:ident in $array:ty;)*) => {$(
        impl ArrowValue for $t {
            fn data_type() -> DataType {
                DataType::$data_type
            }
            fn column(values: impl Iterator<Item = Option<Self>>) -> ArrayRef {
                Arc::new(values.collect::<$array>())
            }
        }
    )*};
}

arrow_value! {
    u8 => UInt8 in UInt8Array;
    u32 => UInt32 in UInt32Array;
    u64 => UInt64 in UInt64Array;
    f32 => Float32 in Float32Array;
    bool => Boolean in BooleanArray;
    &'static str => Utf8 in StringArray;
    String => Utf8 in StringArray;
    Arc<str> => Utf8 in StringArray;
    Vec<u8> => Binary in BinaryArray;
}

/// A value that may itself be missing (NULL either way).
impl<V: ArrowValue> ArrowValue for Option<V> {
    fn data_type() -> DataType {
        V::data_type()
    }
    fn column(values: impl Iterator<Item = Option<Self>>) -> ArrayRef {
        V::column(values.map(Option::flatten))
    }
}

/// The column of per-row values (`None` is NULL).
pub(crate) fn column<V: ArrowValue>(values: Vec<Option<V>>) -> ArrayRef {
    V::column(values.into_iter())
}

type ColumnFn<T> = Box<dyn Fn(&[Option<T>]) -> ArrayRef + Send + Sync>;

/// The fields of a struct column built from per-row values of type `T`.
pub(crate) struct StructColumns<T> {
    fields: Fields,
    columns: Vec<ColumnFn<T>>,
}

/// One field of [`StructColumns`]: `name`, holding `get` of each row.
pub(crate) fn field<T, V: ArrowValue>(
    name: &str,
    get: impl Fn(&T) -> V + Send + Sync + 'static,
) -> (Field, ColumnFn<T>) {
    let column = move |rows: &[Option<T>]| V::column(rows.iter().map(|r| r.as_ref().map(&get)));
    (
        Field::new(name, V::data_type(), true),
        Box::new(column) as ColumnFn<T>,
    )
}

impl<T> StructColumns<T> {
    pub fn new(fields: Vec<(Field, ColumnFn<T>)>) -> Self {
        let (fields, columns): (Vec<Field>, Vec<ColumnFn<T>>) = fields.into_iter().unzip();
        StructColumns {
            fields: fields.into(),
            columns,
        }
    }

    pub fn data_type(&self) -> DataType {
        DataType::Struct(self.fields.clone())
    }

    /// The struct column of `rows`; a `None` row is a NULL struct.
    pub fn array(&self, rows: &[Option<T>]) -> Result<ArrayRef> {
        let columns = self.columns.iter().map(|c| c(rows)).collect();
        let nulls = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
        Ok(Arc::new(StructArray::try_new(
            self.fields.clone(),
            columns,
            Some(nulls),
        )?))
    }
}

/// `FixedSizeList<Float32>` of width `dim`, the embedding column type.
pub(crate) fn vector_type(dim: usize) -> DataType {
    DataType::FixedSizeList(
        Arc::new(Field::new("item", DataType::Float32, true)),
        dim as i32,
    )
}

/// Builds the `FixedSizeList<Float32>(dim)` column.
pub(crate) fn vectors_array(v: &[Option<Arc<[f32]>>], dim: usize) -> Result<ArrayRef> {
    let mut flat = Vec::with_capacity(v.len() * dim);
    for x in v {
        match x {
            Some(x) if x.len() == dim => flat.extend_from_slice(x),
            Some(x) => return exec_err!("model produced {} values, expected {dim}", x.len()),
            None => flat.extend(std::iter::repeat_n(0.0, dim)),
        }
    }
    let nulls = NullBuffer::from(v.iter().map(Option::is_some).collect::<Vec<_>>());
    let field = Arc::new(Field::new("item", DataType::Float32, true));
    Ok(Arc::new(FixedSizeListArray::try_new(
        field,
        dim as i32,
        Arc::new(Float32Array::from(flat)),
        Some(nulls),
    )?))
}

/// Per-row float vectors of a `FixedSizeList`/`List`/`LargeList` of Float32/Float64.
pub(crate) fn vector_rows(a: &dyn Array) -> Result<Vec<Option<Vec<f32>>>> {
    fn floats(a: &dyn Array) -> Result<Vec<f32>> {
        Ok(match a.data_type() {
            DataType::Float32 => a.as_primitive::<Float32Type>().values().to_vec(),
            DataType::Float64 => a
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|&x| x as f32)
                .collect(),
            other => return exec_err!("vector elements must be Float32 or Float64, got {other}"),
        })
    }
    let get = |i: usize| -> Result<Vec<f32>> {
        match a.data_type() {
            DataType::FixedSizeList(..) => floats(a.as_fixed_size_list().value(i).as_ref()),
            DataType::List(_) => floats(a.as_list::<i32>().value(i).as_ref()),
            DataType::LargeList(_) => floats(a.as_list::<i64>().value(i).as_ref()),
            other => exec_err!("expected a vector (list of floats), got {other}"),
        }
    };
    (0..a.len())
        .map(|i| {
            if a.is_null(i) {
                Ok(None)
            } else {
                get(i).map(Some)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pair {
        n: u32,
        name: Option<&'static str>,
    }

    #[test]
    fn struct_columns_declare_type_and_values_once() {
        let s = StructColumns::new(vec![
            field("n", |p: &Pair| p.n),
            field("name", |p: &Pair| p.name),
        ]);
        let rows = [
            Some(Pair {
                n: 1,
                name: Some("a"),
            }),
            None,
            Some(Pair { n: 3, name: None }),
        ];
        let a = s.array(&rows).unwrap();
        assert_eq!(a.data_type(), &s.data_type());
        let a = a.as_struct();
        assert_eq!(a.null_count(), 1);
        let names = a.column(1).as_string::<i32>();
        assert_eq!((names.value(0), names.is_null(2)), ("a", true));
        assert_eq!(
            a.column(0)
                .as_primitive::<datafusion::arrow::datatypes::UInt32Type>()
                .value(2),
            3
        );
    }
}
