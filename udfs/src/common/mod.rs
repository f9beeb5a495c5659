//! What every lakecap function shares: argument coercion and per-row access
//! ([`args`]), the `lakecap.*` options ([`options`]), counted warnings
//! ([`diagnostics`]), documentation sections ([`docs`]), the session memo of
//! model results ([`memo`]), Arrow columns from per-row values ([`arrow`]),
//! the one `ScalarUDFImpl` of the synchronous functions ([`plain`]), what
//! model calls share ([`model_args`]) and the keys that name rows in
//! warnings ([`row_keys`]), and the options as a cluster process applies
//! them ([`applied`]).

pub(crate) mod applied;
pub(crate) mod args;
pub(crate) mod arrow;
pub(crate) mod diagnostics;
pub(crate) mod docs;
pub(crate) mod memo;
pub(crate) mod model_args;
pub(crate) mod options;
pub(crate) mod plain;
pub(crate) mod row_keys;
