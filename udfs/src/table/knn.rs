//! `knn(queries, qkey, qvec, corpus, ckey, cvec, k [, options])`: each
//! query's `k` nearest corpus rows by cosine, exact or through an IVF index,
//! as a table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float32Array, UInt32Array, UInt64Array};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{Result, exec_err, plan_err};
use lakecap_models::knn::{Ivf, knn_ivf_on, knn_on};

use crate::common::args::option_pairs;

use super::table_args::{
    Computed, SourceColumns, Verdicts, check_vectors, number_arg, on_device, resolve, string_arg,
};

/// Table function: exact k-nearest-neighbour search by cosine between two
/// vector columns (`embed_image`, `embed_text`; FixedSizeList or List of
/// floats), as blocked GEMMs with a top-k on `lakecap.device`; memory is
/// bounded by the blocks.
///
/// One row per (query, neighbour): `(qkey, ckey, rank, similarity)`, rank 1
/// the most similar (ties to the corpus row read first).
///
/// `options`: `'index=ivf; lists=N; probes=M; seed=S'` searches through an
/// inverted-file index instead (FAISS's IVF-Flat): the corpus split into
/// `lists` clusters by spherical k-means trained on a sample, each query
/// scored against the rows of its `probes` nearest clusters only. Defaults:
/// lists ≈ 4·√n, probes = lists / 16. Approximate: a neighbour in an
/// unprobed cluster is missed (bench/RESULTS.md measures the recall).
///
/// ```sql
/// SELECT * FROM knn('captions', 'key', 't', 'images', 'key', 'v', 5) WHERE rank = 1;
/// SELECT * FROM knn('q', 'key', 'v', 'c', 'key', 'v', 10, 'index=ivf; probes=32');
/// ```
#[derive(Debug, Default)]
pub struct KnnFunc;

const USAGE: &str = "knn('queries', 'qkey', 'qvec', 'corpus', 'ckey', 'cvec', k [, 'index=exact|ivf; lists=N; probes=M; seed=S'])";

/// How to search: exactly, or through an IVF index with these settings
/// (`None`: the corpus-size default).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Index {
    Exact,
    Ivf {
        lists: Option<usize>,
        probes: Option<usize>,
        seed: u64,
    },
}

fn options(text: &str) -> Result<Index> {
    let (mut ivf, mut lists, mut probes, mut seed) = (false, None, None, 0u64);
    for pair in option_pairs(text) {
        let (k, v) = match pair {
            Ok(kv) => kv,
            Err(part) => return plan_err!("{USAGE}: option '{part}' is not NAME=VALUE"),
        };
        let count = || match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => plan_err!("{USAGE}: {k} must be a positive integer, got '{v}'"),
        };
        match k {
            "index" if v.eq_ignore_ascii_case("exact") => ivf = false,
            "index" if v.eq_ignore_ascii_case("ivf") => ivf = true,
            "index" => return plan_err!("{USAGE}: index must be exact or ivf, got '{v}'"),
            "lists" => lists = Some(count()?),
            "probes" => probes = Some(count()?),
            "seed" => match v.parse() {
                Ok(n) => seed = n,
                _ => return plan_err!("{USAGE}: seed must be a non-negative integer, got '{v}'"),
            },
            other => {
                return plan_err!("{USAGE}: unknown option '{other}' (index, lists, probes, seed)");
            }
        }
    }
    if !ivf && (lists.is_some() || probes.is_some()) {
        return plan_err!("{USAGE}: lists and probes need index=ivf");
    }
    Ok(match ivf {
        true => Index::Ivf {
            lists,
            probes,
            seed,
        },
        false => Index::Exact,
    })
}

impl TableFunctionImpl for KnnFunc {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(7..=8).contains(&exprs.len()) {
            return plan_err!("{USAGE} takes 7 or 8 arguments, got {}", exprs.len());
        }
        let s = |i: usize, what: &str| string_arg(USAGE, &exprs[i], what);
        let k = match number_arg(&exprs[6]) {
            Some(k) if (1.0..=10_000.0).contains(&k) && k.fract() == 0.0 => k as usize,
            _ => {
                return plan_err!(
                    "{USAGE}: k must be an integer from 1 to 10000, got {}",
                    exprs[6]
                );
            }
        };
        let index = match exprs.get(7) {
            Some(e) => options(&string_arg(USAGE, e, "options")?)?,
            None => Index::Exact,
        };
        let queries = resolve(
            USAGE,
            &args,
            &s(0, "queries")?,
            &s(1, "qkey")?,
            &s(2, "qvec")?,
        )?;
        let corpus = resolve(
            USAGE,
            &args,
            &s(3, "corpus")?,
            &s(4, "ckey")?,
            &s(5, "cvec")?,
        )?;
        check_vectors(USAGE, &queries)?;
        check_vectors(USAGE, &corpus)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("qkey", queries.key.data_type().clone(), false),
            Field::new("ckey", corpus.key.data_type().clone(), false),
            Field::new("rank", DataType::UInt32, false),
            Field::new("similarity", DataType::Float32, false),
        ]));
        Ok(Arc::new(Computed(Box::new(KnnTable {
            queries,
            corpus,
            k,
            index,
            schema,
        }))))
    }
}

#[derive(Debug)]
struct KnnTable {
    queries: SourceColumns,
    corpus: SourceColumns,
    k: usize,
    index: Index,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl Verdicts for KnnTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn columns(&self, state: &dyn Session) -> Result<Vec<ArrayRef>> {
        let (qkeys, q, dq) = self.queries.vectors(state, "knn (queries)").await?;
        let (ckeys, c, dc) = self.corpus.vectors(state, "knn (corpus)").await?;
        if !q.is_empty() && !c.is_empty() && dq != dc {
            return exec_err!("{USAGE}: query vectors have length {dq}, corpus vectors {dc}");
        }
        let (k, index) = (self.k, self.index);
        let found = on_device(state, move |device| match index {
            Index::Exact => knn_on(device, &q, &c, dq, k),
            Index::Ivf {
                lists,
                probes,
                seed,
            } => {
                let default = Ivf::for_corpus(c.len() / dq.max(1));
                let lists = lists.unwrap_or(default.lists);
                let ivf = Ivf {
                    lists,
                    probes: probes.unwrap_or(lists.div_ceil(16)),
                    seed,
                };
                knn_ivf_on(device, &q, &c, dq, k, ivf)
            }
        })
        .await?;
        let (mut qi, mut ci, mut rank, mut sim) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, neighbours) in found.into_iter().enumerate() {
            for (r, n) in neighbours.into_iter().enumerate() {
                qi.push(i as u64);
                ci.push(n.index as u64);
                rank.push(r as u32 + 1);
                sim.push(n.similarity);
            }
        }
        Ok(vec![
            take(&qkeys, &UInt64Array::from(qi), None)?,
            take(&ckeys, &UInt64Array::from(ci), None)?,
            Arc::new(UInt32Array::from(rank)),
            Arc::new(Float32Array::from(sim)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_name_what_is_wrong() {
        assert_eq!(options("").unwrap(), Index::Exact);
        assert_eq!(
            options(" index = IVF; probes=4 ; seed=3").unwrap(),
            Index::Ivf {
                lists: None,
                probes: Some(4),
                seed: 3
            }
        );
        for (bad, says) in [
            ("index=hnsw", "index must be exact or ivf"),
            ("index=ivf; lists=0", "lists must be a positive integer"),
            ("probes=4", "lists and probes need index=ivf"),
            ("depth=3", "unknown option 'depth'"),
            ("ivf", "is not NAME=VALUE"),
        ] {
            let e = options(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
