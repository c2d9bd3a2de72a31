//! Statements with bound parameters (ADBC's `bind` before `execute`): run by pgarrow's
//! [`Client::run_bound`], one execution per bound row in one round trip.

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{Schema, SchemaRef};
use pgarrow::policy::Policies;
use pgarrow::{Client, EncodePolicies, ExportOptions};

use crate::error::{OrAdbc, Result};
use crate::session::Session;

/// Runs `sql` once per row of `params`; the result's schema, its rows, and the rows the
/// statements changed (when they count any).
pub(crate) fn query(
    session: &Session,
    sql: &str,
    params: Box<dyn RecordBatchReader + Send>,
    options: &ExportOptions,
    encode: EncodePolicies,
) -> Result<(SchemaRef, Vec<RecordBatch>, Option<u64>)> {
    let (sql, options) = (sql.to_owned(), options.clone());
    session.run(true, |mut client| async move {
        let ran = async {
            let statement = client.describe_bound(&sql, &options.policies).await?;
            let statement = statement.with_encode_policies(encode);
            client.run_bound(&statement, params, &options).await
        }
        .await;
        let ran = ran.map(|r| (r.schema, r.batches, r.rows_affected));
        (client, ran.or_adbc())
    })
}

/// Runs `sql` once per row of `params`; the sum of the row counts.
pub(crate) fn update(
    session: &Session,
    sql: &str,
    params: Box<dyn RecordBatchReader + Send>,
    encode: EncodePolicies,
) -> Result<Option<u64>> {
    let sql = sql.to_owned();
    session.run(true, |mut client| async move {
        let ran = async {
            let options = ExportOptions::default();
            let statement = client.describe_bound(&sql, &options.policies).await?;
            let statement = statement.with_encode_policies(encode);
            client.run_bound(&statement, params, &options).await
        }
        .await;
        (client, ran.map(|r| r.rows_affected).or_adbc())
    })
}

/// The schema of `sql`'s result under `policies` (it may have parameters).
pub(crate) async fn schema(
    client: &mut Client,
    sql: &str,
    policies: &Policies,
) -> pgarrow::Result<Schema> {
    let statement = client.describe_bound(sql, policies).await?;
    Ok(statement
        .result_schema()
        .map_or_else(Schema::empty, |s| s.as_ref().clone()))
}

/// The parameters of `sql` as Arrow fields.
pub(crate) fn parameter_schema(session: &Arc<Session>, sql: &str) -> Result<Schema> {
    let sql = sql.to_owned();
    session.run(false, |mut client| async move {
        let described = client.describe_bound(&sql, &Policies::default()).await;
        (
            client,
            described.map(|s| Schema::new(s.param_fields())).or_adbc(),
        )
    })
}
