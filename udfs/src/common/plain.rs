//! One `ScalarUDFImpl` for every synchronous lakecap function: a function
//! states its name, parameters, return type, docs and how it computes a batch
//! ([`PlainFunction`]); [`Plain`] writes the rest once (signature, plan-time
//! coercion with clear errors, arguments as arrays, the per-row error policy).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::args::{Arg, Rows, arrays, coerce};
use crate::common::diagnostics::DiagHandle;

/// What differs between two synchronous functions.
pub trait PlainFunction: Send + Sync + 'static {
    /// The SQL name.
    const NAME: &'static str;
    /// The parameters, as named in coercion errors.
    const PARAMS: &'static [(&'static str, Arg)];
    /// How many of the last parameters may be left out.
    const OPTIONAL: usize = 0;

    fn return_type() -> DataType;

    fn documentation() -> &'static Documentation;

    /// One batch: `cols` are the (coerced) arguments, one array each; `rows`
    /// applies `lakecap.on_error` to rows of the first argument.
    fn invoke(rows: &Rows, cols: &[ArrayRef]) -> Result<ArrayRef>;
}

/// The DataFusion function of `F`, reporting failed rows into a session's diagnostics.
pub struct Plain<F> {
    signature: Signature,
    diag: DiagHandle,
    function: PhantomData<fn() -> F>,
}

impl<F> Plain<F> {
    pub fn new(diag: DiagHandle) -> Self {
        Plain {
            // Arguments are checked by `coerce_types`, with errors naming them.
            signature: Signature::user_defined(Volatility::Immutable),
            diag,
            function: PhantomData,
        }
    }
}

// By hand: derived impls would ask the same of `F`, a marker type.
impl<F: PlainFunction> fmt::Debug for Plain<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plain").field("name", &F::NAME).finish()
    }
}

impl<F> PartialEq for Plain<F> {
    fn eq(&self, other: &Self) -> bool {
        self.diag == other.diag
    }
}

impl<F> Eq for Plain<F> {}

impl<F> Hash for Plain<F> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.diag.hash(state)
    }
}

impl<F: PlainFunction> ScalarUDFImpl for Plain<F> {
    fn name(&self) -> &str {
        F::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(F::NAME, F::PARAMS, F::OPTIONAL, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(F::return_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = Rows::new(F::NAME, &args, 0, &self.diag.0);
        Ok(ColumnarValue::Array(F::invoke(&rows, &arrays(&args)?)?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(F::documentation())
    }
}
