//! `delete`: log a cookie out.

use std::io::Write;
use std::path::PathBuf;

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// The cookie value.
    pub value: String,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let store = ctx.open_existing(&a.path)?;
    if store.delete(&a.value)? {
        let mut out = stdout();
        writeln!(out, "deleted the cookie with value {:?}", a.value)?;
        out.flush()?;
        Ok(())
    } else {
        Err(Failure::Found(Some(format!(
            "no cookie with value {:?}",
            a.value
        ))))
    }
}
