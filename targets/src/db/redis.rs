//! The redis adapter (placeholder until the adapter lands: `open` refuses).

use crate::db::DbSpec;
use crate::error::TargetError;

/// A redis cluster.
#[derive(Debug)]
pub struct RedisCluster;

impl RedisCluster {
    pub async fn open(_spec: DbSpec) -> Result<Box<dyn crate::db::DbCluster>, TargetError> {
        Err(TargetError::Invalid(
            "the redis adapter is not written yet".into(),
        ))
    }
}
