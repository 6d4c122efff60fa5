//! The postgres adapter (placeholder until the adapter lands: `open` refuses).

use crate::db::DbSpec;
use crate::error::TargetError;

/// A postgres cluster.
#[derive(Debug)]
pub struct PgCluster;

impl PgCluster {
    pub async fn open(_spec: DbSpec) -> Result<Box<dyn crate::db::DbCluster>, TargetError> {
        Err(TargetError::Invalid(
            "the postgres adapter is not written yet".into(),
        ))
    }
}
