//! The galera adapter (placeholder until the adapter lands: `open` refuses).

use crate::db::DbSpec;
use crate::error::TargetError;

/// A galera cluster.
#[derive(Debug)]
pub struct GaleraCluster;

impl GaleraCluster {
    pub async fn open(_spec: DbSpec) -> Result<Box<dyn crate::db::DbCluster>, TargetError> {
        Err(TargetError::Invalid(
            "the galera adapter is not written yet".into(),
        ))
    }
}
