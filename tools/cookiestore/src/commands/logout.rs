//! `logout`: log out every cookie of an authid, or one cookie by value; each goes to the
//! revocation feed, so every worker cuts the connections of those cookies.

use std::io::Write;
use std::path::PathBuf;

use crate::Failure;
use crate::context::Ctx;
use crate::output::{Outcome, plural, stdout};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("whom").required(true).args(["authid", "value"])))]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// Log out every cookie whose authid is this.
    #[arg(long)]
    pub authid: Option<String>,
    /// Log out the cookie with this value.
    #[arg(long)]
    pub value: Option<String>,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let store = ctx.open_existing(&a.path)?;
    let (n, whom) = match (&a.authid, &a.value) {
        (Some(authid), _) => (store.logout_authid(authid)?, format!("authid {authid:?}")),
        (None, Some(value)) => (u64::from(store.delete(value)?), format!("value {value:?}")),
        (None, None) => unreachable!("clap requires --authid or --value"),
    };
    if n == 0 {
        return Err(Failure::Found(Some(format!("no cookie with {whom}"))));
    }
    let mut out = stdout();
    writeln!(
        out,
        "logged out {} with {whom}",
        plural(n as usize, "cookie")
    )?;
    out.flush()?;
    Ok(())
}
