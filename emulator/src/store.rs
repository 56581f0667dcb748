//! The site database: one SQLite file per site, WAL mode, versioned migrations.
//!
//! This is the only module that contains SQL (house style HS-4). Every statement is a string
//! literal with bound parameters (`?1`, `?2`, …); no SQL is ever built with `format!` or by
//! concatenation, so no value a client sends can change a statement (CVE-2024-43468,
//! field notes §5; HS-61).
//!
//! External types let through: **none**. No `rusqlite` type appears in a public signature;
//! database failures reach callers as [`crate::Error::Store`] holding an opaque
//! [`StoreError`], and rows come back as this module's plain record types.
//!
//! Durability: the database runs in WAL mode with `synchronous = FULL`, so a transaction is
//! on disk when its commit returns; the site's operations each run in one transaction and
//! return only after it commits ("a message is acknowledged only after it is committed").
//! Several operations may share one transaction (group commit, [`crate::Site::group`]): each
//! is a savepoint of its own, rolled back alone when it fails, and the group's single commit
//! (one `fsync` for all of them) returns before any of them is acknowledged. WAL checkpoints
//! of a file database run on a thread of their own (`checkpoint`), not in the commit.
//!
//! Built in this workspace, SQLite syncs with `fdatasync` on Linux (`HAVE_FDATASYNC`, set in
//! `.cargo/config.toml` for the SQLite that rusqlite bundles, as SQLite's own `configure`
//! does): the data and the file's size are on disk when it returns, only timestamps are not.
//! A program that builds this crate from elsewhere gets SQLite's default, `fsync`, which is
//! as durable and slightly slower.
//!
//! # Schema (version 1)
//!
//! | Table | One row per |
//! |---|---|
//! | `clients` | client record: SMSID, signing and encryption certificates (DER), hash, hardware ID, agent type, identity, version, names, proxy, approved, registered, blocked, obsolete, imported proxy, times |
//! | `conflicts` | record parked because of a duplicate hardware ID, and its resolution |
//! | `messages` | message received: `Msg/ID`, endpoint, kind, client, time, outcome (`stored`, `duplicate`, `refused`, `answered`, `failed`), reason |
//! | `discovery` | client's latest discovery data record (DDR) with the fields location and identity use |
//! | `inventory_versions` | client and inventory action: last `Version` (`major.minor`), resync requested |
//! | `inventory_instances` | client, action, class and key: one inventory instance (XML) |
//! | `collected_files` | file received by file collection or IDMIF collection |
//! | `state_messages` | client and `SerialNumber`: one state message |
//! | `status_messages` | status message |
//! | `metering` | software metering usage record (`HistoricalMeterData`) |
//! | `policies` | policy assignment with its body (from the site file or an admin) |
//! | `site_state` | named site value (`policy_changed_ms`, the `ServerCookie`, `site_mode`) |
//! | `faults` | injected fault with its remaining uses |

use core::fmt;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cmmp_model::value::SmsId;
use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::error::Error;
use crate::site::{FaultKind, FaultSpec, PolicyScope, PolicySpec};

macro_rules! client_select {
    () => {
        "SELECT c.id, c.smsid, c.signing_cert, c.encryption_cert, c.hash_algorithm, \
         c.hardware_id, c.agent_type, c.agent_identity, c.agent_version, c.netbios_name, c.fqdn, \
         c.proxy_id, c.approved, c.registered, c.blocked, c.obsolete, c.imported_proxy, \
         (SELECT k.id FROM conflicts k WHERE k.parked_id = c.id AND k.resolved_ms IS NULL), \
         c.created_ms, c.registered_ms, c.last_seen_ms FROM clients c"
    };
}

macro_rules! conflict_select {
    () => {
        "SELECT id, parked_id, parked_smsid, existing_id, hardware_id, created_ms, resolved_ms, \
         resolution FROM conflicts"
    };
}

macro_rules! version_select {
    () => {
        "SELECT client_id, action, major, minor, resync_requested_ms, updated_ms \
         FROM inventory_versions"
    };
}

macro_rules! policy_select {
    () => {
        "SELECT assignment_id, policy_id, version, category, scope, flags, ready_after_secs, \
         body, source, changed_ms FROM policies"
    };
}

macro_rules! fault_select {
    () => {
        "SELECT id, endpoint, kind, delay_ms, remaining, source FROM faults"
    };
}

/// A database error, opaque so that no SQLite type crosses the crate's API.
pub struct StoreError(rusqlite::Error);

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// The schema version this build migrates to.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

mod checkpoint;

/// The site database.
pub struct Store {
    /// Declared before `conn`, so that the checkpoint thread's connection closes first and
    /// this one, the last, checkpoints and removes the WAL.
    checkpointer: Option<checkpoint::Checkpointer>,
    conn: Connection,
    /// Inside a group ([`Store::begin_group`]): each [`Store::write`] is a savepoint of the
    /// group's transaction.
    grouped: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.conn.path()).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when SQLite fails; [`Error::SchemaTooNew`] for a database written by a
    /// newer build.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let conn = Connection::open(path).map_err(store("open the database"))?;
        let mut opened = Self::init(conn)?;
        // Checkpoints on a thread of their own (see `checkpoint`); SQLite's own, on this
        // connection, only if that thread cannot start.
        if opened.journal_mode()? == "wal"
            && let Some(checkpointer) = checkpoint::Checkpointer::start(path)
        {
            opened
                .conn
                .pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(store("configure the database"))?;
            opened.checkpointer = Some(checkpointer);
        }
        Ok(opened)
    }

    /// A private in-memory database (tests, throw-away sites).
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub fn open_in_memory() -> Result<Self, Error> {
        let conn = Connection::open_in_memory().map_err(store("open the database"))?;
        Self::init(conn)
    }

    fn init(conn: Connection) -> Result<Self, Error> {
        let setup = || -> rusqlite::Result<()> {
            conn.busy_timeout(Duration::from_secs(5))?;
            // WAL for a file; an in-memory database stays in `memory` mode.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            // Reads through a memory map of the file (up to 1 GiB), and a page cache of 8 MiB
            // for the pages a group changes and those read from the WAL. SQLite's page cache
            // is emptied of pages past the end of the file at every commit, and a B-tree
            // balance parks a page at the lock-byte page number (1 GiB / page size) for a
            // moment, so every commit that balanced a page walked the whole cache: with a
            // 64 MiB cache that walk was a seventh of the committer's time. With the map, the
            // pages that are only read need no cache entry at all.
            conn.pragma_update(None, "mmap_size", 1_i64 << 30)?;
            conn.pragma_update(None, "cache_size", -8_192)?;
            // Savepoint journals in memory: each Post of a group runs in a savepoint, and
            // SQLite keeps the original of every page it changes until the savepoint ends.
            // In a temporary file that was a `pwrite` per page, a sixth of the committer's
            // time; the data is only needed to roll one operation back, never after a crash.
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            // Every statement of `Tx` goes through the prepared statement cache (`Cached`);
            // room for all of them, so none is parsed twice.
            conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
            // The query planner stability guarantee: a statement's plan does not depend on the
            // values bound to it. Without it SQLite marks some statements (an `ORDER BY` over
            // a table that grew) to be compiled again each time a new value is bound, which
            // defeats the statement cache on every Post.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
            Ok(())
        };
        setup().map_err(store("configure the database"))?;
        let mut store = Self { checkpointer: None, conn, grouped: false };
        store.migrate()?;
        Ok(store)
    }

    /// The database's schema version (`PRAGMA user_version`).
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub fn schema_version(&self) -> Result<i64, Error> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(store("read the schema version"))
    }

    /// The journal mode SQLite reports (`wal` for a file database).
    ///
    /// # Errors
    ///
    /// [`Error::Store`].
    pub fn journal_mode(&self) -> Result<String, Error> {
        self.conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(store("read the journal mode"))
    }

    fn migrate(&mut self) -> Result<(), Error> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew { found, known: SCHEMA_VERSION });
        }
        let start = usize::try_from(found).unwrap_or(0);
        if start >= MIGRATIONS.len() {
            return Ok(());
        }
        // Foreign keys off while a migration rebuilds a table that others reference (dropping
        // it would otherwise delete or refuse what refers to it); SQLite only changes this
        // setting outside a transaction. Each migration checks them before it commits.
        self.conn
            .pragma_update(None, "foreign_keys", "OFF")
            .map_err(store("migrate the schema"))?;
        let migrated = self.run_migrations(start);
        let restored = self.conn.pragma_update(None, "foreign_keys", "ON");
        migrated?;
        restored.map_err(store("migrate the schema"))
    }

    /// Migrations `start + 1` to the last, each in a transaction of its own.
    fn run_migrations(&mut self, start: usize) -> Result<(), Error> {
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(start) {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Exclusive)
                .map_err(store("begin a migration"))?;
            tx.execute_batch(migration).map_err(store("migrate the schema"))?;
            let broken: i64 = tx
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))
                .map_err(store("check the migrated schema"))?;
            if broken > 0 {
                return Err(Error::Invalid(format!(
                    "migration {} left {broken} broken references; the database is unchanged",
                    i + 1
                )));
            }
            // `PRAGMA user_version` takes no bound parameter; the values are this build's
            // own migration numbers.
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(store("record the schema version"))?;
            tx.commit().map_err(store("commit a migration"))?;
        }
        Ok(())
    }

    /// Runs `f` in one write transaction: committed when `f` returns `Ok`, rolled back when
    /// it returns `Err`.
    ///
    /// Inside a group ([`Store::begin_group`]) `f` runs in a savepoint of the group's
    /// transaction instead: released when `f` returns `Ok`, rolled back when it returns `Err`,
    /// and committed with the whole group by [`Store::end_group`].
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if self.grouped {
            return self.savepoint(f);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(store("begin a transaction"))?;
        let value = f(&Tx { conn: &tx })?;
        tx.commit().map_err(store("commit"))?;
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.committed();
        }
        Ok(value)
    }

    /// Runs `f` over a consistent snapshot (inside a group: the group's transaction, with
    /// what the group wrote so far).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        if self.grouped {
            return f(&Tx { conn: &self.conn });
        }
        let tx = self.conn.unchecked_transaction().map_err(store("begin a read"))?;
        let value = f(&Tx { conn: &tx })?;
        tx.finish().map_err(store("end a read"))?;
        Ok(value)
    }

    /// Whether a group is open ([`Store::begin_group`]).
    pub(crate) fn grouped(&self) -> bool {
        self.grouped
    }

    /// Starts a group of operations that commit together (group commit): one transaction, in
    /// which every [`Store::write`] until [`Store::end_group`] is a savepoint of its own.
    ///
    /// An operation that fails is rolled back alone; none is durable before the group commits.
    pub(crate) fn begin_group(&mut self) -> Result<(), Error> {
        if self.grouped {
            return Err(Error::Invalid("a group of operations is already open".to_owned()));
        }
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.settle();
        }
        self.conn.execute_cached("BEGIN IMMEDIATE", []).map_err(store("begin a group"))?;
        self.grouped = true;
        Ok(())
    }

    /// Ends the group: commits it when `commit`, else rolls it back. `Ok` means every
    /// operation of the group that returned `Ok` is committed (durable as the `synchronous`
    /// setting makes commits, see the module docs).
    pub(crate) fn end_group(&mut self, commit: bool) -> Result<(), Error> {
        self.grouped = false;
        if self.conn.is_autocommit() {
            // SQLite rolled the transaction back itself (an I/O error, a full disk): none of
            // the group was stored.
            return Err(Error::Store { what: "commit a group", source: StoreError(aborted()) });
        }
        if commit {
            match self.conn.execute_cached("COMMIT", []) {
                Ok(_) => {
                    if let Some(checkpointer) = &self.checkpointer {
                        checkpointer.committed();
                    }
                    return Ok(());
                }
                Err(e) => {
                    if !self.conn.is_autocommit() {
                        let _ = self.conn.execute_cached("ROLLBACK", []);
                    }
                    return Err(store("commit a group")(e));
                }
            }
        }
        self.conn.execute_cached("ROLLBACK", []).map_err(store("roll a group back"))?;
        Ok(())
    }

    /// One operation of a group, in a savepoint.
    fn savepoint<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        if self.conn.is_autocommit() {
            // The group's transaction is gone (SQLite rolled it back after an I/O error): write
            // nothing more outside it; the group ends in an error.
            return Err(Error::Store { what: "continue a group", source: StoreError(aborted()) });
        }
        self.conn.execute_cached("SAVEPOINT operation", []).map_err(store("begin an operation"))?;
        let value = f(&Tx { conn: &self.conn });
        let ended = match &value {
            Ok(_) => self.conn.execute_cached("RELEASE operation", []),
            Err(_) => self.conn.execute_cached("ROLLBACK TO operation", []),
        };
        if value.is_err() || ended.is_err() {
            // A rolled-back savepoint stays open until released; a release that failed is
            // rolled back (it wrote nothing then).
            if ended.is_err() {
                let _ = self.conn.execute_cached("ROLLBACK TO operation", []);
            }
            let _ = self.conn.execute_cached("RELEASE operation", []);
        }
        ended.map_err(store("end an operation"))?;
        value
    }
}

/// The error of a group whose transaction SQLite ended on its own.
fn aborted() -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("the group's transaction was rolled back".to_owned()),
    )
}

/// When a Post with a `Msg/ID` from an SMSID was first stored.
const MESSAGE_STORED: &str = "SELECT received_ms FROM messages WHERE message_id = ?1 \
    AND outcome = 'stored' AND smsid IS ?2 ORDER BY id LIMIT 1";

/// Prepared statements kept per connection: more than the site has, so the hot ones (a Post
/// runs about a dozen) are compiled once per connection rather than once per message.
const STATEMENT_CACHE: usize = 64;

/// Statements through the connection's prepared statement cache (the SQL text is the key).
trait Cached {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// A transaction: the typed statements of the site.
pub(crate) struct Tx<'c> {
    conn: &'c Connection,
}

/// A client record's row ID (`clients.id`; ConfigMgr's resource ID plays this part).
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientId(pub i64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A conflicting record's ID (`conflicts.id`).
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConflictId(pub i64);

impl fmt::Display for ConflictId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An injected fault's ID (`faults.id`).
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(pub i64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An ISV proxy as [`Tx::proxy_signer`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxySigner {
    /// The proxy is blocked: it no longer speaks for its clients.
    pub(crate) blocked: bool,
    /// Its signing certificate (DER), which signs its clients' messages.
    pub(crate) signing_cert: Vec<u8>,
}

/// A client record.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// Row ID.
    pub id: ClientId,
    /// The SMSID the site issued.
    pub smsid: SmsId,
    /// DER of the registered signing certificate (for an ISV proxy's client: the proxy's).
    pub signing_cert: Vec<u8>,
    /// DER of the registered encryption certificate, when one was sent.
    pub encryption_cert: Option<Vec<u8>>,
    /// The registration's hash: `SHA-1` or `SHA-256`.
    pub hash_algorithm: String,
    /// The hardware ID, when known.
    pub hardware_id: Option<String>,
    /// `AgentType`: 0 client, 4 ISV proxy, 8 ISV proxy client, ….
    pub agent_type: i32,
    /// `AgentIdentity`.
    pub agent_identity: String,
    /// `AgentVersion`.
    pub agent_version: String,
    /// `Netbios Name`.
    pub netbios_name: Option<String>,
    /// `FQ Name`.
    pub fqdn: Option<String>,
    /// The ISV proxy that registered this client.
    pub proxy: Option<ClientId>,
    /// Approved (policy may be sent).
    pub approved: bool,
    /// Registration completed (`Status` 0 sent); false while the registration is pending.
    pub registered: bool,
    /// Blocked by an administrator.
    pub blocked: bool,
    /// Superseded by a newer record with the same hardware ID.
    pub obsolete: bool,
    /// An ISV proxy whose certificate an administrator imported.
    pub imported_proxy: bool,
    /// The unresolved conflict parking this record, if any.
    pub conflict: Option<ConflictId>,
    /// When the record was created.
    pub created: DateTime<Utc>,
    /// When the registration completed.
    pub registered_at: Option<DateTime<Utc>>,
    /// When the client last sent anything the site accepted.
    pub last_seen: Option<DateTime<Utc>>,
}

/// What a new client record starts with.
#[derive(Debug, Clone)]
pub(crate) struct NewClient<'a> {
    pub(crate) smsid: SmsId,
    pub(crate) signing_cert: &'a [u8],
    pub(crate) encryption_cert: Option<&'a [u8]>,
    pub(crate) hash_algorithm: &'a str,
    pub(crate) hardware_id: Option<&'a str>,
    pub(crate) agent_type: i32,
    pub(crate) agent_identity: &'a str,
    pub(crate) agent_version: &'a str,
    pub(crate) netbios_name: Option<&'a str>,
    pub(crate) fqdn: Option<&'a str>,
    pub(crate) proxy: Option<ClientId>,
    pub(crate) approved: bool,
    pub(crate) registered: bool,
    pub(crate) imported_proxy: bool,
    pub(crate) now: DateTime<Utc>,
}

/// A conflicting record (source 003, "Conflicting Records node").
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// Its ID, for [`crate::Site::resolve_conflict`].
    pub id: ConflictId,
    /// The parked record (gone after a merge).
    pub parked: Option<ClientId>,
    /// The parked record's SMSID.
    pub parked_smsid: SmsId,
    /// The existing record with the same hardware ID.
    pub existing: ClientId,
    /// The duplicated hardware ID.
    pub hardware_id: String,
    /// When the conflict was detected.
    pub created: DateTime<Utc>,
    /// When and how it was resolved.
    pub resolved: Option<(DateTime<Utc>, String)>,
}

/// What happened to a received message.
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum MessageOutcome {
    /// A Post whose content was stored.
    Stored,
    /// A redelivered Post (same `Msg/ID`); nothing new stored.
    Duplicate,
    /// Refused; the reason says why.
    Refused,
    /// A request answered (registration, policy, location).
    Answered,
    /// The emulator failed while handling it (a store error, say) and answered HTTP 500, so
    /// the client sends it again; nothing of it was kept. The reason is the error.
    Failed,
}

impl MessageOutcome {
    fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Stored => "stored",
            MessageOutcome::Duplicate => "duplicate",
            MessageOutcome::Refused => "refused",
            MessageOutcome::Answered => "answered",
            MessageOutcome::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stored" => MessageOutcome::Stored,
            "duplicate" => MessageOutcome::Duplicate,
            "refused" => MessageOutcome::Refused,
            "answered" => MessageOutcome::Answered,
            "failed" => MessageOutcome::Failed,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One received message, as logged.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// Log row ID.
    pub row: i64,
    /// `Msg/ID`, braced, when the message had one.
    pub message_id: Option<String>,
    /// `Msg/TargetEndpoint` (or `.sms_pol` for policy body downloads).
    pub endpoint: String,
    /// The kind name, e.g. `HinvReport`.
    pub kind: String,
    /// The client record, when the sender is known.
    pub client: Option<ClientId>,
    /// The SMSID the message named, known or not.
    pub smsid: Option<String>,
    /// When it was received.
    pub received: DateTime<Utc>,
    /// What happened.
    pub outcome: MessageOutcome,
    /// Why (a refusal code) or what was stored.
    pub reason: Option<String>,
}

/// A message to log.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage<'a> {
    pub(crate) message_id: Option<&'a str>,
    pub(crate) endpoint: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) client: Option<ClientId>,
    pub(crate) smsid: Option<&'a str>,
    pub(crate) now: DateTime<Utc>,
    pub(crate) outcome: MessageOutcome,
    pub(crate) reason: Option<&'a str>,
}

/// A client's latest discovery data.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryRecord {
    /// The client.
    pub client: ClientId,
    /// `CCM_System/Name` or the report's NetBIOS name.
    pub netbios_name: Option<String>,
    /// `CCM_ComputerSystem/Domain`.
    pub domain: Option<String>,
    /// `CCM_ADSiteInfo/ADSiteName`.
    pub ad_site: Option<String>,
    /// `Win32_ComputerSystemProduct/UUID`.
    pub hardware_uuid: Option<String>,
    /// `Win32_NetworkAdapterConfiguration/IPAddress` values.
    pub ip_addresses: Vec<String>,
    /// The whole report: its XML as received when the request carried it (a DDR sent over
    /// HTTP), else the canonical encoding of the decoded report.
    pub report_xml: String,
    /// When it arrived.
    pub updated: DateTime<Utc>,
}

/// A client's last inventory version for one inventory action (field notes §3, M12).
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct InventoryVersion {
    /// The client.
    pub client: ClientId,
    /// The action: `InventoryActionID` (plus `/` and the `FileCollectionActionID`).
    pub action: String,
    /// Last accepted `major.minor`, if any report was accepted.
    pub version: Option<(u32, u32)>,
    /// When a resync was requested (a delta was missing or out of order); cleared by the next
    /// full report.
    pub resync_requested: Option<DateTime<Utc>>,
    /// When the row last changed.
    pub updated: DateTime<Utc>,
}

/// One stored inventory instance.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct InventoryInstance {
    /// The client.
    pub client: ClientId,
    /// The inventory action.
    pub action: String,
    /// `Instance/@Class`.
    pub class: String,
    /// The instance key (see [`crate::site::InventorySettings`]).
    pub key: String,
    /// `Instance/@Namespace`.
    pub namespace: String,
    /// The instance element, XML.
    pub xml: String,
    /// When it was last written.
    pub updated: DateTime<Utc>,
}

/// A collected file (file collection or IDMIF).
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CollectedFileRecord {
    /// The client.
    pub client: ClientId,
    /// `filecoll` or `idmif`.
    pub collection: String,
    /// `CollectedFile/@ID`.
    pub file_id: u32,
    /// `Name`.
    pub name: String,
    /// `Path`.
    pub path: String,
    /// `Size` as reported.
    pub size: i64,
    /// `LastWriteDate` (SMS time).
    pub last_write_date: String,
    /// The attachment named by the ID, when it came.
    pub content: Option<Vec<u8>>,
    /// When it arrived.
    pub received: DateTime<Utc>,
}

/// A stored state message.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StateMessageRecord {
    /// The client.
    pub client: ClientId,
    /// `SerialNumber`.
    pub serial: u32,
    /// `MessageTime` (SMS time).
    pub message_time: String,
    /// `Topic/@ID`.
    pub topic_id: String,
    /// `Topic/@Type`.
    pub topic_type: i32,
    /// `State/@ID`.
    pub state_id: i32,
    /// The `StateMessage` element, XML.
    pub xml: String,
    /// When it arrived.
    pub received: DateTime<Utc>,
}

/// A stored status message.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StatusMessageRecord {
    /// The client, when known.
    pub client: Option<ClientId>,
    /// `Type`, e.g. `SMS_StatusMessage`.
    pub status_type: String,
    /// The `Status` document, XML.
    pub xml: String,
    /// When it arrived.
    pub received: DateTime<Utc>,
}

/// A stored software metering usage record.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct MeteringRecord {
    /// The client.
    pub client: ClientId,
    /// `ProductInfo/@ProductName`.
    pub product_name: Option<String>,
    /// `SoftwareFileInfo/@FileName`.
    pub file_name: String,
    /// `HistoricalMeterData/@MeteredDataID`.
    pub metered_data_id: String,
    /// `StartTime` (SMS time).
    pub start_time: String,
    /// `EndTime`.
    pub end_time: Option<String>,
    /// `UserName`.
    pub user_name: Option<String>,
    /// `Status` flags.
    pub status: i32,
    /// When it arrived.
    pub received: DateTime<Utc>,
}

/// Where a stored policy came from.
#[derive(serde::Serialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// The site file (replaced when the site opens).
    File,
    /// An admin call (kept across restarts).
    Admin,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "admin" { Source::Admin } else { Source::File }
    }
}

/// A stored policy assignment.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The assignment and body.
    pub spec: PolicySpec,
    /// Where it came from.
    pub source: Source,
    /// When it last changed.
    pub changed: DateTime<Utc>,
}

/// A stored fault.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct StoredFault {
    /// Its ID.
    pub id: FaultId,
    /// The fault.
    pub spec: FaultSpec,
    /// Where it came from.
    pub source: Source,
}

/// Counts over the whole site: what the admin summary and the demo's check read back.
#[derive(serde::Serialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Client records (registered or not, proxies included).
    pub clients: i64,
    /// Registered clients.
    pub registered: i64,
    /// Approved clients.
    pub approved: i64,
    /// Blocked clients.
    pub blocked: i64,
    /// Messages by kind and outcome: `(kind, outcome, count)`.
    pub messages: Vec<(String, String, i64)>,
    /// Discovery records.
    pub discovery: i64,
    /// Inventory instances stored.
    pub inventory_instances: i64,
    /// State messages stored.
    pub state_messages: i64,
    /// Status messages stored.
    pub status_messages: i64,
    /// Files collected.
    pub collected_files: i64,
    /// Metering records.
    pub metering: i64,
}

impl Tx<'_> {
    // ---- clients -------------------------------------------------------------------------

    pub(crate) fn insert_client(&self, c: &NewClient<'_>) -> Result<ClientId, Error> {
        let now = ms(c.now);
        self.conn
            .execute_cached(
                "INSERT INTO clients (smsid, signing_cert, encryption_cert, hash_algorithm, \
                 hardware_id, agent_type, agent_identity, agent_version, netbios_name, fqdn, \
                 proxy_id, approved, registered, blocked, obsolete, imported_proxy, created_ms, \
                 registered_ms, last_seen_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, 0, ?14, ?15, ?16, NULL)",
                params![
                    c.smsid.to_string(),
                    c.signing_cert,
                    c.encryption_cert,
                    c.hash_algorithm,
                    c.hardware_id,
                    c.agent_type,
                    c.agent_identity,
                    c.agent_version,
                    c.netbios_name,
                    c.fqdn,
                    c.proxy.map(|p| p.0),
                    c.approved,
                    c.registered,
                    c.imported_proxy,
                    now,
                    c.registered.then_some(now),
                ],
            )
            .map_err(store("insert a client"))?;
        Ok(ClientId(self.conn.last_insert_rowid()))
    }

    /// Writes every mutable column of `c` back.
    pub(crate) fn save_client(&self, c: &ClientRecord) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "UPDATE clients SET smsid = ?2, signing_cert = ?3, encryption_cert = ?4, \
                 hash_algorithm = ?5, hardware_id = ?6, agent_type = ?7, agent_identity = ?8, \
                 agent_version = ?9, netbios_name = ?10, fqdn = ?11, proxy_id = ?12, \
                 approved = ?13, registered = ?14, blocked = ?15, obsolete = ?16, \
                 imported_proxy = ?17, registered_ms = ?18, last_seen_ms = ?19 WHERE id = ?1",
                params![
                    c.id.0,
                    c.smsid.to_string(),
                    c.signing_cert,
                    c.encryption_cert,
                    c.hash_algorithm,
                    c.hardware_id,
                    c.agent_type,
                    c.agent_identity,
                    c.agent_version,
                    c.netbios_name,
                    c.fqdn,
                    c.proxy.map(|p| p.0),
                    c.approved,
                    c.registered,
                    c.blocked,
                    c.obsolete,
                    c.imported_proxy,
                    c.registered_at.map(ms),
                    c.last_seen.map(ms),
                ],
            )
            .map_err(store("update a client"))?;
        Ok(())
    }

    /// Sets the hardware ID alone: a full [`Tx::save_client`] would rewrite every index of
    /// the row (the SMSID, the signing certificate's DER) although only this column changes.
    pub(crate) fn set_hardware_id(&self, id: ClientId, hardware_id: &str) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "UPDATE clients SET hardware_id = ?2 WHERE id = ?1",
                params![id.0, hardware_id],
            )
            .map_err(store("update a client"))?;
        Ok(())
    }

    pub(crate) fn touch_client(&self, id: ClientId, now: DateTime<Utc>) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "UPDATE clients SET last_seen_ms = ?2 WHERE id = ?1",
                params![id.0, ms(now)],
            )
            .map_err(store("update a client"))?;
        Ok(())
    }

    /// What an ISV proxy's clients' messages need of the proxy: whether it is blocked, and
    /// its signing certificate. Reading the whole record (its other certificate, the conflict
    /// lookup) for every message of every client was about 3 % of the committer's time in the
    /// load benchmark's DDR phase.
    pub(crate) fn proxy_signer(&self, id: ClientId) -> Result<Option<ProxySigner>, Error> {
        self.conn
            .query_row_cached(
                "SELECT blocked, signing_cert FROM clients WHERE id = ?1",
                params![id.0],
                |r| Ok(ProxySigner { blocked: r.get(0)?, signing_cert: r.get(1)? }),
            )
            .optional()
            .map_err(store("read an ISV proxy"))
    }

    pub(crate) fn client(&self, id: ClientId) -> Result<Option<ClientRecord>, Error> {
        self.conn
            .query_row_cached(
                concat!(client_select!(), " WHERE c.id = ?1"),
                params![id.0],
                client_from_row,
            )
            .optional()
            .map_err(store("read a client"))
    }

    pub(crate) fn client_by_smsid(&self, smsid: &SmsId) -> Result<Option<ClientRecord>, Error> {
        self.conn
            .query_row_cached(
                concat!(client_select!(), " WHERE c.smsid = ?1"),
                params![smsid.to_string()],
                client_from_row,
            )
            .optional()
            .map_err(store("read a client"))
    }

    /// Records registered with this signing certificate that are not an ISV proxy's clients
    /// (those share the proxy's certificate).
    pub(crate) fn clients_by_signing_cert(&self, der: &[u8]) -> Result<Vec<ClientRecord>, Error> {
        self.query(
            concat!(
                client_select!(),
                " WHERE c.signing_cert = ?1 AND c.proxy_id IS NULL ORDER BY c.id"
            ),
            params![der],
            client_from_row,
            "find clients by certificate",
        )
    }

    pub(crate) fn clients_by_hardware_id(&self, hwid: &str) -> Result<Vec<ClientRecord>, Error> {
        self.query(
            concat!(client_select!(), " WHERE c.hardware_id = ?1 ORDER BY c.id"),
            params![hwid],
            client_from_row,
            "find clients by hardware ID",
        )
    }

    pub(crate) fn clients(&self) -> Result<Vec<ClientRecord>, Error> {
        self.query(concat!(client_select!(), " ORDER BY c.id"), [], client_from_row, "list clients")
    }

    pub(crate) fn delete_client(&self, id: ClientId) -> Result<(), Error> {
        self.conn
            .execute_cached("DELETE FROM clients WHERE id = ?1", params![id.0])
            .map_err(store("delete a client"))?;
        Ok(())
    }

    /// Moves everything recorded for `from` to `to` (a merge).
    pub(crate) fn move_client_rows(&self, from: ClientId, to: ClientId) -> Result<(), Error> {
        let moves = [
            "UPDATE messages SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE OR REPLACE discovery SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE OR REPLACE inventory_versions SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE OR REPLACE inventory_instances SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE collected_files SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE OR IGNORE state_messages SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE status_messages SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE metering SET client_id = ?2 WHERE client_id = ?1",
            "UPDATE clients SET proxy_id = ?2 WHERE proxy_id = ?1",
        ];
        for sql in moves {
            self.conn
                .execute_cached(sql, params![from.0, to.0])
                .map_err(store("merge client records"))?;
        }
        Ok(())
    }

    // ---- conflicts -----------------------------------------------------------------------

    pub(crate) fn insert_conflict(
        &self,
        parked: ClientId,
        parked_smsid: &SmsId,
        existing: ClientId,
        hardware_id: &str,
        now: DateTime<Utc>,
    ) -> Result<ConflictId, Error> {
        self.conn
            .execute_cached(
                "INSERT INTO conflicts (parked_id, parked_smsid, existing_id, hardware_id, \
                 created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![parked.0, parked_smsid.to_string(), existing.0, hardware_id, ms(now)],
            )
            .map_err(store("park a conflicting record"))?;
        Ok(ConflictId(self.conn.last_insert_rowid()))
    }

    pub(crate) fn conflict(&self, id: ConflictId) -> Result<Option<ConflictRecord>, Error> {
        self.conn
            .query_row_cached(
                concat!(conflict_select!(), " WHERE id = ?1"),
                params![id.0],
                conflict_from_row,
            )
            .optional()
            .map_err(store("read a conflict"))
    }

    pub(crate) fn conflicts(&self, open_only: bool) -> Result<Vec<ConflictRecord>, Error> {
        self.query(
            concat!(conflict_select!(), " WHERE (?1 = 0 OR resolved_ms IS NULL) ORDER BY id"),
            params![open_only],
            conflict_from_row,
            "list conflicts",
        )
    }

    pub(crate) fn resolve_conflict(
        &self,
        id: ConflictId,
        resolution: &str,
        parked: Option<ClientId>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "UPDATE conflicts SET resolved_ms = ?2, resolution = ?3, parked_id = ?4 \
                 WHERE id = ?1",
                params![id.0, ms(now), resolution, parked.map(|p| p.0)],
            )
            .map_err(store("resolve a conflict"))?;
        Ok(())
    }

    // ---- messages ------------------------------------------------------------------------

    /// When a Post with this `Msg/ID` from this SMSID was stored, if it was.
    pub(crate) fn message_stored(
        &self,
        message_id: &str,
        smsid: Option<&str>,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        self.conn
            .query_row_cached(MESSAGE_STORED, params![message_id, smsid], |r| r.get::<_, i64>(0))
            .optional()
            .map(|o| o.map(time))
            .map_err(store("look up a message ID"))
    }

    pub(crate) fn insert_message(&self, m: &NewMessage<'_>) -> Result<i64, Error> {
        self.conn
            .execute_cached(
                "INSERT INTO messages (message_id, endpoint, kind, client_id, smsid, received_ms, \
                 outcome, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    m.message_id,
                    m.endpoint,
                    m.kind,
                    m.client.map(|c| c.0),
                    m.smsid,
                    ms(m.now),
                    m.outcome.as_str(),
                    m.reason,
                ],
            )
            .map_err(store("record a message"))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub(crate) fn summary(&self) -> Result<Summary, Error> {
        let count = |sql: &'static str, what: &'static str| -> Result<i64, Error> {
            self.query(sql, params![], |r| r.get::<_, i64>(0), what)
                .map(|v| v.first().copied().unwrap_or(0))
        };
        Ok(Summary {
            clients: count("SELECT count(*) FROM clients", "count clients")?,
            registered: count("SELECT count(*) FROM clients WHERE registered = 1", "count registered")?,
            approved: count("SELECT count(*) FROM clients WHERE approved = 1", "count approved")?,
            blocked: count("SELECT count(*) FROM clients WHERE blocked = 1", "count blocked")?,
            messages: self.query(
                "SELECT kind, outcome, count(*) FROM messages GROUP BY kind, outcome ORDER BY kind, outcome",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                "count messages",
            )?,
            discovery: count("SELECT count(*) FROM discovery", "count discovery")?,
            inventory_instances: count("SELECT count(*) FROM inventory_instances", "count instances")?,
            state_messages: count("SELECT count(*) FROM state_messages", "count state messages")?,
            status_messages: count("SELECT count(*) FROM status_messages", "count status messages")?,
            collected_files: count("SELECT count(*) FROM collected_files", "count files")?,
            metering: count("SELECT count(*) FROM metering", "count metering")?,
        })
    }

    /// The latest messages; with `of`, those of the client record or naming the SMSID.
    pub(crate) fn messages(
        &self,
        of: Option<(Option<ClientId>, String)>,
        limit: u32,
    ) -> Result<Vec<MessageRecord>, Error> {
        let (client, smsid) = match of {
            Some((client, smsid)) => (client.map(|c| c.0), Some(smsid)),
            None => (None, None),
        };
        self.query(
            "SELECT id, message_id, endpoint, kind, client_id, smsid, received_ms, outcome, reason \
             FROM messages WHERE (?3 IS NULL OR client_id = ?1 OR smsid = ?3 COLLATE NOCASE) \
             ORDER BY id DESC LIMIT ?2",
            params![client, limit, smsid],
            |r| {
                let outcome: String = r.get(7)?;
                Ok(MessageRecord {
                    row: r.get(0)?,
                    message_id: r.get(1)?,
                    endpoint: r.get(2)?,
                    kind: r.get(3)?,
                    client: r.get::<_, Option<i64>>(4)?.map(ClientId),
                    smsid: r.get(5)?,
                    received: time(r.get(6)?),
                    outcome: MessageOutcome::parse(&outcome)
                        .ok_or_else(|| conversion(7, "message outcome", &outcome))?,
                    reason: r.get(8)?,
                })
            },
            "list messages",
        )
    }

    // ---- discovery -----------------------------------------------------------------------

    pub(crate) fn upsert_discovery(&self, d: &DiscoveryRecord) -> Result<(), Error> {
        let ips = serde_json::to_string(&d.ip_addresses).unwrap_or_else(|_| "[]".to_owned());
        self.conn
            .execute_cached(
                "INSERT INTO discovery (client_id, netbios_name, domain, ad_site, hardware_uuid, \
                 ip_addresses, report_xml, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (client_id) DO UPDATE SET netbios_name = excluded.netbios_name, \
                 domain = excluded.domain, ad_site = excluded.ad_site, \
                 hardware_uuid = excluded.hardware_uuid, ip_addresses = excluded.ip_addresses, \
                 report_xml = excluded.report_xml, updated_ms = excluded.updated_ms",
                params![
                    d.client.0,
                    d.netbios_name,
                    d.domain,
                    d.ad_site,
                    d.hardware_uuid,
                    ips,
                    d.report_xml,
                    ms(d.updated),
                ],
            )
            .map_err(store("store discovery data"))?;
        Ok(())
    }

    pub(crate) fn discovery(&self, client: ClientId) -> Result<Option<DiscoveryRecord>, Error> {
        self.conn
            .query_row_cached(
                "SELECT client_id, netbios_name, domain, ad_site, hardware_uuid, ip_addresses, \
                 report_xml, updated_ms FROM discovery WHERE client_id = ?1",
                params![client.0],
                |r| {
                    let ips: String = r.get(5)?;
                    Ok(DiscoveryRecord {
                        client: ClientId(r.get(0)?),
                        netbios_name: r.get(1)?,
                        domain: r.get(2)?,
                        ad_site: r.get(3)?,
                        hardware_uuid: r.get(4)?,
                        ip_addresses: serde_json::from_str(&ips)
                            .map_err(|_| conversion(5, "IP address list", &ips))?,
                        report_xml: r.get(6)?,
                        updated: time(r.get(7)?),
                    })
                },
            )
            .optional()
            .map_err(store("read discovery data"))
    }

    // ---- inventory -----------------------------------------------------------------------

    pub(crate) fn inventory_version(
        &self,
        client: ClientId,
        action: &str,
    ) -> Result<Option<InventoryVersion>, Error> {
        self.conn
            .query_row_cached(
                concat!(version_select!(), " WHERE client_id = ?1 AND action = ?2"),
                params![client.0, action],
                version_from_row,
            )
            .optional()
            .map_err(store("read an inventory version"))
    }

    pub(crate) fn inventory_versions(
        &self,
        client: ClientId,
    ) -> Result<Vec<InventoryVersion>, Error> {
        self.query(
            concat!(version_select!(), " WHERE client_id = ?1 ORDER BY action"),
            params![client.0],
            version_from_row,
            "list inventory versions",
        )
    }

    /// Stores an accepted version and clears any resync request.
    pub(crate) fn set_inventory_version(
        &self,
        client: ClientId,
        action: &str,
        (major, minor): (u32, u32),
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO inventory_versions (client_id, action, major, minor, \
                 resync_requested_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, NULL, ?5) \
                 ON CONFLICT (client_id, action) DO UPDATE SET major = excluded.major, \
                 minor = excluded.minor, resync_requested_ms = NULL, updated_ms = excluded.updated_ms",
                params![client.0, action, major, minor, ms(now)],
            )
            .map_err(store("store an inventory version"))?;
        Ok(())
    }

    /// Marks that a resync was requested (kept until the next full report).
    pub(crate) fn request_resync(
        &self,
        client: ClientId,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO inventory_versions (client_id, action, major, minor, \
                 resync_requested_ms, updated_ms) VALUES (?1, ?2, NULL, NULL, ?3, ?3) \
                 ON CONFLICT (client_id, action) DO UPDATE SET \
                 resync_requested_ms = coalesce(resync_requested_ms, excluded.resync_requested_ms), \
                 updated_ms = excluded.updated_ms",
                params![client.0, action, ms(now)],
            )
            .map_err(store("request an inventory resync"))?;
        Ok(())
    }

    pub(crate) fn clear_instances(&self, client: ClientId, action: &str) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "DELETE FROM inventory_instances WHERE client_id = ?1 AND action = ?2",
                params![client.0, action],
            )
            .map_err(store("replace inventory"))?;
        Ok(())
    }

    pub(crate) fn upsert_instance(&self, i: &InventoryInstance) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO inventory_instances (client_id, action, class, instance_key, \
                 namespace, xml, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (client_id, action, class, instance_key) DO UPDATE SET \
                 namespace = excluded.namespace, xml = excluded.xml, updated_ms = excluded.updated_ms",
                params![i.client.0, i.action, i.class, i.key, i.namespace, i.xml, ms(i.updated)],
            )
            .map_err(store("store an inventory instance"))?;
        Ok(())
    }

    pub(crate) fn delete_instance(
        &self,
        client: ClientId,
        action: &str,
        class: &str,
        key: &str,
    ) -> Result<bool, Error> {
        let n = self
            .conn
            .execute_cached(
                "DELETE FROM inventory_instances WHERE client_id = ?1 AND action = ?2 \
                 AND class = ?3 AND instance_key = ?4",
                params![client.0, action, class, key],
            )
            .map_err(store("delete an inventory instance"))?;
        Ok(n > 0)
    }

    pub(crate) fn instances(&self, client: ClientId) -> Result<Vec<InventoryInstance>, Error> {
        self.query(
            "SELECT client_id, action, class, instance_key, namespace, xml, updated_ms \
             FROM inventory_instances WHERE client_id = ?1 ORDER BY action, class, instance_key",
            params![client.0],
            |r| {
                Ok(InventoryInstance {
                    client: ClientId(r.get(0)?),
                    action: r.get(1)?,
                    class: r.get(2)?,
                    key: r.get(3)?,
                    namespace: r.get(4)?,
                    xml: r.get(5)?,
                    updated: time(r.get(6)?),
                })
            },
            "list inventory",
        )
    }

    // ---- collected files -----------------------------------------------------------------

    pub(crate) fn insert_file(
        &self,
        f: &CollectedFileRecord,
        message_row: i64,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO collected_files (client_id, message_row, collection, file_id, name, \
                 path, size, last_write_date, content, received_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    f.client.0,
                    message_row,
                    f.collection,
                    f.file_id,
                    f.name,
                    f.path,
                    f.size,
                    f.last_write_date,
                    f.content,
                    ms(f.received),
                ],
            )
            .map_err(store("store a collected file"))?;
        Ok(())
    }

    pub(crate) fn files(&self, client: ClientId) -> Result<Vec<CollectedFileRecord>, Error> {
        self.query(
            "SELECT client_id, collection, file_id, name, path, size, last_write_date, content, \
             received_ms FROM collected_files WHERE client_id = ?1 ORDER BY id",
            params![client.0],
            |r| {
                Ok(CollectedFileRecord {
                    client: ClientId(r.get(0)?),
                    collection: r.get(1)?,
                    file_id: r.get(2)?,
                    name: r.get(3)?,
                    path: r.get(4)?,
                    size: r.get(5)?,
                    last_write_date: r.get(6)?,
                    content: r.get(7)?,
                    received: time(r.get(8)?),
                })
            },
            "list collected files",
        )
    }

    // ---- state, status, metering ---------------------------------------------------------

    /// Stores a state message unless one with the same serial number is already stored for
    /// the client; returns whether it was stored.
    pub(crate) fn insert_state(
        &self,
        s: &StateMessageRecord,
        message_row: i64,
    ) -> Result<bool, Error> {
        let n = self
            .conn
            .execute_cached(
                "INSERT OR IGNORE INTO state_messages (client_id, serial, message_row, \
                 message_time, topic_id, topic_type, state_id, xml, received_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    s.client.0,
                    s.serial,
                    message_row,
                    s.message_time,
                    s.topic_id,
                    s.topic_type,
                    s.state_id,
                    s.xml,
                    ms(s.received),
                ],
            )
            .map_err(store("store a state message"))?;
        Ok(n == 1)
    }

    pub(crate) fn state_messages(
        &self,
        client: ClientId,
    ) -> Result<Vec<StateMessageRecord>, Error> {
        self.query(
            "SELECT client_id, serial, message_time, topic_id, topic_type, state_id, xml, \
             received_ms FROM state_messages WHERE client_id = ?1 ORDER BY serial",
            params![client.0],
            |r| {
                Ok(StateMessageRecord {
                    client: ClientId(r.get(0)?),
                    serial: r.get(1)?,
                    message_time: r.get(2)?,
                    topic_id: r.get(3)?,
                    topic_type: r.get(4)?,
                    state_id: r.get(5)?,
                    xml: r.get(6)?,
                    received: time(r.get(7)?),
                })
            },
            "list state messages",
        )
    }

    pub(crate) fn insert_status(
        &self,
        s: &StatusMessageRecord,
        message_row: i64,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO status_messages (client_id, message_row, status_type, xml, \
                 received_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s.client.map(|c| c.0), message_row, s.status_type, s.xml, ms(s.received)],
            )
            .map_err(store("store a status message"))?;
        Ok(())
    }

    pub(crate) fn status_messages(
        &self,
        client: ClientId,
    ) -> Result<Vec<StatusMessageRecord>, Error> {
        self.query(
            "SELECT client_id, status_type, xml, received_ms FROM status_messages \
             WHERE client_id = ?1 ORDER BY id",
            params![client.0],
            |r| {
                Ok(StatusMessageRecord {
                    client: r.get::<_, Option<i64>>(0)?.map(ClientId),
                    status_type: r.get(1)?,
                    xml: r.get(2)?,
                    received: time(r.get(3)?),
                })
            },
            "list status messages",
        )
    }

    pub(crate) fn insert_metering(
        &self,
        m: &MeteringRecord,
        message_row: i64,
    ) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO metering (client_id, message_row, product_name, file_name, \
                 metered_data_id, start_time, end_time, user_name, status, received_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    m.client.0,
                    message_row,
                    m.product_name,
                    m.file_name,
                    m.metered_data_id,
                    m.start_time,
                    m.end_time,
                    m.user_name,
                    m.status,
                    ms(m.received),
                ],
            )
            .map_err(store("store metering data"))?;
        Ok(())
    }

    pub(crate) fn metering(&self, client: ClientId) -> Result<Vec<MeteringRecord>, Error> {
        self.query(
            "SELECT client_id, product_name, file_name, metered_data_id, start_time, end_time, \
             user_name, status, received_ms FROM metering WHERE client_id = ?1 ORDER BY id",
            params![client.0],
            |r| {
                Ok(MeteringRecord {
                    client: ClientId(r.get(0)?),
                    product_name: r.get(1)?,
                    file_name: r.get(2)?,
                    metered_data_id: r.get(3)?,
                    start_time: r.get(4)?,
                    end_time: r.get(5)?,
                    user_name: r.get(6)?,
                    status: r.get(7)?,
                    received: time(r.get(8)?),
                })
            },
            "list metering data",
        )
    }

    // ---- policies ------------------------------------------------------------------------

    pub(crate) fn policies(&self) -> Result<Vec<StoredPolicy>, Error> {
        self.query(
            concat!(policy_select!(), " ORDER BY assignment_id"),
            [],
            policy_from_row,
            "list policies",
        )
    }

    pub(crate) fn policy_by_id(&self, policy_id: &str) -> Result<Option<StoredPolicy>, Error> {
        self.conn
            .query_row_cached(
                concat!(policy_select!(), " WHERE policy_id = ?1"),
                params![policy_id],
                policy_from_row,
            )
            .optional()
            .map_err(store("read a policy"))
    }

    /// Inserts or replaces the assignment; returns whether anything changed.
    pub(crate) fn upsert_policy(
        &self,
        p: &PolicySpec,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let existing = self
            .conn
            .query_row_cached(
                concat!(policy_select!(), " WHERE assignment_id = ?1"),
                params![p.assignment_id],
                policy_from_row,
            )
            .optional()
            .map_err(store("read a policy"))?;
        if existing.as_ref().is_some_and(|e| e.spec == *p && e.source == source) {
            return Ok(false);
        }
        self.conn
            .execute_cached(
                "INSERT INTO policies (assignment_id, policy_id, version, category, scope, flags, \
                 ready_after_secs, body, source, changed_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (assignment_id) DO UPDATE SET policy_id = excluded.policy_id, \
                 version = excluded.version, category = excluded.category, scope = excluded.scope, \
                 flags = excluded.flags, ready_after_secs = excluded.ready_after_secs, \
                 body = excluded.body, source = excluded.source, changed_ms = excluded.changed_ms",
                params![
                    p.assignment_id,
                    p.policy_id,
                    p.version,
                    p.category,
                    p.scope.as_str(),
                    p.flags,
                    i64::try_from(p.ready_after_secs).unwrap_or(i64::MAX),
                    p.body,
                    source.as_str(),
                    ms(now),
                ],
            )
            .map_err(store("store a policy"))?;
        Ok(true)
    }

    /// Deletes an assignment; returns whether it existed.
    pub(crate) fn delete_policy(&self, assignment_id: &str) -> Result<bool, Error> {
        let n = self
            .conn
            .execute_cached("DELETE FROM policies WHERE assignment_id = ?1", params![assignment_id])
            .map_err(store("delete a policy"))?;
        Ok(n > 0)
    }

    pub(crate) fn policy_changed(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.conn
            .query_row_cached(
                "SELECT value FROM site_state WHERE name = 'policy_changed_ms'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|o| o.map(time))
            .map_err(store("read the policy change time"))
    }

    pub(crate) fn set_policy_changed(&self, now: DateTime<Utc>) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO site_state (name, value) VALUES ('policy_changed_ms', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![ms(now)],
            )
            .map_err(store("record the policy change time"))?;
        Ok(())
    }

    /// The site mode (`mixed` or `native`) the database was last opened with, if one was
    /// recorded (databases from before the record have none).
    pub(crate) fn site_mode(&self) -> Result<Option<String>, Error> {
        self.conn
            .query_row_cached("SELECT value FROM site_state WHERE name = 'site_mode'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(store("read the site mode"))
    }

    pub(crate) fn set_site_mode(&self, mode: &str) -> Result<(), Error> {
        self.conn
            .execute_cached(
                "INSERT INTO site_state (name, value) VALUES ('site_mode', ?1) \
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![mode],
            )
            .map_err(store("record the site mode"))?;
        Ok(())
    }

    // ---- faults --------------------------------------------------------------------------

    pub(crate) fn insert_fault(
        &self,
        f: &FaultSpec,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<FaultId, Error> {
        self.conn
            .execute_cached(
                "INSERT INTO faults (endpoint, kind, delay_ms, remaining, source, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    f.endpoint,
                    f.kind.name(),
                    f.kind.delay_ms().map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
                    f.remaining,
                    source.as_str(),
                    ms(now),
                ],
            )
            .map_err(store("store a fault"))?;
        Ok(FaultId(self.conn.last_insert_rowid()))
    }

    pub(crate) fn delete_faults_from(&self, source: Source) -> Result<(), Error> {
        self.conn
            .execute_cached("DELETE FROM faults WHERE source = ?1", params![source.as_str()])
            .map_err(store("delete faults"))?;
        Ok(())
    }

    pub(crate) fn delete_fault(&self, id: FaultId) -> Result<bool, Error> {
        let n = self
            .conn
            .execute_cached("DELETE FROM faults WHERE id = ?1", params![id.0])
            .map_err(store("delete a fault"))?;
        Ok(n > 0)
    }

    pub(crate) fn delete_all_faults(&self) -> Result<(), Error> {
        self.conn.execute_cached("DELETE FROM faults", []).map_err(store("delete faults"))?;
        Ok(())
    }

    pub(crate) fn faults(&self) -> Result<Vec<StoredFault>, Error> {
        self.query(concat!(fault_select!(), " ORDER BY id"), [], fault_from_row, "list faults")
    }

    /// The first fault for `endpoint` (or `*`) with uses left, using one up.
    pub(crate) fn take_fault(&self, endpoint: &str) -> Result<Option<FaultKind>, Error> {
        let found = self
            .conn
            .query_row_cached(
                concat!(
                    fault_select!(),
                    " WHERE (endpoint = '*' OR endpoint = ?1 COLLATE NOCASE) \
                     AND (remaining IS NULL OR remaining > 0) ORDER BY id LIMIT 1"
                ),
                params![endpoint],
                fault_from_row,
            )
            .optional()
            .map_err(store("look up a fault"))?;
        let Some(fault) = found else { return Ok(None) };
        match fault.spec.remaining {
            Some(n) if n <= 1 => {
                self.delete_fault(fault.id)?;
            }
            Some(_) => {
                self.conn
                    .execute_cached(
                        "UPDATE faults SET remaining = remaining - 1 WHERE id = ?1",
                        params![fault.id.0],
                    )
                    .map_err(store("use a fault"))?;
            }
            None => {}
        }
        Ok(Some(fault.spec.kind))
    }

    // ---- helpers -------------------------------------------------------------------------

    fn query<T, P: rusqlite::Params>(
        &self,
        sql: &'static str,
        params: P,
        f: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
        what: &'static str,
    ) -> Result<Vec<T>, Error> {
        let run = || -> rusqlite::Result<Vec<T>> {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params, f)?;
            rows.collect()
        };
        run().map_err(store(what))
    }
}

fn client_from_row(r: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    let smsid: String = r.get(1)?;
    Ok(ClientRecord {
        id: ClientId(r.get(0)?),
        smsid: smsid.parse().map_err(|_| conversion(1, "SMSID", &smsid))?,
        signing_cert: r.get(2)?,
        encryption_cert: r.get(3)?,
        hash_algorithm: r.get(4)?,
        hardware_id: r.get(5)?,
        agent_type: r.get(6)?,
        agent_identity: r.get(7)?,
        agent_version: r.get(8)?,
        netbios_name: r.get(9)?,
        fqdn: r.get(10)?,
        proxy: r.get::<_, Option<i64>>(11)?.map(ClientId),
        approved: r.get(12)?,
        registered: r.get(13)?,
        blocked: r.get(14)?,
        obsolete: r.get(15)?,
        imported_proxy: r.get(16)?,
        conflict: r.get::<_, Option<i64>>(17)?.map(ConflictId),
        created: time(r.get(18)?),
        registered_at: r.get::<_, Option<i64>>(19)?.map(time),
        last_seen: r.get::<_, Option<i64>>(20)?.map(time),
    })
}

fn conflict_from_row(r: &Row<'_>) -> rusqlite::Result<ConflictRecord> {
    let smsid: String = r.get(2)?;
    let resolved = match (r.get::<_, Option<i64>>(6)?, r.get::<_, Option<String>>(7)?) {
        (Some(t), Some(how)) => Some((time(t), how)),
        _ => None,
    };
    Ok(ConflictRecord {
        id: ConflictId(r.get(0)?),
        parked: r.get::<_, Option<i64>>(1)?.map(ClientId),
        parked_smsid: smsid.parse().map_err(|_| conversion(2, "SMSID", &smsid))?,
        existing: ClientId(r.get(3)?),
        hardware_id: r.get(4)?,
        created: time(r.get(5)?),
        resolved,
    })
}

fn version_from_row(r: &Row<'_>) -> rusqlite::Result<InventoryVersion> {
    let major: Option<u32> = r.get(2)?;
    let minor: Option<u32> = r.get(3)?;
    Ok(InventoryVersion {
        client: ClientId(r.get(0)?),
        action: r.get(1)?,
        version: major.zip(minor),
        resync_requested: r.get::<_, Option<i64>>(4)?.map(time),
        updated: time(r.get(5)?),
    })
}

fn policy_from_row(r: &Row<'_>) -> rusqlite::Result<StoredPolicy> {
    let scope: String = r.get(4)?;
    let ready: i64 = r.get(6)?;
    let source: String = r.get(8)?;
    Ok(StoredPolicy {
        spec: PolicySpec {
            assignment_id: r.get(0)?,
            policy_id: r.get(1)?,
            version: r.get(2)?,
            category: r.get(3)?,
            scope: if scope == "User" { PolicyScope::User } else { PolicyScope::Machine },
            flags: r.get(5)?,
            ready_after_secs: u64::try_from(ready).unwrap_or(0),
            body: r.get(7)?,
        },
        source: Source::parse(&source),
        changed: time(r.get(9)?),
    })
}

fn fault_from_row(r: &Row<'_>) -> rusqlite::Result<StoredFault> {
    let kind: String = r.get(2)?;
    let delay: Option<i64> = r.get(3)?;
    let source: String = r.get(5)?;
    let kind = FaultKind::from_name(&kind, delay.map(|d| u64::try_from(d).unwrap_or(0)))
        .map_err(|_| conversion(2, "fault kind", &kind))?;
    Ok(StoredFault {
        id: FaultId(r.get(0)?),
        spec: FaultSpec { endpoint: r.get(1)?, kind, remaining: r.get(4)? },
        source: Source::parse(&source),
    })
}

/// A column that does not hold what the schema promises.
fn conversion(column: usize, what: &'static str, value: &str) -> rusqlite::Error {
    let e = Error::corrupt(what, value);
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e))
}

fn store(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::Store { what, source: StoreError(e) }
}

/// Milliseconds since the Unix epoch, the database's time unit.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The migrations, in order; migration `n` (1-based) brings the schema to version `n`.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE clients (
        id              INTEGER PRIMARY KEY,
        smsid           TEXT NOT NULL UNIQUE,
        signing_cert    BLOB NOT NULL,
        encryption_cert BLOB,
        hash_algorithm  TEXT NOT NULL,
        hardware_id     TEXT,
        agent_type      INTEGER NOT NULL,
        agent_identity  TEXT NOT NULL,
        agent_version   TEXT NOT NULL,
        netbios_name    TEXT,
        fqdn            TEXT,
        proxy_id        INTEGER REFERENCES clients(id) ON DELETE SET NULL,
        approved        INTEGER NOT NULL,
        registered      INTEGER NOT NULL,
        blocked         INTEGER NOT NULL,
        obsolete        INTEGER NOT NULL,
        imported_proxy  INTEGER NOT NULL,
        created_ms      INTEGER NOT NULL,
        registered_ms   INTEGER,
        last_seen_ms    INTEGER
    ) STRICT;
    CREATE INDEX clients_by_hardware_id ON clients(hardware_id);
    CREATE INDEX clients_by_signing_cert ON clients(signing_cert);

    CREATE TABLE conflicts (
        id           INTEGER PRIMARY KEY,
        parked_id    INTEGER,
        parked_smsid TEXT NOT NULL,
        existing_id  INTEGER NOT NULL,
        hardware_id  TEXT NOT NULL,
        created_ms   INTEGER NOT NULL,
        resolved_ms  INTEGER,
        resolution   TEXT
    ) STRICT;
    CREATE INDEX conflicts_by_parked ON conflicts(parked_id);

    CREATE TABLE messages (
        id          INTEGER PRIMARY KEY,
        message_id  TEXT,
        endpoint    TEXT NOT NULL,
        kind        TEXT NOT NULL,
        client_id   INTEGER REFERENCES clients(id) ON DELETE SET NULL,
        smsid       TEXT,
        received_ms INTEGER NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome IN ('stored', 'duplicate', 'refused', 'answered')),
        reason      TEXT
    ) STRICT;
    CREATE INDEX messages_by_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX messages_by_client ON messages(client_id, id);

    CREATE TABLE discovery (
        client_id     INTEGER PRIMARY KEY REFERENCES clients(id) ON DELETE CASCADE,
        netbios_name  TEXT,
        domain        TEXT,
        ad_site       TEXT,
        hardware_uuid TEXT,
        ip_addresses  TEXT NOT NULL,
        report_xml    TEXT NOT NULL,
        updated_ms    INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE inventory_versions (
        client_id           INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        action              TEXT NOT NULL,
        major               INTEGER,
        minor               INTEGER,
        resync_requested_ms INTEGER,
        updated_ms          INTEGER NOT NULL,
        PRIMARY KEY (client_id, action)
    ) STRICT;

    CREATE TABLE inventory_instances (
        client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        action       TEXT NOT NULL,
        class        TEXT NOT NULL,
        instance_key TEXT NOT NULL,
        namespace    TEXT NOT NULL,
        xml          TEXT NOT NULL,
        updated_ms   INTEGER NOT NULL,
        PRIMARY KEY (client_id, action, class, instance_key)
    ) STRICT;

    CREATE TABLE collected_files (
        id              INTEGER PRIMARY KEY,
        client_id       INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        message_row     INTEGER NOT NULL REFERENCES messages(id),
        collection      TEXT NOT NULL,
        file_id         INTEGER NOT NULL,
        name            TEXT NOT NULL,
        path            TEXT NOT NULL,
        size            INTEGER NOT NULL,
        last_write_date TEXT NOT NULL,
        content         BLOB,
        received_ms     INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE state_messages (
        client_id    INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        serial       INTEGER NOT NULL,
        message_row  INTEGER NOT NULL REFERENCES messages(id),
        message_time TEXT NOT NULL,
        topic_id     TEXT NOT NULL,
        topic_type   INTEGER NOT NULL,
        state_id     INTEGER NOT NULL,
        xml          TEXT NOT NULL,
        received_ms  INTEGER NOT NULL,
        PRIMARY KEY (client_id, serial)
    ) STRICT;

    CREATE TABLE status_messages (
        id          INTEGER PRIMARY KEY,
        client_id   INTEGER REFERENCES clients(id) ON DELETE CASCADE,
        message_row INTEGER NOT NULL REFERENCES messages(id),
        status_type TEXT NOT NULL,
        xml         TEXT NOT NULL,
        received_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE metering (
        id              INTEGER PRIMARY KEY,
        client_id       INTEGER NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
        message_row     INTEGER NOT NULL REFERENCES messages(id),
        product_name    TEXT,
        file_name       TEXT NOT NULL,
        metered_data_id TEXT NOT NULL,
        start_time      TEXT NOT NULL,
        end_time        TEXT,
        user_name       TEXT,
        status          INTEGER NOT NULL,
        received_ms     INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE policies (
        assignment_id    TEXT PRIMARY KEY,
        policy_id        TEXT NOT NULL UNIQUE,
        version          TEXT NOT NULL,
        category         TEXT NOT NULL,
        scope            TEXT NOT NULL,
        flags            INTEGER NOT NULL,
        ready_after_secs INTEGER NOT NULL,
        body             TEXT NOT NULL,
        source           TEXT NOT NULL,
        changed_ms       INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE site_state (
        name  TEXT PRIMARY KEY,
        value ANY
    ) STRICT;

    CREATE TABLE faults (
        id         INTEGER PRIMARY KEY,
        endpoint   TEXT NOT NULL,
        kind       TEXT NOT NULL,
        delay_ms   INTEGER,
        remaining  INTEGER,
        source     TEXT NOT NULL,
        created_ms INTEGER NOT NULL
    ) STRICT;",
    // 2: the `failed` outcome. SQLite cannot change a CHECK constraint in place, so the table
    // is rebuilt (its "other kinds of table schema changes" procedure; `migrate` runs it with
    // foreign keys off and checks them before it commits). Row IDs are kept, so the
    // `message_row` references of collected files, state and status messages and metering
    // still hold. The check is written with `OR`: SQLite built a temporary table for the
    // `IN (…)` list of five values on every insert.
    "CREATE TABLE messages_2 (
        id          INTEGER PRIMARY KEY,
        message_id  TEXT,
        endpoint    TEXT NOT NULL,
        kind        TEXT NOT NULL,
        client_id   INTEGER REFERENCES clients(id) ON DELETE SET NULL,
        smsid       TEXT,
        received_ms INTEGER NOT NULL,
        outcome     TEXT NOT NULL CHECK (outcome = 'stored' OR outcome = 'duplicate'
            OR outcome = 'refused' OR outcome = 'answered' OR outcome = 'failed'),
        reason      TEXT
    ) STRICT;
    INSERT INTO messages_2 (id, message_id, endpoint, kind, client_id, smsid, received_ms,
        outcome, reason)
        SELECT id, message_id, endpoint, kind, client_id, smsid, received_ms, outcome, reason
        FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_2 RENAME TO messages;
    CREATE INDEX messages_by_message_id ON messages(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX messages_by_client ON messages(client_id, id);",
];

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use rusqlite::StatementStatus;

    use super::{MESSAGE_STORED, MessageOutcome, NewMessage, SCHEMA_VERSION, Store};

    #[test]
    fn a_file_database_is_migrated_and_in_wal_mode() {
        let dir = TempDir::new("wal");
        let path = dir.db();
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
            assert_eq!(store.journal_mode().unwrap(), "wal");
            // Savepoint journals in memory (2), reads through the map, a small page cache.
            let pragma = |name: &str| -> i64 {
                store.conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0)).unwrap()
            };
            assert_eq!(pragma("temp_store"), 2);
            assert_eq!(pragma("mmap_size"), 1 << 30);
            assert_eq!(pragma("cache_size"), -8_192);
        }
        // Reopening runs no migration twice.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = TempDir::new("new");
        let path = dir.db();
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, crate::Error::SchemaTooNew { found: 99, .. }), "{e}");
    }

    /// A database of the first schema, with a message and a state message that refers to it,
    /// is migrated: its rows are kept, the reference still holds and foreign keys are enforced
    /// again, and the `failed` outcome is taken.
    #[test]
    fn the_first_schema_migrates_to_the_failed_outcome_with_its_rows() {
        let dir = TempDir::new("migrate");
        let path = dir.db();
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(super::MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO clients (id, smsid, signing_cert, hash_algorithm, agent_type,
                    agent_identity, agent_version, approved, registered, blocked, obsolete,
                    imported_proxy, created_ms)
                    VALUES (3, 'GUID:x', x'00', 'SHA256', 1, 'a', '5.0', 1, 1, 0, 0, 0, 1);
                 INSERT INTO messages (id, message_id, endpoint, kind, received_ms, outcome)
                    VALUES (7, '{A}', 'MP_RelayEndpoint', 'StateMessages', 1, 'stored');
                 INSERT INTO state_messages (client_id, serial, message_time, topic_id,
                    topic_type, state_id, xml, received_ms, message_row)
                    VALUES (3, 1, '2026-01-01T00:00:00Z', 't', 1, 2, '<S/>', 1, 7);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let kept: (i64, String) = store
            .conn
            .query_row(
                "SELECT m.id, m.message_id FROM state_messages s JOIN messages m \
                 ON m.id = s.message_row",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(kept, (7, "{A}".to_owned()));
        let on: i64 = store.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(on, 1, "foreign keys are enforced again");
        let row = store
            .write(|tx| {
                tx.insert_message(&NewMessage {
                    message_id: Some("{B}"),
                    endpoint: "MP_DdrEndpoint",
                    kind: "DdrReport",
                    client: None,
                    smsid: None,
                    now: Utc::now(),
                    outcome: MessageOutcome::Failed,
                    reason: Some("no such table"),
                })
            })
            .unwrap();
        assert!(row > 7);
        let broken = store.conn.execute(
            "INSERT INTO state_messages (client_id, serial, message_time, topic_id, topic_type, \
             state_id, xml, received_ms, message_row) VALUES (3, 2, 't', 't', 1, 2, '<S/>', 1, 999)",
            [],
        );
        assert!(broken.is_err(), "a reference to no message is refused");
        let bogus = store.conn.execute(
            "INSERT INTO messages (endpoint, kind, received_ms, outcome) VALUES ('e', 'k', 1, 'x')",
            [],
        );
        assert!(bogus.is_err(), "the outcome is still checked");
        // Checked by comparisons: an `IN (…)` list built a temporary table on every insert.
        let mut explain = store
            .conn
            .prepare(
                "EXPLAIN INSERT INTO messages (endpoint, kind, received_ms, outcome) \
                 VALUES ('e', 'k', 1, 'stored')",
            )
            .unwrap();
        let opcodes: Vec<String> =
            explain.query_map([], |r| r.get(1)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(opcodes.iter().any(|o| o == "Insert"), "{opcodes:?}");
        assert!(!opcodes.iter().any(|o| o == "OpenEphemeral"), "{opcodes:?}");
    }

    fn log(store: &mut Store, id: &str) -> Result<i64, crate::Error> {
        store.write(|tx| {
            tx.insert_message(&NewMessage {
                message_id: Some(id),
                endpoint: "MP_DdrEndpoint",
                kind: "DdrReport",
                client: None,
                smsid: Some("GUID:x"),
                now: Utc::now(),
                outcome: MessageOutcome::Stored,
                reason: None,
            })
        })
    }

    /// A group of `n` messages with IDs `{prefix}{i}`.
    fn group_of(store: &mut Store, prefix: &str, n: usize) {
        store.begin_group().unwrap();
        for i in 0..n {
            log(store, &format!("{prefix}{i:04}-{}", "x".repeat(300))).unwrap();
        }
        store.end_group(true).unwrap();
    }

    /// A test's directory under the system's temporary directory, removed when the guard is
    /// dropped: at the end of the test, and while a failed test unwinds, after the store
    /// declared later has closed. A few lines by hand rather than the `tempfile` crate, which
    /// would bring a dependency tree of its own into the workspace for the tests of one crate.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("cmmp-store-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn db(&self) -> std::path::PathBuf {
            self.0.join("site.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The SQLite linked into this binary syncs with `fdatasync` (`HAVE_FDATASYNC`, set in
    /// `.cargo/config.toml`): it imports the function, which it does not without the setting
    /// (nothing else in this crate's tests calls `File::sync_data`, which would import it too).
    #[test]
    #[cfg(target_os = "linux")]
    fn the_bundled_sqlite_syncs_with_fdatasync() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        // The name as an entry of the dynamic symbol table's strings (NUL on both sides, so
        // that longer names such as this test's do not count), built backwards so that this
        // test's own constant is not what it finds.
        let name: Vec<u8> = b"\0cnysatadf\0".iter().rev().copied().collect();
        assert!(
            memchr::memmem::find(&exe, &name).is_some(),
            "SQLite was built without HAVE_FDATASYNC (is LIBSQLITE3_FLAGS overridden?)"
        );
    }

    #[test]
    fn a_failed_test_leaves_no_directory_behind() {
        // A test that panics with its store open: the guard still removes the directory.
        let panicked = std::thread::spawn(|| {
            let dir = TempDir::new("panics");
            let _store = Store::open(&dir.db()).unwrap();
            std::panic::panic_any(dir.0.clone());
        })
        .join()
        .unwrap_err();
        let path = panicked.downcast::<std::path::PathBuf>().unwrap();
        assert!(path.starts_with(std::env::temp_dir()));
        assert!(!path.exists(), "{} is still there", path.display());
    }

    #[test]
    fn a_file_database_checkpoints_on_its_own_thread() {
        let dir = TempDir::new("ckpt");
        let path = dir.db();
        let mut store = Store::open(&path).unwrap();
        let autocheckpoint: i64 =
            store.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(autocheckpoint, 0, "the committing connection does not checkpoint");
        group_of(&mut store, "a", 200);
        let (frames, passes, failures) = store.checkpointer.as_ref().unwrap().wait_covered();
        assert!(frames > 0 && passes >= 1 && failures == 0, "{frames} {passes} {failures}");
        // Closed and opened again, nothing is missing.
        drop(store);
        let reopened = Store::open(&path).unwrap();
        let count = reopened.read(|tx| tx.messages(None, 1_000)).unwrap().len();
        assert_eq!(count, 200);
    }

    #[test]
    fn a_long_wal_starts_again_before_the_next_group() {
        let dir = TempDir::new("restart");
        let path = dir.db();
        let mut store = Store::open(&path).unwrap();
        store.checkpointer.as_mut().unwrap().restart_frames = 1;
        // No pass unless a group or the test waits for one.
        store.checkpointer.as_ref().unwrap().set_interval(std::time::Duration::from_secs(3_600));
        let covered = |store: &Store| store.checkpointer.as_ref().unwrap().wait_covered().0;
        group_of(&mut store, "a", 100);
        covered(&store);
        // Begun with every frame copied back: this group's frames start the WAL again.
        group_of(&mut store, "b", 100);
        let one_group = covered(&store);
        assert!(one_group > 10, "{one_group}");
        // Two groups back to back: the second waits for the pass over the first (the thread
        // would not run one by itself), so its frames restart the WAL too, instead of
        // following the first group's.
        group_of(&mut store, "c", 100);
        group_of(&mut store, "d", 100);
        let after = covered(&store);
        assert!(2 * after < 3 * one_group, "{after} frames, one group is {one_group}");
        // Without the wait the WAL holds both.
        store.checkpointer.as_mut().unwrap().restart_frames = i64::MAX;
        group_of(&mut store, "e", 100);
        group_of(&mut store, "f", 100);
        let both = covered(&store);
        assert!(2 * both >= 3 * one_group, "{both} frames, one group is {one_group}");
    }

    #[test]
    fn a_wait_already_satisfied_does_not_hurry_a_later_pass() {
        let dir = TempDir::new("stale");
        let path = dir.db();
        let mut store = Store::open(&path).unwrap();
        fn checkpointer(store: &Store) -> &super::checkpoint::Checkpointer {
            store.checkpointer.as_ref().unwrap()
        }
        checkpointer(&store).set_interval(std::time::Duration::from_secs(3_600));
        group_of(&mut store, "a", 10);
        checkpointer(&store).wait_covered();
        // Everything is covered: this wait needs no pass and must not ask for one.
        let (_, passes, _) = checkpointer(&store).wait_covered();
        group_of(&mut store, "b", 10);
        // The interval is an hour, so nothing may copy group "b" back until someone waits.
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(checkpointer(&store).passes(), passes, "a pass nobody asked for");
        let (_, after, _) = checkpointer(&store).wait_covered();
        assert_eq!(after, passes + 1);
    }

    fn logged(store: &Store) -> Vec<String> {
        let mut ids: Vec<String> = store
            .read(|tx| tx.messages(None, 100))
            .unwrap()
            .into_iter()
            .filter_map(|m| m.message_id)
            .collect();
        ids.sort();
        ids
    }

    #[test]
    fn a_group_commits_its_operations_together_and_rolls_a_failed_one_back_alone() {
        let mut store = Store::open_in_memory().unwrap();
        store.begin_group().unwrap();
        log(&mut store, "{a}").unwrap();
        let failed = store.write(|tx| {
            tx.insert_message(&NewMessage {
                message_id: Some("{b}"),
                endpoint: "MP_DdrEndpoint",
                kind: "DdrReport",
                client: None,
                smsid: None,
                now: Utc::now(),
                outcome: MessageOutcome::Stored,
                reason: None,
            })?;
            Err::<(), _>(crate::Error::Invalid("fails after writing".to_owned()))
        });
        assert!(failed.is_err());
        log(&mut store, "{c}").unwrap();
        // Reads inside the group see what it wrote so far.
        assert_eq!(logged(&store), ["{a}", "{c}"]);
        assert!(store.begin_group().is_err(), "groups do not nest");
        store.end_group(true).unwrap();
        assert_eq!(logged(&store), ["{a}", "{c}"]);
        // After the group, writes are transactions of their own again.
        log(&mut store, "{d}").unwrap();
        assert_eq!(logged(&store), ["{a}", "{c}", "{d}"]);
    }

    #[test]
    fn a_group_rolled_back_stores_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        store.begin_group().unwrap();
        log(&mut store, "{a}").unwrap();
        store.end_group(false).unwrap();
        assert!(logged(&store).is_empty());
    }

    #[test]
    fn a_cached_statement_is_not_compiled_again_for_new_values() {
        let mut store = Store::open_in_memory().unwrap();
        for i in 0..5 {
            let id = format!("{{00000000-0000-4000-8000-00000000000{i}}}");
            store
                .write(|tx| {
                    assert_eq!(tx.message_stored(&id, Some("GUID:x"))?, None);
                    tx.insert_message(&NewMessage {
                        message_id: Some(&id),
                        endpoint: "MP_DdrEndpoint",
                        kind: "DdrReport",
                        client: None,
                        smsid: Some("GUID:x"),
                        now: Utc::now(),
                        outcome: MessageOutcome::Stored,
                        reason: None,
                    })?;
                    Ok(())
                })
                .unwrap();
        }
        let stmt = store.conn.prepare_cached(MESSAGE_STORED).unwrap();
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
    }
}
