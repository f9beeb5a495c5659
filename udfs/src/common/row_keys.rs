//! Naming the rows that per-row warnings and errors are about.
//!
//! A scalar function sees its argument columns, never the row's key, and
//! "row 5 of the batch" finds nothing in a lake of many files. So the
//! analyzer rule [`RowKeyRule`] rewrites every lakecap call `f(x, …)` into
//! `f(lakecap_row_key(x, key, 'key'), …)`, `x` its first argument that is not a
//! literal, wherever the plan node's input has the
//! column `lakecap.key_column` (default `key`). `lakecap_row_key` returns `x`
//! unchanged and notes, on this thread, which key column came with that very
//! array; when `f` then reports a row, [`keys_for`] finds the keys by the
//! identity of that argument (the same `Arc`), so a message names
//! `key = 'abc'`. DataFusion evaluates a call's arguments and then the call
//! on one thread without yielding in between (async functions too, up to
//! their first await), which is what makes the note reliable. Where an array
//! is copied or concatenated in between, identity fails and the message falls
//! back to the row number. Referencing the key also keeps it in the scan
//! when the query does not select it.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{Column, DFSchema, Result, TableReference, internal_err};
use datafusion::functions::core::expr_fn::coalesce;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::lit;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::common::docs;
use crate::common::options::LakecapOptions;

/// The SQL name of the pass-through function.
pub const ROW_KEY: &str = "lakecap_row_key";

/// Field metadata naming the column a [`ROW_KEY`] call passes through: the
/// optimizer may give the call's result another name (`__common_expr_1`
/// when two functions read the same column), and messages name the column.
const COLUMN: &str = "lakecap.column";

/// The column `field` carries, as messages name it.
pub fn column_name(field: &FieldRef) -> &str {
    field
        .metadata()
        .get(COLUMN)
        .map_or(field.name().as_str(), String::as_str)
}

/// Arrays noted per thread: enough for the nested calls of one expression.
const NOTES: usize = 8;

struct Note {
    /// Weak, so that a noted batch is never kept alive; it also keeps the
    /// `Arc`'s allocation, so no later array can reuse the address.
    value: Weak<dyn Array>,
    keys: RowKeys,
}

thread_local! {
    static NOTED: RefCell<VecDeque<Note>> = const { RefCell::new(VecDeque::new()) };
}

fn same(w: &Weak<dyn Array>, a: &ArrayRef) -> bool {
    std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(a))
}

fn note(value: &ArrayRef, keys: RowKeys) {
    NOTED.with(|n| {
        let mut n = n.borrow_mut();
        n.retain(|e| !same(&e.value, value));
        if n.len() == NOTES {
            n.pop_back();
        }
        n.push_front(Note {
            value: Arc::downgrade(value),
            keys,
        });
    })
}

/// The keys of a batch's rows, and what messages call them.
#[derive(Debug, Clone)]
pub struct RowKeys {
    column: Arc<str>,
    keys: ArrayRef,
}

impl RowKeys {
    /// `key = 'abc'` for row `row`, as a WHERE clause would find it.
    pub fn name(&self, row: usize) -> String {
        let k = &self.keys;
        let value = if row >= k.len() {
            return format!("row {row} of a batch");
        } else if k.is_null(row) {
            "NULL".to_string()
        } else {
            let v = array_value_to_string(k, row).unwrap_or_else(|e| e.to_string());
            match k.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    format!("'{}'", v.replace('\'', "''"))
                }
                _ => v,
            }
        };
        format!("{} = {value}", self.column)
    }
}

/// The keys noted on this thread for one of a call's arguments, if its rows have them.
pub fn keys_for(args: &[ColumnarValue]) -> Option<RowKeys> {
    NOTED.with(|n| {
        let n = n.borrow();
        args.iter().find_map(|v| {
            let ColumnarValue::Array(a) = v else {
                return None;
            };
            n.iter()
                .find(|e| same(&e.value, a) && e.keys.keys.len() == a.len())
                .map(|e| e.keys.clone())
        })
    })
}

/// `lakecap_row_key(value, key, key_name)`: `value`, noting that `key`
/// (called `key_name` in messages) names its rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowKeyFunc {
    signature: Signature,
}

impl Default for RowKeyFunc {
    fn default() -> Self {
        RowKeyFunc {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        docs::INTERNAL,
        "Returns `value` unchanged and lets lakecap functions evaluated on it name \
         rows by `key` in warnings and errors. lakecap adds it to queries by itself \
         (see `lakecap.key_column`); there is no need to call it.",
        "lakecap_row_key(value, key, key_name)",
    )
    .with_argument("value", "Any column: the argument of a lakecap function.")
    .with_argument("key", "The values that name each row.")
    .with_argument("key_name", "What messages call them (lakecap.key_column).")
    .build()
});

impl ScalarUDFImpl for RowKeyFunc {
    fn name(&self) -> &str {
        ROW_KEY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        Ok(args[0].clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let f = &args.arg_fields[0];
        if f.metadata().contains_key(COLUMN) {
            return Ok(Arc::clone(f));
        }
        let mut metadata = f.metadata().clone();
        metadata.insert(COLUMN.to_string(), f.name().clone());
        Ok(Arc::new(f.as_ref().clone().with_metadata(metadata)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, key, name] = &args.args[..] else {
            return internal_err!("{ROW_KEY} takes (value, key, key_name)");
        };
        // A constant (a CASE that took its ELSE for every row) becomes an
        // array: the function's argument must be the very array noted.
        let value = value.to_array(args.number_rows)?;
        let column = match name {
            ColumnarValue::Scalar(s) => s.try_as_str().flatten().unwrap_or_default(),
            ColumnarValue::Array(_) => "",
        };
        let keys = RowKeys {
            column: Arc::from(column),
            keys: key.to_array(args.number_rows)?,
        };
        note(&value, keys);
        Ok(ColumnarValue::Array(value))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The key of `x`'s row in `input`: its table's key column (`l.key` for
/// `phash(l.img)` after a join) first, then the other tables' of the same
/// type, as `coalesce(…)` so that an outer join's missing side still names
/// the row.
fn key_of(x: &Expr, input: &DFSchema, column: &str) -> Option<Expr> {
    let tables: HashSet<_> = x.column_refs().into_iter().map(|c| &c.relation).collect();
    let own = match tables.into_iter().collect::<Vec<_>>()[..] {
        [table] => table.clone(),
        _ => None,
    };
    let mut keys: Vec<(Option<TableReference>, DataType)> = input
        .iter()
        .filter(|(_, f)| f.name() == column)
        .map(|(q, f)| (q.cloned(), f.data_type().clone()))
        .collect();
    // The argument's own table first (a stable sort keeps the rest in order).
    keys.sort_by_key(|(q, _)| own.is_none() || *q != own);
    let (_, first) = keys.first()?.clone();
    let cols: Vec<Expr> = keys
        .into_iter()
        .filter(|(_, t)| *t == first)
        .map(|(q, _)| Expr::Column(Column::new(q, column)))
        .collect();
    Some(match <[Expr; 1]>::try_from(cols) {
        Ok([one]) => one,
        Err(many) => coalesce(many),
    })
}

/// Wraps the first argument of lakecap calls in `lakecap_row_key` (see the module docs).
#[derive(Debug)]
pub struct RowKeyRule {
    functions: HashSet<String>,
    row_key: Arc<ScalarUDF>,
}

impl RowKeyRule {
    /// A rule for the calls of `functions` (SQL names).
    pub fn new(functions: impl IntoIterator<Item = String>) -> Self {
        RowKeyRule {
            functions: functions.into_iter().collect(),
            row_key: Arc::new(ScalarUDF::from(RowKeyFunc::default())),
        }
    }

    /// `f(…, x, …)` -> `f(…, lakecap_row_key(x, key), …)` for a lakecap `f`
    /// and its first argument `x` that is not a literal, with `key` from
    /// `x`'s table in `input`.
    fn wrap(&self, e: Expr, input: &DFSchema, column: &str) -> Result<Transformed<Expr>> {
        let Expr::ScalarFunction(ScalarFunction { func, mut args }) = e else {
            return Ok(Transformed::no(e));
        };
        let wrapped = |a: &Expr| matches!(a, Expr::ScalarFunction(f) if f.func.name() == ROW_KEY);
        // The first argument that is not a literal (`llm`'s template is one).
        let at = args.iter().position(|a| !matches!(a, Expr::Literal(..)));
        let key = match at {
            Some(i) if self.functions.contains(func.name()) && !args.iter().any(wrapped) => {
                key_of(&args[i], input, column).map(|k| (i, k))
            }
            _ => None,
        };
        let Some((i, key)) = key else {
            return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                func,
                args,
            })));
        };
        args[i] = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(&self.row_key),
            vec![args[i].clone(), key, lit(column)],
        ));
        Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction {
            func,
            args,
        })))
    }
}

impl AnalyzerRule for RowKeyRule {
    fn name(&self) -> &str {
        "lakecap_row_keys"
    }

    fn analyze(&self, plan: LogicalPlan, config: &ConfigOptions) -> Result<LogicalPlan> {
        let column = LakecapOptions::from_config(config).key_column.clone();
        if column.is_empty() {
            return Ok(plan);
        }
        plan.transform_up_with_subqueries(|node| {
            let input = match node.inputs()[..] {
                [input] => Arc::clone(input.schema()),
                _ => return Ok(Transformed::no(node)),
            };
            let names = NamePreserver::new(&node);
            node.map_expressions(|e| {
                let saved = names.save(&e);
                Ok(e.transform_up(|e| self.wrap(e, &input, &column))?
                    .update_data(|e| saved.restore(e)))
            })
        })
        .data()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::prelude::{SessionContext, col, lit};

    use super::*;

    #[test]
    fn names_quote_strings_and_nulls() {
        let k = RowKeys {
            column: "key".into(),
            keys: Arc::new(StringArray::from(vec![Some("o'hara"), None])),
        };
        assert_eq!(k.name(0), "key = 'o''hara'");
        assert_eq!(k.name(1), "key = NULL");
        let k = RowKeys {
            column: "id".into(),
            keys: Arc::new(Int64Array::from(vec![7])),
        };
        assert_eq!(k.name(0), "id = 7");
    }

    #[test]
    fn keys_are_found_by_identity_only() {
        let value: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![10, 11]));
        note(
            &value,
            RowKeys {
                column: "id".into(),
                keys,
            },
        );
        let found = keys_for(&[ColumnarValue::Array(Arc::clone(&value))]).unwrap();
        assert_eq!(found.name(1), "id = 11");
        // An equal array that is not the same one (a copy, a concatenation) has no keys.
        let copy: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert!(keys_for(&[ColumnarValue::Array(copy)]).is_none());
    }

    #[test]
    fn the_rule_wraps_columns_once_and_keeps_names() -> Result<()> {
        let ctx = SessionContext::new();
        let rule = RowKeyRule::new(["lower".to_string()]);
        let t = ctx.read_batch(datafusion::arrow::record_batch::RecordBatch::try_from_iter(
            [
                ("key", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
                ("s", Arc::new(StringArray::from(vec!["A"])) as ArrayRef),
            ],
        )?)?;
        let plan = t
            .select(vec![
                datafusion::functions::string::expr_fn::lower(col("s")),
                datafusion::functions::string::expr_fn::lower(lit("B")),
            ])?
            .into_unoptimized_plan();
        let config = ConfigOptions::default();
        let once = rule.analyze(plan.clone(), &config)?;
        let twice = rule.analyze(once.clone(), &config)?;
        assert_eq!(once, twice);
        assert_eq!(once.schema(), plan.schema());
        let shown = once.display_indent().to_string();
        assert!(
            shown.contains("lower(lakecap_row_key(?table?.s, ?table?.key, Utf8(\"key\")))")
                && shown.contains("lower(Utf8(\"B\"))"),
            "{shown}"
        );
        Ok(())
    }
}
