//! lakecap's root integration tests, one binary (each file below was its own binary
//! once; one link of DataFusion, delta-rs and the models instead of seven).
//!
//! - `cli`: the `lakecap` binary end to end; `cluster`: scheduler and executor
//!   processes on loopback; `refresh`: lake refresh jobs and the
//!   crash matrix; `object_store_s3`: a lake on a moto S3 server; `serve`:
//!   the Flight SQL server with real clients;
//! - `slt`: every `tests/slt/*.slt` file; `model_calls`, `recaption_cache`, `fusion`:
//!   model functions compute each distinct input once, caches, and caption fusion.

mod cli;
mod cluster;
mod common;
mod fusion;
mod model_calls;
mod object_store_s3;
mod recaption_cache;
mod refresh;
mod report;
mod serve;
mod slt;
