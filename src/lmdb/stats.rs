//! LMDB's [`Stats`]: the cookies', the indexes', the map's, the pages', the
//! reader slots' and the tables', from one snapshot.

use crate::error::Result;
use crate::lmdb::snapshot::Snapshot;
use crate::stats::{LmdbStats, Stats};

impl Snapshot<'_> {
    /// Figures about the store, from this snapshot.
    pub fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        for item in self.raw_records()? {
            let (_, bytes) = item?;
            stats.count_record(bytes, self.now);
        }
        let env = self.shared.env()?;
        let info = env.info();
        let stat = env.unnamed_database_stat();
        stats.lmdb = Some(LmdbStats {
            txn_id: self.txn_id(),
            value_index_entries: self.raw_value_index()?.count() as u64,
            expiry_index_entries: self.raw_expiry_index()?.count() as u64,
            map_size: info.map_size as u64,
            map_used: (info.last_page_number as u64 + 1) * u64::from(stat.page_size),
            maxsize: self.shared.maxsize,
            page_size: stat.page_size,
            depth: stat.depth,
            branch_pages: stat.branch_pages as u64,
            leaf_pages: stat.leaf_pages as u64,
            overflow_pages: stat.overflow_pages as u64,
            entries: stat.entries as u64,
            readers_used: info.number_of_readers,
            readers_max: info.maximum_number_of_readers,
            tables: self.catalog()?.tables.into_values().collect(),
            foreign_writes: self.foreign_writes()?,
        });
        Ok(stats)
    }
}
