//! lakecap's SQL functions for DataFusion.
//!
//! Every function is a [`datafusion::logical_expr::ScalarUDFImpl`] in its own
//! file (struct `PhashFunc`, SQL name `phash`, ...) or a table function
//! ([`NearDuplicatesFunc`]). They share three pieces:
//! - [`LakecapOptions`]: the `lakecap.*` session options (`SET lakecap.on_error = 'fail'`),
//!   read by every invocation from DataFusion's `ConfigOptions`.
//! - [`Diagnostics`]: per-session counters of rows a function could not process.
//!   Under `on_error = 'null'` such a row yields NULL and one counted warning,
//!   never a panic and never a dropped row.
//! - `args`: argument coercion (clear plan-time errors for wrong types) and
//!   per-row value access for the plain and view Arrow types parquet delivers.
//!
//! [`register_all`] installs everything into a `SessionContext`.

mod args;
mod diagnostics;
mod docs;
mod options;

mod alt_quality;
mod dhash;
mod hamming;
mod image_error;
mod image_info;
mod near_duplicates;
mod phash;
mod thumbnail;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

pub use alt_quality::AltQualityFunc;
pub use dhash::DhashFunc;
pub use diagnostics::{DiagHandle, Diagnostics, WarningCount};
pub use hamming::HammingFunc;
pub use image_error::ImageErrorFunc;
pub use image_info::ImageInfoFunc;
pub use near_duplicates::NearDuplicatesFunc;
pub use options::{LakecapOptions, OnError};
pub use phash::PhashFunc;
pub use thumbnail::ThumbnailFunc;

/// Every lakecap scalar function, reporting into `diag`.
pub fn scalar_functions(diag: &Arc<Diagnostics>) -> Vec<ScalarUDF> {
    let d = DiagHandle(Arc::clone(diag));
    vec![
        ScalarUDF::from(ImageInfoFunc::new(d.clone())),
        ScalarUDF::from(ImageErrorFunc::new()),
        ScalarUDF::from(PhashFunc::new(d.clone())),
        ScalarUDF::from(DhashFunc::new(d.clone())),
        ScalarUDF::from(HammingFunc::new()),
        ScalarUDF::from(ThumbnailFunc::new(d.clone())),
        ScalarUDF::from(AltQualityFunc::new(d)),
    ]
}

/// Registers every lakecap function (scalar and table) into `ctx`.
pub fn register_all(ctx: &SessionContext, diag: &Arc<Diagnostics>) {
    for f in scalar_functions(diag) {
        ctx.register_udf(f);
    }
    ctx.register_udtf("near_duplicates", Arc::new(NearDuplicatesFunc));
}
