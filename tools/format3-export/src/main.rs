//! `cookiestore-format3 STORE`: prints the cookie records of an LMDB **format-3** store, for
//! `cookiestore import`.
//!
//! zlmdb 26 (and so a fresh `pip install crossbar==25.12.1`, which pulls zlmdb 26.10.1 and
//! cfxdb 26.6.1) creates new databases in LMDB 1.0's data format 3. The cookiestore library
//! links heed (LMDB 0.9, format 1) and refuses format 3. This program links heed3 (LMDB 1.0,
//! `mdb.master3`) instead; the two cannot be linked into one program (both bundle LMDB with the
//! same C symbol names), hence a separate binary, which `cookiestore import DEST STORE` runs
//! when STORE is a format-3 store. It is built with the workspace (`cargo build --release`
//! puts it next to `target/release/cookiestore`).
//!
//! **What it owns**: opening a format-3 store without changing it, finding cfxdb's Cookies
//! table in zlmdb's slot metadata, and printing each record's key oid and bytes. It does not
//! decode records: `cookiestore` decodes and judges them with the library, as it does every
//! record it reads, so decoding lives in one place.
//!
//! **The store is never written.** It is opened with `MDB_RDONLY | MDB_NOLOCK`: LMDB opens
//! `data.mdb` with `O_RDONLY`, maps it read-only, and never opens `lock.mdb` (a read-only open
//! *with* locking would create or re-initialise `lock.mdb` and write a reader slot into it).
//! Without LMDB's locks nothing stops a writer from changing pages while they are read, so
//! the program refuses a store that a process has open: every LMDB process holds an fcntl
//! lock on the first byte of `lock.mdb` while it has the store open, and `F_GETLK` shows it.
//! Data format 3 and the first two pages of `data.mdb` (the meta pages, which every commit
//! rewrites) and its length are read before and after the records; when anything differs, a
//! process wrote meanwhile and the output ends without its final line (and exit 2).
//!
//! **Layout** (zlmdb / cfxdb, the same in format 1 and 3): LMDB's unnamed database; every key
//! starts with its table's slot, a big-endian `u16`. Slot 0 holds one metadata record per
//! table, key `00 00` + the table's slot, value a CBOR map whose `oid` is the table's UUID
//! (text) and `slot` its slot. cfxdb's Cookies table has the oid
//! `62f8c8c9-c50b-4686-bafe-38b221c64a0c`; its keys are the slot + the cookie's oid (16
//! bytes, RFC 4122 order), its values FlatBuffers `Cookie` records. Slots differ between
//! databases, so the Cookies slot is always read from the metadata.
//!
//! **Format 3 on disk**: the meta page starts with a 24-byte page header (LMDB 0.9's is 16
//! bytes; 1.0 adds the page's txnid), then the magic `0xBEEFC0DE` and the data format version
//! (`u32`, little-endian on x86-64 / aarch64).
//!
//! **Output** (stdout, protocol version 1, one JSON object per line, ASCII only):
//!
//! ```text
//! {"cookiestore_format3":1,"data_format":3,"cookies_slot":1,"txn":42}
//! {"oid":"62f8c8c9-...","hex":"0c0000..."}      one per record, in key order
//! {"key":"00ff...","hex":"..."}                   a record whose key is not 16 bytes
//! {"end":true,"records":40}                       last, only when the whole read is good
//! ```
//!
//! Exit 0 after the `end` line; 2 with one line `cookiestore-format3: ...` on stderr otherwise.
//! A store without the Cookies table's metadata is an error (Crossbar's store always has it).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use heed3::types::Bytes;
use heed3::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};

/// Version of the output; `cookiestore` refuses another.
const PROTOCOL: u32 = 1;
/// cfxdb's Cookies table.
const COOKIES_OID: &str = "62f8c8c9-c50b-4686-bafe-38b221c64a0c";
const LMDB_MAGIC: u32 = 0xBEEF_C0DE;
/// Two meta pages at LMDB's largest page size: every commit rewrites one of them.
const HEAD: usize = 2 * 65536;

const USAGE: &str = "\
Usage: cookiestore-format3 STORE

Prints the cookie records of the LMDB format-3 cookie store in the directory STORE (what
zlmdb 26, and so a fresh install of Crossbar.io 25.12, creates), one JSON line each, for
`cookiestore import DEST STORE`, which runs this program: use that command.

The store is opened read-only without LMDB's lock file: nothing in STORE is written. A store
that a process has open (Crossbar still running) is refused: stop it first.

Exit status: 0 success; 2 error (one line on stderr).";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let dir = match args.as_slice() {
        [a] if a == "-h" || a == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [a] if a == "-V" || a == "--version" => {
            println!(
                "cookiestore-format3 {} (protocol {PROTOCOL})",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        [a] if !a.to_string_lossy().starts_with('-') => PathBuf::from(a),
        _ => {
            eprintln!(
                "cookiestore-format3: expected one argument, the store directory; see --help"
            );
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    match run(&dir, &mut out).and_then(|()| out.flush().map_err(|e| output_error(&e))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // What was printed so far goes out; without the `end` line it is incomplete.
            let _ = out.flush();
            eprintln!("cookiestore-format3: {message}");
            ExitCode::from(2)
        }
    }
}

fn output_error(e: &io::Error) -> String {
    format!("cannot write the records to stdout: {e}")
}

/// Length of data.mdb and its first [`HEAD`] bytes.
fn read_head(data: &Path) -> Result<(u64, Vec<u8>), String> {
    let file = File::open(data).map_err(|e| format!("{}: cannot read: {e}", data.display()))?;
    let len = file
        .metadata()
        .map_err(|e| format!("{}: {e}", data.display()))?
        .len();
    let mut head = Vec::with_capacity(HEAD);
    file.take(HEAD as u64)
        .read_to_end(&mut head)
        .map_err(|e| format!("{}: cannot read: {e}", data.display()))?;
    Ok((len, head))
}

/// The data format version in the first meta page, found after the magic: at offset 16 in
/// format 1 (LMDB 0.9's 16-byte page header), at 24 in format 3.
fn data_format(head: &[u8]) -> Option<u32> {
    let u32_at = |off: usize| {
        head.get(off..off + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    [16, 24]
        .into_iter()
        .find(|&off| u32_at(off) == Some(LMDB_MAGIC))
        .and_then(|off| u32_at(off + 4))
}

/// The pid of a process that holds LMDB's liveness lock on `lock` (an fcntl lock on its first
/// byte, held by every process that has the store open), if any; `None` also when the lock
/// file is absent or unreadable (then the before/after comparison of the meta pages is what
/// catches a writer). Nothing is locked: `F_GETLK` only asks. This process never has the
/// store's LMDB environment open with locking, so closing this descriptor drops no lock of
/// its own.
#[cfg(unix)]
fn holder(lock: &Path) -> Option<i64> {
    use std::os::fd::AsRawFd;
    let file = File::open(lock).ok()?;
    // SAFETY: flock is a plain C struct for which all-zero bytes are a valid value.
    let mut query: libc::flock = unsafe { std::mem::zeroed() };
    query.l_type = libc::F_WRLCK as _;
    query.l_whence = libc::SEEK_SET as _;
    query.l_start = 0;
    query.l_len = 1;
    // SAFETY: the descriptor is open for as long as `file` lives, and `query` is a valid,
    // exclusively borrowed flock that F_GETLK fills in.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut query) };
    (rc == 0 && query.l_type != libc::F_UNLCK as _).then_some(i64::from(query.l_pid))
}

#[cfg(not(unix))]
fn holder(_lock: &Path) -> Option<i64> {
    None
}

fn refuse_if_open(dir: &Path) -> Result<(), String> {
    match holder(&dir.join("lock.mdb")) {
        Some(pid) => Err(format!(
            "{}: the store is open in another process (pid {pid}, e.g. a Crossbar.io worker): \
             stop every process using it, then run the import again",
            dir.display()
        )),
        None => Ok(()),
    }
}

fn hex(bytes: &[u8], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// The canonical text of a 16-byte uuid.
fn uuid_text(b: &[u8]) -> String {
    let mut h = Vec::with_capacity(32);
    hex(b, &mut h);
    let h = String::from_utf8(h).unwrap_or_default();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The table oid and slot of one metadata record (CBOR map with text keys).
fn table_of(value: &[u8]) -> Result<(String, u64), String> {
    let parsed: ciborium::Value =
        ciborium::from_reader(value).map_err(|e| format!("not CBOR: {e}"))?;
    let map = parsed.as_map().ok_or("not a CBOR map")?;
    let field = |name: &str| {
        map.iter()
            .find(|(k, _)| k.as_text() == Some(name))
            .map(|(_, v)| v)
    };
    let oid = field("oid")
        .and_then(ciborium::Value::as_text)
        .ok_or("no text `oid`")?;
    let slot = field("slot")
        .and_then(ciborium::Value::as_integer)
        .and_then(|i| u64::try_from(i).ok())
        .ok_or("no integer `slot`")?;
    Ok((oid.to_string(), slot))
}

fn run(dir: &Path, out: &mut impl Write) -> Result<(), String> {
    let data = dir.join("data.mdb");
    if !data.is_file() {
        return Err(format!(
            "{}: no data.mdb here: not an LMDB store directory",
            dir.display()
        ));
    }
    let before = read_head(&data)?;
    match data_format(&before.1) {
        Some(3) => {}
        Some(1) => {
            return Err(format!(
                "{}: LMDB data format 1 (LMDB 0.9): this program reads format 3 only; \
                 `cookiestore` reads format 1 itself",
                data.display()
            ));
        }
        Some(v) => return Err(format!("{}: unknown LMDB data format {v}", data.display())),
        None => {
            return Err(format!(
                "{}: not an LMDB file (no LMDB magic in its first page)",
                data.display()
            ));
        }
    }
    refuse_if_open(dir)?;

    // SAFETY: MDB_NOLOCK leaves keeping writers away to us: no process had the store open
    // just now (`refuse_if_open`), and a write made while we read is detected afterwards (the
    // meta pages differ) and makes the output incomplete. MDB_RDONLY: data.mdb is opened
    // O_RDONLY and mapped read-only; lock.mdb is never opened.
    let env = unsafe {
        EnvOpenOptions::new()
            .flags(EnvFlags::READ_ONLY | EnvFlags::NO_LOCK)
            .open(dir)
    }
    .map_err(|e| format!("{}: LMDB 1.0 cannot open it: {e}", dir.display()))?;
    let lmdb = |e: heed3::Error| format!("{}: reading failed: {e}", dir.display());
    let rtxn = env.read_txn().map_err(lmdb)?;
    let db: Database<Bytes, Bytes> = env
        .open_databases_and_commit(rtxn, |opener, rtxn| {
            opener
                .open_database::<Bytes, Bytes>(rtxn, None)
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .map_err(lmdb)?
        .unwrap_commit()
        .ok_or_else(|| format!("{}: LMDB has no main database here", dir.display()))?;
    let rtxn = env.read_txn().map_err(lmdb)?;

    // The Cookies table's slot, from zlmdb's metadata (slot 0).
    let mut cookies_slot: Option<u16> = None;
    let mut unreadable: Vec<String> = Vec::new();
    for item in db.prefix_iter(&rtxn, &[0, 0]).map_err(lmdb)? {
        let (key, value) = item.map_err(lmdb)?;
        let Ok(slot_bytes) = <[u8; 2]>::try_from(&key[2..]) else {
            continue; // not a metadata key (zlmdb's are 4 bytes)
        };
        let key_slot = u16::from_be_bytes(slot_bytes);
        match table_of(value) {
            Ok((oid, slot)) if oid == COOKIES_OID => {
                if slot != u64::from(key_slot) {
                    return Err(format!(
                        "{}: the Cookies table's metadata under slot {key_slot} says slot \
                         {slot}: the metadata is damaged",
                        dir.display()
                    ));
                }
                if let Some(first) = cookies_slot.replace(key_slot) {
                    return Err(format!(
                        "{}: two metadata records name the Cookies table (slots {first} and \
                         {key_slot}): the metadata is damaged",
                        dir.display()
                    ));
                }
            }
            Ok(_) => {}
            Err(problem) => unreadable.push(format!("slot {key_slot}: {problem}")),
        }
    }
    let Some(slot) = cookies_slot else {
        return Err(format!(
            "{}: no cfxdb Cookies table ({COOKIES_OID}) in its slot metadata: not a Crossbar.io \
             cookie store{}",
            dir.display(),
            if unreadable.is_empty() {
                String::new()
            } else {
                format!(" (unreadable metadata: {})", unreadable.join("; "))
            }
        ));
    };

    let w = |r: io::Result<()>| r.map_err(|e| output_error(&e));
    w(writeln!(
        out,
        "{{\"cookiestore_format3\":{PROTOCOL},\"data_format\":3,\"cookies_slot\":{slot},\"txn\":{}}}",
        rtxn.id()
    ))?;
    let mut records = 0u64;
    let mut line = Vec::with_capacity(1024);
    for item in db.prefix_iter(&rtxn, &slot.to_be_bytes()).map_err(lmdb)? {
        let (key, value) = item.map_err(lmdb)?;
        let key = &key[2..];
        line.clear();
        if key.len() == 16 {
            line.extend_from_slice(b"{\"oid\":\"");
            line.extend_from_slice(uuid_text(key).as_bytes());
        } else {
            line.extend_from_slice(b"{\"key\":\"");
            hex(key, &mut line);
        }
        line.extend_from_slice(b"\",\"hex\":\"");
        hex(value, &mut line);
        line.extend_from_slice(b"\"}\n");
        w(out.write_all(&line))?;
        records += 1;
    }
    drop(rtxn);
    drop(env);

    // Nobody wrote while we read: same format, same meta pages, same length, nobody holds it.
    let after = read_head(&data)?;
    if after != before {
        return Err(format!(
            "{}: the store changed while it was read (a process wrote to it): stop every \
             process using it, then run the import again",
            dir.display()
        ));
    }
    refuse_if_open(dir)?;
    w(writeln!(out, "{{\"end\":true,\"records\":{records}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_magic_offset() {
        let mut page = vec![0u8; 64];
        page[16..20].copy_from_slice(&LMDB_MAGIC.to_le_bytes());
        page[20..24].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(data_format(&page), Some(1));
        let mut page = vec![0u8; 64];
        page[24..28].copy_from_slice(&LMDB_MAGIC.to_le_bytes());
        page[28..32].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(data_format(&page), Some(3));
        assert_eq!(data_format(&[0u8; 64]), None);
        assert_eq!(data_format(&[]), None);
    }

    #[test]
    fn uuid_and_hex_text() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_text(&b), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        let mut h = Vec::new();
        hex(&[0x00, 0xab, 0xff], &mut h);
        assert_eq!(h, b"00abff");
    }

    #[test]
    fn metadata_records() {
        // As zlmdb writes it: a CBOR map with text keys, in this order.
        let mut cbor = Vec::new();
        let meta = ciborium::Value::Map(vec![
            ("oid".into(), COOKIES_OID.into()),
            ("name".into(), "cfxdb.cookiestore._cookie.Cookies".into()),
            ("creator".into(), "unknown".into()),
            ("slot".into(), 7.into()),
        ]);
        ciborium::into_writer(&meta, &mut cbor).unwrap();
        assert_eq!(table_of(&cbor), Ok((COOKIES_OID.to_string(), 7)));
        assert!(table_of(b"\xff").is_err());
        let mut cbor = Vec::new();
        ciborium::into_writer(&ciborium::Value::Text("x".into()), &mut cbor).unwrap();
        assert!(table_of(&cbor).is_err());
    }
}
