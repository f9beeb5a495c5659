//! The logical plan codec of lakecap's cluster processes: Ballista's own
//! (file formats, its plan nodes), plus in-memory tables (`CREATE TABLE …
//! AS`, and table functions once the client has computed them), which
//! travel inside the plan as Arrow IPC, one stream per partition, and a
//! refresh job's group of source files ([`GroupTable`]).
//!
//! Any other table a client holds (a Delta table, a custom provider) fails
//! with an error naming it, instead of Ballista's "not implemented".

use std::io::Cursor;
use std::sync::Arc;

use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::{Result, TableReference, internal_datafusion_err, plan_err};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion_proto::logical_plan::LogicalExtensionCodec;

use crate::refresh::group::GroupTable;

/// Marks an encoded in-memory table (and its format's version).
const MEMORY_TABLE: &[u8] = b"lakecap.memtable.1";
/// Marks a refresh job's group of source files ([`GroupTable`]).
const REFRESH_GROUP: &[u8] = b"lakecap.refresh-group.1";

/// Ballista's logical codec with in-memory tables added.
#[derive(Debug, Default)]
pub struct LakecapLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LakecapLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(rest) = buf.strip_prefix(MEMORY_TABLE) {
            return Ok(Arc::new(decode_memory_table(rest, schema)?));
        }
        if let Some(rest) = buf.strip_prefix(REFRESH_GROUP) {
            return Ok(Arc::new(GroupTable::decode(rest, schema, ctx)?));
        }
        self.ballista
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let any = node.as_ref() as &dyn std::any::Any;
        if let Some(mem) = any.downcast_ref::<MemTable>() {
            buf.extend_from_slice(MEMORY_TABLE);
            return encode_memory_table(mem, buf);
        }
        if let Some(group) = any.downcast_ref::<GroupTable>() {
            buf.extend_from_slice(REFRESH_GROUP);
            buf.extend(group.encode()?);
            return Ok(());
        }
        if self
            .ballista
            .try_encode_table_provider(table_ref, Arc::clone(&node), buf)
            .is_ok()
        {
            return Ok(());
        }
        plan_err!(
            "table '{table_ref}' cannot be sent to the cluster: lakecap sends files (CREATE EXTERNAL TABLE, parquet and the other file formats) and in-memory tables (CREATE TABLE … AS); read this one through a file format, or copy it to one"
        )
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

/// Partition count, then each partition as a length and an IPC stream.
fn encode_memory_table(mem: &MemTable, buf: &mut Vec<u8>) -> Result<()> {
    let schema = mem.schema();
    buf.extend_from_slice(&(mem.batches.len() as u64).to_le_bytes());
    for partition in &mem.batches {
        let batches = partition
            .try_read()
            .map_err(|_| internal_datafusion_err!("an in-memory table is being written"))?
            .clone();
        let mut stream = Vec::new();
        let mut w = StreamWriter::try_new(&mut stream, &schema)?;
        for b in &batches {
            w.write(b)?;
        }
        w.finish()?;
        drop(w);
        buf.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        buf.extend_from_slice(&stream);
    }
    Ok(())
}

fn decode_memory_table(mut buf: &[u8], schema: SchemaRef) -> Result<MemTable> {
    let mut take = |n: usize| -> Result<&[u8]> {
        if buf.len() < n {
            return Err(internal_datafusion_err!(
                "truncated in-memory table in a plan"
            ));
        }
        let (head, rest) = buf.split_at(n);
        buf = rest;
        Ok(head)
    };
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
    let partitions = word(take(8)?);
    let mut out = Vec::with_capacity(partitions.min(4096));
    for _ in 0..partitions {
        let len = word(take(8)?);
        let stream = take(len)?;
        let batches = StreamReader::try_new(Cursor::new(stream), None)?
            .collect::<std::result::Result<Vec<RecordBatch>, _>>()?;
        out.push(batches);
    }
    MemTable::try_new(schema, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn memory_tables_round_trip_with_their_partitions() {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = |k: Vec<Option<&str>>, n: Vec<i64>| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringArray::from(k)),
                    Arc::new(Int64Array::from(n)),
                ],
            )
            .unwrap()
        };
        let parts = vec![
            vec![
                batch(vec![Some("a"), None], vec![1, 2]),
                batch(vec![Some("b")], vec![3]),
            ],
            vec![],
            vec![batch(vec![Some("c")], vec![4])],
        ];
        let mem = Arc::new(MemTable::try_new(Arc::clone(&schema), parts.clone()).unwrap());
        let codec = LakecapLogicalCodec::default();
        let table = TableReference::bare("t");
        let mut buf = Vec::new();
        codec
            .try_encode_table_provider(&table, mem, &mut buf)
            .unwrap();
        let ctx = TaskContext::default();
        let back = codec
            .try_decode_table_provider(&buf, &table, Arc::clone(&schema), &ctx)
            .unwrap();
        let back = (back.as_ref() as &dyn std::any::Any)
            .downcast_ref::<MemTable>()
            .unwrap();
        let got: Vec<Vec<RecordBatch>> = back
            .batches
            .iter()
            .map(|p| p.try_read().unwrap().clone())
            .collect();
        assert_eq!(got, parts);
        // A cut plan is an error, not a panic.
        let e = codec
            .try_decode_table_provider(&buf[..buf.len() - 3], &table, schema, &ctx)
            .unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
    }

    #[test]
    fn other_client_tables_are_refused_by_name() {
        #[derive(Debug)]
        struct Custom;
        #[async_trait::async_trait]
        impl TableProvider for Custom {
            fn schema(&self) -> SchemaRef {
                Arc::new(Schema::empty())
            }
            fn table_type(&self) -> datafusion::logical_expr::TableType {
                datafusion::logical_expr::TableType::Base
            }
            async fn scan(
                &self,
                _: &dyn datafusion::catalog::Session,
                _: Option<&Vec<usize>>,
                _: &[datafusion::prelude::Expr],
                _: Option<usize>,
            ) -> Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
                unreachable!()
            }
        }
        let e = LakecapLogicalCodec::default()
            .try_encode_table_provider(
                &TableReference::bare("mine"),
                Arc::new(Custom),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("table 'mine' cannot be sent to the cluster"),
            "{e}"
        );
    }
}
