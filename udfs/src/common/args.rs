//! Argument handling shared by every function: plan-time coercion with clear
//! errors, per-row access to the plain and view Arrow types, and the per-row
//! error policy (`lakecap.on_error`).

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};
use lakecap_models::ModelError;
use lakecap_models::image::{DecodeLimits, ImageError};

use crate::common::diagnostics::Diagnostics;
use crate::common::options::{LakecapOptions, OnError};
use crate::common::row_keys::{RowKeys, column_name, keys_for};

/// What an argument must be.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    /// Encoded image bytes: Binary, LargeBinary, BinaryView.
    Image,
    /// Text: any string type, or binary checked per row for valid UTF-8.
    Text,
    /// Any integer, as Int64.
    Integer,
    /// A 64-bit hash: UInt64, or Int64 reinterpreted bit for bit.
    Hash,
    /// A vector: a (fixed-size or large) list of Float32 or Float64.
    Vector,
}

/// The one parameter of a function of an image.
pub(crate) const IMAGE: &[(&str, Arg)] = &[("img", Arg::Image)];

fn is_vector(t: &DataType) -> bool {
    match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => {
            matches!(
                f.data_type(),
                DataType::Float32 | DataType::Float64 | DataType::Null
            )
        }
        DataType::Null => true,
        _ => false,
    }
}

/// Coerces `types` to what `func(names...)` accepts, or explains what is wrong.
pub(crate) fn coerce(
    func: &str,
    params: &[(&str, Arg)],
    optional: usize,
    types: &[DataType],
) -> Result<Vec<DataType>> {
    let required = params.len() - optional;
    let usage = || {
        let names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
        match optional {
            0 => format!("{func}({})", names.join(", ")),
            _ => format!(
                "{func}({} [, {}])",
                names[..required].join(", "),
                names[required..].join(", ")
            ),
        }
    };
    if types.len() < required || types.len() > params.len() {
        let count = match optional {
            0 => params.len().to_string(),
            _ => format!("{required} to {}", params.len()),
        };
        return plan_err!("{} takes {count} argument(s), got {}", usage(), types.len());
    }
    params
        .iter()
        .zip(types)
        .map(|(&(name, arg), t)| {
            use DataType::*;
            let ok = match (arg, t) {
                (Arg::Image, Binary | LargeBinary | BinaryView) => Some(t.clone()),
                (Arg::Image, FixedSizeBinary(_) | Null) => Some(Binary),
                (Arg::Text, Utf8 | LargeUtf8 | Utf8View | Binary | LargeBinary | BinaryView) => {
                    Some(t.clone())
                }
                (Arg::Text, Null) => Some(Utf8),
                (Arg::Integer, t) if t.is_integer() || t.is_null() => Some(Int64),
                (Arg::Hash, UInt64 | Int64) => Some(t.clone()),
                (Arg::Hash, Null) => Some(UInt64),
                (Arg::Hash, t) if t.is_integer() => Some(Int64),
                (Arg::Vector, t) if is_vector(t) => Some(t.clone()),
                _ => None,
            };
            match ok {
                Some(t) => Ok(t),
                None => {
                    let want = match arg {
                        Arg::Image => "image bytes (a binary column)",
                        Arg::Text => "text (a string column)",
                        Arg::Integer => "an integer",
                        Arg::Hash => "a 64-bit hash (UInt64 or Int64)",
                        Arg::Vector => "a vector (list of floats)",
                    };
                    plan_err!("{}: argument `{name}` must be {want}, got {t}", usage())
                }
            }
        })
        .collect()
}

/// The `NAME=VALUE` parts of an options string such as `'iters=20; seed=0'`:
/// names and values trimmed, empty parts skipped; a part without `=` is
/// `Err(part)`, for the caller's message.
pub(crate) fn option_pairs(
    text: &str,
) -> impl Iterator<Item = std::result::Result<(&str, &str), &str>> {
    text.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or(p)
        })
}

/// Per-row byte slices of a binary or string array.
pub(crate) fn bytes_rows(a: &dyn Array) -> Result<Vec<Option<&[u8]>>> {
    Ok(match a.data_type() {
        DataType::Binary => a.as_binary::<i32>().iter().collect(),
        DataType::LargeBinary => a.as_binary::<i64>().iter().collect(),
        DataType::BinaryView => a.as_binary_view().iter().collect(),
        DataType::Utf8 => a
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        DataType::LargeUtf8 => a
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        DataType::Utf8View => a
            .as_string_view()
            .iter()
            .map(|s| s.map(str::as_bytes))
            .collect(),
        other => return exec_err!("expected binary or string values, got {other}"),
    })
}

/// A row a function could not process.
pub struct RowFailure {
    pub kind: &'static str,
    pub message: String,
}

impl RowFailure {
    /// A row a model could not generate text for (a prompt longer than the context, ...).
    pub fn generation(e: ModelError) -> Self {
        RowFailure {
            kind: "generation",
            message: e.to_string(),
        }
    }

    /// A decoded image a model cannot take (an aspect ratio beyond its processor's, ...).
    pub fn model(e: ModelError) -> Self {
        RowFailure {
            kind: "model input",
            message: e.to_string(),
        }
    }
}

impl From<ImageError> for RowFailure {
    fn from(e: ImageError) -> Self {
        RowFailure {
            kind: e.kind(),
            message: e.to_string(),
        }
    }
}

/// One invocation's view of the options, the column it reads and where to report.
pub struct Rows<'a> {
    func: &'static str,
    column: String,
    /// The keys of this batch's rows, where the query's input has them.
    keys: Option<RowKeys>,
    /// The first argument is a column (not a literal), so a key could name its rows.
    from_table: bool,
    pub options: LakecapOptions,
    diag: &'a Diagnostics,
}

impl<'a> Rows<'a> {
    /// `column` indexes the argument whose values can fail (named in messages).
    pub fn new(
        func: &'static str,
        args: &ScalarFunctionArgs,
        column: usize,
        diag: &'a Diagnostics,
    ) -> Self {
        let column = args
            .arg_fields
            .get(column)
            .map(|f| column_name(f).to_string())
            .unwrap_or_default();
        Rows {
            func,
            column,
            keys: keys_for(&args.args),
            from_table: args
                .args
                .iter()
                .any(|a| matches!(a, ColumnarValue::Array(_))),
            options: LakecapOptions::from_config(&args.config_options),
            diag,
        }
    }

    pub fn limits(&self) -> DecodeLimits {
        self.options.decode_limits()
    }

    /// `phash(img) at key = 'abc'`: the call and what finds the row.
    fn locate(&self, row: usize) -> String {
        let at = match &self.keys {
            Some(k) => k.name(row),
            None if self.options.key_column.is_empty() || !self.from_table => {
                format!("row {row} of a batch")
            }
            None => format!(
                "row {row} of a batch (no column `{}` reached the function to name it: see lakecap.key_column)",
                self.options.key_column
            ),
        };
        format!("{}({}) at {at}", self.func, self.column)
    }

    /// Counts a warning for a row that still has a value (a fallback).
    pub fn warn(&self, row: usize, kind: &'static str, message: &str) {
        self.diag.warn_fallback(self.func, &self.column, kind, || {
            format!("{}: {message}", self.locate(row))
        });
    }

    /// Applies `lakecap.on_error` to one row's outcome.
    pub fn row<T>(&self, row: usize, outcome: Result<T, RowFailure>) -> Result<Option<T>> {
        match outcome {
            Ok(v) => Ok(Some(v)),
            Err(f) => {
                let message = || format!("{}: {}", self.locate(row), f.message);
                match self.options.on_error {
                    OnError::Fail => {
                        exec_err!(
                            "{} (SET lakecap.on_error = 'null' to get NULL and a warning instead)",
                            message()
                        )
                    }
                    OnError::Null => {
                        self.diag.warn(self.func, &self.column, f.kind, message);
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Maps every non-NULL image of `col` through `f`; NULL stays NULL.
    pub fn map_images<T>(
        &self,
        col: &dyn Array,
        f: impl Fn(&[u8]) -> Result<T, ImageError>,
    ) -> Result<Vec<Option<T>>> {
        bytes_rows(col)?
            .into_iter()
            .enumerate()
            .map(|(i, bytes)| match bytes {
                None => Ok(None),
                Some(b) => self.row(i, f(b).map_err(RowFailure::from)),
            })
            .collect()
    }
}

/// Evaluates the arguments to arrays of `args.number_rows` (also when every
/// argument is a literal, where DataFusion's helper would give one row).
pub(crate) fn arrays(args: &ScalarFunctionArgs) -> Result<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|v| v.to_array(args.number_rows))
        .collect()
}
