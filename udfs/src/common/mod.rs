//! What every lakecap function shares: argument coercion and per-row access
//! ([`args`]), the `lakecap.*` options ([`options`]), counted warnings
//! ([`diagnostics`]), documentation sections ([`docs`]) and what the model
//! functions share ([`model_args`]).

pub(crate) mod args;
pub(crate) mod diagnostics;
pub(crate) mod docs;
pub(crate) mod model_args;
pub(crate) mod options;
