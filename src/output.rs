//! Result formatting for the CLI: aligned tables (binary cells summarised),
//! CSV and JSON lines.

use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::FormatOptions;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

fn byte_lengths(a: &dyn Array) -> Option<Vec<Option<usize>>> {
    Some(match a.data_type() {
        DataType::Binary => a
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(<[u8]>::len))
            .collect(),
        DataType::LargeBinary => a
            .as_binary::<i64>()
            .iter()
            .map(|v| v.map(<[u8]>::len))
            .collect(),
        DataType::BinaryView => a
            .as_binary_view()
            .iter()
            .map(|v| v.map(<[u8]>::len))
            .collect(),
        _ => return None,
    })
}

/// Replaces binary columns by `<N bytes>` so a table of images stays readable.
pub fn summarise_binary(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match byte_lengths(c) {
            Some(lens) => {
                fields.push(Field::new(f.name(), DataType::Utf8, true));
                columns.push(Arc::new(
                    lens.into_iter()
                        .map(|l| l.map(|l| format!("<{l} bytes>")))
                        .collect::<StringArray>(),
                ));
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(Arc::clone(c));
            }
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Writes `batches` in `format`.
pub fn write(out: &mut dyn Write, batches: &[RecordBatch], format: Format) -> Result<()> {
    match format {
        Format::Table => {
            let shown: Vec<RecordBatch> = batches
                .iter()
                .map(summarise_binary)
                .collect::<Result<_>>()?;
            let opts = FormatOptions::default().with_null("NULL");
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches_with_options(&shown, &opts)?
            )?;
        }
        Format::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(out);
            for b in batches {
                w.write(b)?;
            }
        }
        Format::Json => {
            let mut w = arrow::json::LineDelimitedWriter::new(out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BinaryArray, Int64Array};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
            (
                "img",
                Arc::new(BinaryArray::from(vec![Some(&b"abc"[..]), None])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn table_summarises_binary() {
        let mut out = Vec::new();
        write(&mut out, &[batch()], Format::Table).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("<3 bytes>") && s.contains("NULL"), "{s}");
    }

    #[test]
    fn csv_and_json() {
        let b = RecordBatch::try_from_iter(vec![(
            "id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        )])
        .unwrap();
        let mut out = Vec::new();
        write(&mut out, std::slice::from_ref(&b), Format::Csv).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "id\n1\n2\n");
        let mut out = Vec::new();
        write(&mut out, &[b], Format::Json).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"id\":1}\n{\"id\":2}\n");
    }
}
