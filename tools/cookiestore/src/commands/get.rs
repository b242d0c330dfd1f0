//! `get`: the live cookie with a value.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use cookiestore::format_rfc3339_ns;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::Failure;
use crate::context::Ctx;
use crate::format::{DumpCookie, printable, relative};
use crate::output::{Outcome, json_line, stdout};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The store directory, or a Redis URL (redis://HOST:PORT/DB?prefix=P, redis+unix://...).
    pub path: PathBuf,
    /// The cookie value (what the browser sends as cbtid).
    pub value: String,
    /// One JSON object (as `dump` prints it) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> Outcome {
    let store = ctx.open_read(&a.path)?;
    let Some(c) = store.get(&a.value)? else {
        return Err(Failure::Found(Some(format!(
            "no live cookie with value {:?}",
            a.value
        ))));
    };
    let mut out = stdout();
    if a.json {
        json_line(&mut out, &DumpCookie::new(&c))?;
    } else {
        // One line per field of the cookie as `dump` prints it, in the same order.
        let json = serde_json::to_string(&DumpCookie::new(&c)).map_err(io::Error::from)?;
        let Fields(fields) = serde_json::from_str(&json).map_err(io::Error::from)?;
        let mut text = String::new();
        for (k, v) in fields {
            let v = match v {
                Value::Null => "-".to_string(),
                Value::String(s) => printable(&s),
                Value::Number(n) if k == "max_age" => format!("{n} s"),
                other => other.to_string(),
            };
            text.push_str(&format!("{k:<30}{v}\n"));
        }
        text.push_str(&format!(
            "{:<30}{} ({})\n",
            "expires",
            format_rfc3339_ns(c.expires_at()),
            relative(c.expires_at(), store.now_ns())
        ));
        out.write_all(text.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// The fields of a JSON object in their order in the text (`Value` would sort them).
struct Fields(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}
