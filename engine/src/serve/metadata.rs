//! What a Flight SQL client asks before it queries: server facts
//! (`GetSqlInfo`), the types it can expect (`GetXdbcTypeInfo`), and the
//! session's catalogs, schemas, tables and table types, each as one record
//! batch from arrow-flight's builders (which apply the request's filters).

use std::sync::LazyLock;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, Nullable,
    Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity, XdbcDataType,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;

/// `GetSqlInfo` for a server, read-only or not.
pub fn sql_info(read_only: bool) -> &'static SqlInfoData {
    fn build(read_only: bool) -> SqlInfoData {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "lakecap");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
        b.append(SqlInfo::FlightSqlServerReadOnly, read_only);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, true);
        b.append(SqlInfo::SqlDdlTable, true);
        b.append(
            SqlInfo::SqlIdentifierCase,
            SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
        );
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        b.append(
            SqlInfo::SqlQuotedIdentifierCase,
            SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
        );
        b.append(
            SqlInfo::SqlNullOrdering,
            SqlNullOrdering::SqlNullsSortedHigh as i32,
        );
        b.append(SqlInfo::SqlAllTablesAreSelectable, true);
        b.append(SqlInfo::SqlTransactionsSupported, false);
        b.build().expect("static SqlInfo")
    }
    static WRITABLE: LazyLock<SqlInfoData> = LazyLock::new(|| build(false));
    static READ_ONLY: LazyLock<SqlInfoData> = LazyLock::new(|| build(true));
    if read_only { &READ_ONLY } else { &WRITABLE }
}

/// `GetXdbcTypeInfo`: the SQL types DataFusion reads and writes.
pub fn xdbc_types() -> &'static XdbcTypeInfoData {
    static DATA: LazyLock<XdbcTypeInfoData> = LazyLock::new(|| {
        let mut b = XdbcTypeInfoDataBuilder::new();
        let types = [
            ("BOOLEAN", XdbcDataType::XdbcBit, None, None),
            ("TINYINT", XdbcDataType::XdbcTinyint, Some(3), None),
            ("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), None),
            ("INTEGER", XdbcDataType::XdbcInteger, Some(10), None),
            ("BIGINT", XdbcDataType::XdbcBigint, Some(19), None),
            ("FLOAT", XdbcDataType::XdbcFloat, Some(24), None),
            ("DOUBLE", XdbcDataType::XdbcDouble, Some(53), None),
            (
                "DECIMAL",
                XdbcDataType::XdbcDecimal,
                Some(38),
                Some("precision,scale"),
            ),
            ("VARCHAR", XdbcDataType::XdbcVarchar, None, None),
            ("BYTEA", XdbcDataType::XdbcVarbinary, None, None),
            ("DATE", XdbcDataType::XdbcDate, None, None),
            ("TIMESTAMP", XdbcDataType::XdbcTimestamp, None, None),
        ];
        for (name, ty, size, params) in types {
            let quoted = matches!(
                ty,
                XdbcDataType::XdbcVarchar | XdbcDataType::XdbcDate | XdbcDataType::XdbcTimestamp
            );
            b.append(XdbcTypeInfo {
                type_name: name.into(),
                data_type: ty,
                column_size: size,
                literal_prefix: quoted.then(|| "'".into()),
                literal_suffix: quoted.then(|| "'".into()),
                create_params: params.map(|p| p.split(',').map(String::from).collect()),
                nullable: Nullable::NullabilityNullable,
                case_sensitive: ty == XdbcDataType::XdbcVarchar,
                searchable: Searchable::Full,
                unsigned_attribute: size.map(|_| false),
                fixed_prec_scale: false,
                auto_increment: Some(false),
                local_type_name: Some(name.into()),
                minimum_scale: None,
                maximum_scale: None,
                sql_data_type: ty,
                datetime_subcode: None,
                num_prec_radix: size.map(|_| 10),
                interval_precision: None,
            });
        }
        b.build().expect("static XdbcTypeInfo")
    });
    &DATA
}

fn arrow_err(e: impl std::fmt::Display) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(e.to_string())
}

pub fn catalogs(
    ctx: &SessionContext,
    q: CommandGetCatalogs,
) -> datafusion::error::Result<RecordBatch> {
    let mut b = q.into_builder();
    for c in ctx.catalog_names() {
        b.append(c);
    }
    b.build().map_err(arrow_err)
}

pub fn schemas(
    ctx: &SessionContext,
    q: CommandGetDbSchemas,
) -> datafusion::error::Result<RecordBatch> {
    let mut b = q.into_builder();
    for c in ctx.catalog_names() {
        if let Some(cat) = ctx.catalog(&c) {
            for s in cat.schema_names() {
                b.append(&c, s);
            }
        }
    }
    b.build().map_err(arrow_err)
}

pub async fn tables(
    ctx: &SessionContext,
    q: CommandGetTables,
) -> datafusion::error::Result<RecordBatch> {
    let mut b = q.into_builder();
    for c in ctx.catalog_names() {
        let Some(cat) = ctx.catalog(&c) else { continue };
        for s in cat.schema_names() {
            let Some(schema) = cat.schema(&s) else {
                continue;
            };
            for t in schema.table_names() {
                let Some(table) = schema.table(&t).await? else {
                    continue;
                };
                let kind = match table.table_type() {
                    TableType::View => "VIEW",
                    TableType::Temporary => "LOCAL TEMPORARY",
                    TableType::Base => "TABLE",
                };
                b.append(&c, &s, &t, kind, &table.schema())
                    .map_err(arrow_err)?;
            }
        }
    }
    b.build().map_err(arrow_err)
}

pub fn table_types(q: CommandGetTableTypes) -> datafusion::error::Result<RecordBatch> {
    let mut b = q.into_builder();
    for t in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
        b.append(t);
    }
    b.build().map_err(arrow_err)
}
