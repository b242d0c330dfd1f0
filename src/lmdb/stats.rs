//! Figures about an LMDB store: [`LmdbStats`].

use serde::Serialize;

use crate::error::Result;
use crate::lmdb::layout::TableMeta;
use crate::lmdb::snapshot::Snapshot;
use crate::stats::Stats;

/// Figures about an LMDB store ([`LmdbStore::stats`](crate::LmdbStore::stats)), from one
/// snapshot: its cookies and what only LMDB has. Its JSON form is one flat object.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct LmdbStats {
    /// The cookie figures, as [`CookieStore::stats`](crate::CookieStore::stats) gives them.
    #[serde(flatten)]
    pub cookies: Stats,
    /// Id of the snapshot's transaction.
    pub txn_id: u64,
    /// Entries in the value index.
    pub value_index_entries: u64,
    /// Entries in the expiry index.
    pub expiry_index_entries: u64,
    /// Current map size (bytes).
    pub map_size: u64,
    /// Bytes in use: (last page + 1) × page size.
    pub map_used: u64,
    /// The configured maxsize (bytes).
    pub maxsize: u64,
    /// LMDB page size.
    pub page_size: u32,
    /// B-tree depth of the unnamed database.
    pub depth: u32,
    /// Branch pages.
    pub branch_pages: u64,
    /// Leaf pages.
    pub leaf_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
    /// Entries in the unnamed database (all tables and metadata).
    pub entries: u64,
    /// Reader slots ever used in the lock file (LMDB's high-water mark, live and stale).
    pub readers_used: u32,
    /// Reader slots in the lock file.
    pub readers_max: u32,
    /// Slot metadata: every table of the database.
    pub tables: Vec<TableMeta>,
    /// Whether another program (cfxdb, Crossbar) wrote since cookiestore's last write, so
    /// the expiry index will be reconciled at the next open or purge.
    pub foreign_writes: bool,
}


impl Snapshot<'_> {
    /// Figures about the store, from this snapshot.
    pub fn stats(&self) -> Result<LmdbStats> {
        let mut cookies = Stats::default();
        for item in self.raw_records()? {
            let (_, bytes) = item?;
            cookies.count_record(bytes, self.now);
        }
        let env = self.shared.env()?;
        let info = env.info();
        let stat = env.unnamed_database_stat();
        Ok(LmdbStats {
            cookies,
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
        })
    }
}
