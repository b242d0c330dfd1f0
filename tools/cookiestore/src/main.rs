//! `cookiestore`: inspect and maintain a cookie store, and migrate off Crossbar.io's
//! `cookies.dat`.
//!
//! Reading commands (`dump`, `stats`, `get`, `check`, `export`, `copy`, `purge --dry-run`)
//! open the store read-only: they take one LMDB reader slot and nothing else, so router
//! workers writing at the same time are never blocked, and they work on a store whose
//! directory is read-only to them. Errors are one line on stderr; see `--help` for the exit
//! codes.

mod commands;
mod context;
mod format;
mod isolate;
mod output;

use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::Ctx;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CODES: &str = "\
Examples:
  cookiestore stats /var/crossbar/cookies
  cookiestore dump /var/crossbar/cookies --format table --limit 20
  cookiestore check /var/crossbar/cookies || cookiestore repair /var/crossbar/cookies
  cookiestore import /var/crossbar/cookies /var/crossbar/.crossbar/cookies.dat
  cookiestore import .crossbar/cookies-new .crossbar/cookies   (Crossbar's database store)

Exit codes:
  0  success
  1  the command ran and found something wrong or nothing: `check` found problems
     (`repair` left some), `get`/`delete` found no such cookie, `import`/`restore`
     skipped bad lines or conflicting records, `export --skip-corrupt` skipped
     records (each is listed on stderr)
  2  error: bad usage, or the command could not run or complete (missing path, not a
     cookie store, LMDB format 3, corrupt record, damaged data.mdb or lock.mdb, I/O
     error); one line on stderr
     (`dump` lists each record it cannot decode, one line each, dumps the rest, and
     exits 2)

Output to a closed pipe (`cookiestore dump STORE | head`) ends quietly with 0.";

/// Inspect, check, repair and migrate a cookiestore / cfxdb LMDB cookie store.
#[derive(Debug, Parser)]
#[command(
    name = "cookiestore",
    version,
    about = "Inspect, check, repair and migrate a cookiestore / cfxdb LMDB cookie store",
    long_about = "Inspect, check, repair and migrate a cookiestore / cfxdb LMDB cookie store, \
                  also while Crossbar.io router workers keep using it.\n\n\
                  A store (PATH, SOURCE, DEST) is a directory (LMDB), or a Redis URL: \
                  redis://[USER:PASSWORD@]HOST[:PORT][/DB], rediss://... (TLS), \
                  redis+unix:///PATH/TO/SOCKET, redis+sentinel://HOST[:PORT],HOST[:PORT],.../MASTER[/DB] \
                  (the master that Redis Sentinel names; docs/redis.md), or rediss+sentinel://... \
                  (the same, the sentinels and the master over TLS). Options go in the \
                  query: ?prefix=cb1:, ?password_file=..., ?tls_ca_file=...\n\n\
                  Reading commands (dump, stats, get, check, export, copy, purge --dry-run) open \
                  the store read-only: they take one LMDB reader slot and never block or slow \
                  down writers, and they work on a store whose directory is read-only to them \
                  (its lock.mdb must exist and be writable, as LMDB requires of every reader).",
    after_long_help = EXIT_CODES,
    after_help = "Example:\n  cookiestore stats /var/crossbar/.crossbar/cookies\n\n\
                  Exit codes: 0 ok, 1 problems found / nothing found / lines skipped, 2 error \
                  (--help for details)"
)]
struct Cli {
    /// Evaluate expiry at this instant (RFC 3339, e.g. 2026-11-27T17:00:00Z) instead of the
    /// system clock: "what expires by Friday?", reproducible tests.
    #[arg(long, global = true, value_name = "RFC3339")]
    now: Option<String>,

    /// Largest size the map may grow to when a command writes (bytes, or with a KiB, MiB or
    /// GiB suffix): give the workers' `maxsize` when it is above the default.
    #[arg(long, global = true, value_name = "SIZE", default_value = "1GiB")]
    maxsize: String,

    #[command(subcommand)]
    command: Command,
}

/// The commands; each is implemented in `commands/<name>.rs`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print every live cookie, one JSON object per line (or a table).
    #[command(
        long_about = "Print every live cookie of one consistent snapshot, one JSON object per \
                      line, in oid order: all 17 fields of cfxdb's Cookie, timestamps as RFC \
                      3339 UTC with nanoseconds (null when unset), uuids as strings, authextra \
                      and authenticated_transport_info as JSON. --format table prints a table \
                      for people. A record that cannot be decoded is reported on stderr and \
                      skipped, and the exit code is then 2.",
        after_help = "Examples:\n  cookiestore dump /var/crossbar/cookies --authenticated --realm realm1\n  \
                      cookiestore dump /var/crossbar/cookies --format table --limit 20\n  \
                      cookiestore --now 2026-11-27T17:00:00Z dump /var/crossbar/cookies --include-expired"
    )]
    Dump(commands::dump::Args),

    /// Figures about the store: cookies, expiry, map and pages, reader slots, tables.
    #[command(
        long_about = "Figures about one snapshot of the store: cookies live, expired but not yet \
                      purged and authenticated, oldest and newest, next expiry, map used and \
                      size, LMDB page figures, reader slots (live and stale), and the slot \
                      metadata (table ids, names, slots).",
        after_help = "Example:\n  cookiestore stats /var/crossbar/cookies --json"
    )]
    Stats(commands::stats::Args),

    /// Print the live cookie with this value (exit 1 when there is none).
    #[command(
        after_help = "Example:\n  cookiestore get /var/crossbar/cookies 'kG3x9Qm+Lp0aZ4rT2vB8nY1w'"
    )]
    Get(commands::get::Args),

    /// Delete the cookie with this value: log it out (exit 1 when there is none).
    #[command(
        after_help = "Example:\n  cookiestore delete /var/crossbar/cookies 'kG3x9Qm+Lp0aZ4rT2vB8nY1w'"
    )]
    Delete(commands::delete::Args),

    /// Log out every cookie of an authid (--authid) or one cookie (--value), so every
    /// worker cuts their connections (exit 1 when there was none).
    #[command(
        after_help = "Examples:\n  cookiestore logout /var/crossbar/cookies --authid alice\n  \
                      cookiestore logout /var/crossbar/cookies --value 'kG3x9Qm+Lp0aZ4rT2vB8nY1w'"
    )]
    Logout(commands::logout::Args),

    /// Print the recent revocation feed (logouts), one JSON object per line.
    #[command(after_help = "Example:\n  cookiestore revocations /var/crossbar/cookies --since 41")]
    Revocations(commands::revocations::Args),

    /// Delete expired cookies (or, with --dry-run, count them) and say how long it took.
    #[command(
        long_about = "Delete every expired cookie and its index entries, in batches so the \
                      writer lock is never held long; print how many and how long it took. With \
                      --dry-run, open the store read-only and only count them. A --now later \
                      than the system clock would delete cookies that are still valid: it is \
                      refused without --force (with --dry-run it is fine).",
        after_help = "Examples:\n  cookiestore purge /var/crossbar/cookies\n  \
                      cookiestore --now 2026-11-27T17:00:00Z purge /var/crossbar/cookies --dry-run"
    )]
    Purge(commands::purge::Args),

    /// Check records, value index, expiry index and metadata (exit 1 when damaged).
    #[command(
        long_about = "Check one snapshot of the store: every record decodes; Cookies, the value \
                      index and the expiry index agree both ways (no orphan, no missing entry, \
                      no entry pointing at the wrong cookie); the metadata is sane. Each problem \
                      is listed. When cfxdb or Crossbar.io wrote since cookiestore's last write, \
                      expiry-index differences are expected (they do not maintain it) and are \
                      listed as notes: the next writable open or purge reconciles them.\n\n\
                      The walk runs in a child process: damaged pages that crash LMDB (SIGSEGV, \
                      an abort) or send it in circles (beyond --timeout) are reported as a \
                      damaged data.mdb, with what to do, and exit 2.\n\n\
                      Exit 0 clean, 1 problems found, 2 could not run or data.mdb is damaged \
                      beyond what LMDB can read.",
        after_help = "Example:\n  cookiestore check /var/crossbar/cookies || cookiestore repair /var/crossbar/cookies"
    )]
    Check(commands::check::Args),

    /// Rebuild the indexes; quarantine undecodable records into PATH/quarantine.jsonl.
    #[command(
        long_about = "Repair the store in one write transaction: records that cannot be decoded \
                      (or have a malformed key, or a value that cannot be indexed, or are the \
                      older of two records with one value) are appended to PATH/quarantine.jsonl \
                      (one JSON object per line: oid, key and hex of the bytes, reason), fsynced, \
                      and only then deleted; then the value index and the expiry index are \
                      rebuilt from the records. Metadata damage is reported, not repaired. \
                      The repair runs in a child process like check's walk: damaged pages that \
                      crash LMDB are reported (exit 2), and a crash commits nothing.\n\n\
                      Exit 0 when the store checks clean afterwards, 1 when problems remain, 2 \
                      when it could not run.",
        after_help = "Example:\n  cookiestore repair /var/crossbar/cookies"
    )]
    Repair(commands::repair::Args),

    /// Import Crossbar.io's cookies.dat (file cookie store) or its database cookie store (a
    /// directory, LMDB format 1 or 3) into a store.
    #[command(
        long_about = "Import Crossbar.io's file cookie store (cookies.dat) into the store at PATH \
                      (created if missing). The file is replayed in order: the last line for a \
                      cookie wins, a `deleted` line removes the cookie (also from the store; \
                      Crossbar.io itself gets this wrong), expired cookies are dropped and \
                      counted, created/modified times are read as UTC. A bad line is reported \
                      with its line number and skipped: it never aborts the import. Cookies are \
                      matched by value, so running the same import again changes nothing.\n\n\
                      When SOURCE is a directory, it is Crossbar.io's database cookie store (or \
                      any cfxdb store): every cookie is copied with its oid and every field; \
                      expired ones are dropped and counted, identical ones left alone, one whose \
                      value another cookie of the store holds is skipped and listed. SOURCE is \
                      only read, never written. LMDB format 1 is read by cookiestore itself; \
                      format 3 (zlmdb 26, what Crossbar.io 25.12 installed with pip today \
                      writes) by the helper program cookiestore-format3, which must sit next to \
                      this executable (`cargo build --release` builds both) or be named by \
                      COOKIESTORE_FORMAT3. Stop Crossbar.io first: a store another process has \
                      open is refused.\n\n\
                      Either way, a cookie an earlier import brought in that was logged out since \
                      stays out (unless --force).\n\n\
                      Exit 0, or 1 when lines or cookies were skipped.",
        after_help = "Examples:\n  cookiestore import /var/crossbar/cookies /var/crossbar/.crossbar/cookies.dat\n  \
                      cookiestore import .crossbar/cookies-new .crossbar/cookies"
    )]
    Import(commands::import::Args),

    /// Write every record as JSON lines (everything needed to rebuild the store).
    #[command(
        long_about = "Write every record of one snapshot (expired ones not yet purged included, \
                      unless --live-only) as one JSON object per line, in cfxdb's field names: \
                      timestamps as ns integers, uuids as strings, unset fields left out. \
                      `restore` rebuilds a store from it.",
        after_help = "Example:\n  cookiestore export /var/crossbar/cookies -o cookies.jsonl"
    )]
    Export(commands::export::Args),

    /// Rebuild a store from an export (into a new or empty store, or --merge).
    #[command(
        long_about = "Restore an export into the store at PATH (created if missing). The store \
                      must hold no cookie, unless --merge: then a record replaces the one with \
                      the same oid, and a record whose value another cookie holds is skipped and \
                      listed (the store's cookie is kept). Bad lines are listed and skipped.\n\n\
                      Exit 0, or 1 when lines or records were skipped.",
        after_help = "Example:\n  cookiestore restore /var/crossbar/cookies.new cookies.jsonl"
    )]
    Restore(commands::restore::Args),

    /// Take a consistent copy of a (live) store, optionally compacted.
    #[command(
        long_about = "Copy the store to DEST, a directory that does not exist yet (it is \
                      created, readable by its owner only; an existing directory, even an \
                      empty one, or a symbolic link is refused), from one consistent snapshot, \
                      with LMDB's own copy; --compact leaves free pages out and renumbers the \
                      rest. Safe while workers write.\n\n\
                      From or to Redis (PATH or DEST a Redis URL), the copy is an export of the \
                      source restored into the destination, which must hold no cookie; nothing \
                      is written to a Redis that holds cookies, and a directory the copy \
                      created is removed when it fails.",
        after_help = "Examples:\n  cookiestore copy /var/crossbar/cookies /backup/cookies-$(date +%F) --compact\n  \
                      cookiestore copy /var/crossbar/cookies 'redis://10.0.0.5/0?prefix=cb1:'"
    )]
    Copy(commands::copy::Args),
}

/// Why a command did not succeed.
enum Failure {
    /// Exit 1 with an optional one-line message (already-listed problems print nothing).
    Found(Option<String>),
    /// Exit 2 with a one-line message.
    Error(String),
    /// Exit 2; the problems were already reported on stderr.
    Reported,
    /// stdout was closed (`| head`): end quietly.
    ClosedPipe,
}

impl From<cookiestore::Error> for Failure {
    fn from(e: cookiestore::Error) -> Self {
        match e {
            cookiestore::Error::Io(io) => io.into(),
            other => Failure::Error(other.to_string()),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::ClosedPipe
        } else {
            Failure::Error(format!("I/O error: {e}"))
        }
    }
}

/// One line: runs of whitespace (newlines included) become one space, and a Redis URL given
/// on the command line appears with its password masked (clap's own messages quote
/// arguments as given; the tool's messages mask already).
fn one_line(message: &str) -> String {
    let mut message = message.to_string();
    for arg in std::env::args_os().skip(1) {
        let arg = arg.to_string_lossy();
        let masked = cookiestore::Location::mask(&arg);
        if masked != arg {
            message = message.replace(arg.as_ref(), &masked);
        }
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs the parsed command line.
fn run(cli: Cli) -> output::Outcome {
    let ctx = Ctx::new(cli.now.as_deref(), &cli.maxsize)?;
    match cli.command {
        Command::Dump(a) => commands::dump::run(&ctx, a),
        Command::Stats(a) => commands::stats::run(&ctx, a),
        Command::Get(a) => commands::get::run(&ctx, a),
        Command::Delete(a) => commands::delete::run(&ctx, a),
        Command::Logout(a) => commands::logout::run(&ctx, a),
        Command::Revocations(a) => commands::revocations::run(&ctx, a),
        Command::Purge(a) => commands::purge::run(&ctx, a),
        Command::Check(a) => commands::check::run(&ctx, a),
        Command::Repair(a) => commands::repair::run(&ctx, a),
        Command::Import(a) => commands::import::run(&ctx, a),
        Command::Export(a) => commands::export::run(&ctx, a),
        Command::Restore(a) => commands::restore::run(&ctx, a),
        Command::Copy(a) => commands::copy::run(&ctx, a),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // The first paragraph says what is wrong; usage and tips follow.
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .trim_start()
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("cookiestore: {}; see `cookiestore --help`", one_line(first));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
        Err(Failure::Found(message)) => {
            if let Some(m) = message {
                let _ = writeln!(io::stderr(), "cookiestore: {}", one_line(&m));
            }
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(2),
        Err(Failure::Error(message)) => {
            let _ = writeln!(io::stderr(), "cookiestore: {}", one_line(&message));
            ExitCode::from(2)
        }
    }
}
