//! Naming the rows that per-row warnings and errors are about.
//!
//! A scalar function sees its argument columns, never the row's key, and
//! "row 5 of the batch" finds nothing in a lake of many files. So the
//! analyzer rule [`RowKeyRule`] rewrites every lakecap call `f(x, …)` into
//! `f(lakecap_row_key(x, key), …)` wherever the plan node's input has the
//! column `lakecap.key_column` (default `key`). `lakecap_row_key` returns `x`
//! unchanged and notes, on this thread, which key column came with that very
//! array; when `f` then reports a row, [`keys_for`] finds the keys by the
//! identity of its first argument (the same `Arc`), so a message names
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
use datafusion::common::{Column, DFSchema, Result, internal_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::common::docs;
use crate::common::options::LakecapOptions;

/// The SQL name of the pass-through function.
pub const ROW_KEY: &str = "lakecap_row_key";

/// Arrays noted per thread: enough for the nested calls of one expression.
const NOTES: usize = 8;

struct Note {
    /// Weak, so that a noted batch is never kept alive; it also keeps the
    /// `Arc`'s allocation, so no later array can reuse the address.
    value: Weak<dyn Array>,
    column: Arc<str>,
    keys: ArrayRef,
}

thread_local! {
    static NOTED: RefCell<VecDeque<Note>> = const { RefCell::new(VecDeque::new()) };
}

fn same(w: &Weak<dyn Array>, a: &ArrayRef) -> bool {
    std::ptr::addr_eq(w.as_ptr(), Arc::as_ptr(a))
}

fn note(value: &ArrayRef, column: Arc<str>, keys: ArrayRef) {
    NOTED.with(|n| {
        let mut n = n.borrow_mut();
        n.retain(|e| !same(&e.value, value));
        if n.len() == NOTES {
            n.pop_back();
        }
        n.push_front(Note {
            value: Arc::downgrade(value),
            column,
            keys,
        });
    })
}

/// The rows' keys of a batch whose first argument is `value`.
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

/// The keys noted for `value` on this thread, if its rows have them.
pub fn keys_for(value: &ColumnarValue) -> Option<RowKeys> {
    let ColumnarValue::Array(a) = value else {
        return None;
    };
    NOTED.with(|n| {
        n.borrow()
            .iter()
            .find(|e| same(&e.value, a) && e.keys.len() == a.len())
            .map(|e| RowKeys {
                column: Arc::clone(&e.column),
                keys: Arc::clone(&e.keys),
            })
    })
}

/// `lakecap_row_key(value, key)`: `value`, noting that `key` names its rows.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RowKeyFunc {
    signature: Signature,
}

impl Default for RowKeyFunc {
    fn default() -> Self {
        RowKeyFunc {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

static DOC: std::sync::LazyLock<Documentation> = std::sync::LazyLock::new(|| {
    Documentation::builder(
        docs::INTERNAL,
        "Returns `value` unchanged and lets lakecap functions evaluated on it name \
         rows by `key` in warnings and errors. lakecap adds it to queries by itself \
         (see `lakecap.key_column`); there is no need to call it.",
        "lakecap_row_key(value, key)",
    )
    .with_argument("value", "Any column: the argument of a lakecap function.")
    .with_argument("key", "The column that names each row.")
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
        Ok(Arc::clone(&args.arg_fields[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, key] = &args.args[..] else {
            return internal_err!("{ROW_KEY} takes (value, key)");
        };
        if let ColumnarValue::Array(v) = value {
            let column = Arc::from(args.arg_fields[1].name().as_str());
            note(v, column, key.to_array(args.number_rows)?);
        }
        Ok(value.clone())
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// The key column of the table `x` reads (after a join, `l.key` for
/// `phash(l.img)`), or the one column of that name in `input`.
fn key_of(x: &Expr, input: &DFSchema, column: &str) -> Option<Expr> {
    let tables: HashSet<_> = x.column_refs().into_iter().map(|c| &c.relation).collect();
    if let [Some(table)] = tables.into_iter().collect::<Vec<_>>()[..]
        && input.field_with_qualified_name(table, column).is_ok()
    {
        return Some(Expr::Column(Column::new(Some(table.clone()), column)));
    }
    // No such column, or an ambiguous one.
    let (table, field) = input.qualified_field_with_unqualified_name(column).ok()?;
    Some(Expr::Column(Column::new(table.cloned(), field.name())))
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

    /// `f(x, …)` -> `f(lakecap_row_key(x, key), …)` for a lakecap `f` whose
    /// `x` is not a literal, with `key` from `x`'s table in `input`.
    fn wrap(&self, e: Expr, input: &DFSchema, column: &str) -> Result<Transformed<Expr>> {
        let Expr::ScalarFunction(ScalarFunction { func, mut args }) = e else {
            return Ok(Transformed::no(e));
        };
        let key = match args.first() {
            Some(Expr::Literal(..)) => None,
            Some(Expr::ScalarFunction(f)) if f.func.name() == ROW_KEY => None,
            Some(x) if self.functions.contains(func.name()) => key_of(x, input, column),
            _ => None,
        };
        let Some(key) = key else {
            return Ok(Transformed::no(Expr::ScalarFunction(ScalarFunction {
                func,
                args,
            })));
        };
        args[0] = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::clone(&self.row_key),
            vec![args[0].clone(), key],
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
        let column = LakecapOptions::from_config(config).key_column;
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
        note(&value, "id".into(), keys);
        let found = keys_for(&ColumnarValue::Array(Arc::clone(&value))).unwrap();
        assert_eq!(found.name(1), "id = 11");
        // An equal array that is not the same one (a copy, a concatenation) has no keys.
        let copy: ArrayRef = Arc::new(StringArray::from(vec!["a", "b"]));
        assert!(keys_for(&ColumnarValue::Array(copy)).is_none());
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
            shown.contains("lower(lakecap_row_key(?table?.s, ?table?.key))")
                && shown.contains("lower(Utf8(\"B\"))"),
            "{shown}"
        );
        Ok(())
    }
}
