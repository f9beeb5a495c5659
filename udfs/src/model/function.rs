//! One `ScalarUDFImpl` + `AsyncScalarUDFImpl` for every model function: a
//! function states its name, signature, docs, result type and how it
//! computes a batch ([`ModelFunction`]); [`Model`] writes the rest once and
//! hands it the session's memo and the rows' error policy.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

use crate::common::args::Rows;
use crate::common::diagnostics::DiagHandle;
use crate::common::memo::{MemoHandle, SessionMemo};

/// What differs between two model functions; the value holds the function's
/// own settings (such as the session's model option).
#[async_trait]
pub trait ModelFunction: Debug + PartialEq + Eq + Hash + Send + Sync + 'static {
    /// The SQL name.
    const NAME: &'static str;

    /// The accepted argument types. (Async UDFs cannot use `coerce_types`:
    /// DataFusion's async wrapper does not forward it.)
    fn signature() -> Signature;

    fn documentation() -> &'static Documentation;

    /// The result type, from the argument fields and literals; a literal
    /// model argument can set an embedding's width. Bad literals fail here,
    /// at planning.
    fn return_type(&self, args: &ReturnFieldArgs) -> Result<DataType>;

    /// One batch; `rows` applies `lakecap.on_error` to rows of the first argument.
    async fn invoke(
        &self,
        args: &ScalarFunctionArgs,
        rows: &Rows<'_>,
        memo: &SessionMemo,
    ) -> Result<ArrayRef>;
}

/// The DataFusion function of `F`, sharing a session's memo and diagnostics.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Model<F> {
    function: F,
    signature: Signature,
    memo: MemoHandle,
    diag: DiagHandle,
}

impl<F: ModelFunction> Model<F> {
    pub fn new(function: F, memo: MemoHandle, diag: DiagHandle) -> Self {
        Model {
            function,
            signature: F::signature(),
            memo,
            diag,
        }
    }

    /// The function as DataFusion registers it.
    pub fn into_udf(self) -> ScalarUDF {
        AsyncScalarUDF::new(Arc::new(self)).into_scalar_udf()
    }
}

impl<F: ModelFunction> ScalarUDFImpl for Model<F> {
    fn name(&self) -> &str {
        F::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        internal_err!("return_field_from_args is used")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let data_type = self.function.return_type(&args)?;
        Ok(Arc::new(Field::new(F::NAME, data_type, true)))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        internal_err!("{} is async", F::NAME)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(F::documentation())
    }
}

#[async_trait]
impl<F: ModelFunction> AsyncScalarUDFImpl for Model<F> {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = Rows::new(F::NAME, &args, 0, &self.diag.0);
        let out = self.function.invoke(&args, &rows, &self.memo.0).await?;
        Ok(ColumnarValue::Array(out))
    }
}
