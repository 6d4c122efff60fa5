//! The etcd adapter (placeholder until the adapter lands: `open` refuses).

use crate::db::DbSpec;
use crate::error::TargetError;

/// A etcd cluster.
#[derive(Debug)]
pub struct EtcdCluster;

impl EtcdCluster {
    pub async fn open(_spec: DbSpec) -> Result<Box<dyn crate::db::DbCluster>, TargetError> {
        Err(TargetError::Invalid(
            "the etcd adapter is not written yet".into(),
        ))
    }
}
