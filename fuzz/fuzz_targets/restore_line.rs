//! A restore's export line: on any text, the quick path (the line read once, `authextra` and
//! the transport info transcoded straight from JSON to CBOR) gives the record the reference
//! `Cookie` path gives, or leaves the line to it; the transcoder, on the whole text, gives
//! `cbor_field`'s bytes or refuses. `cookiestore::fuzzing::restore_line_agrees` panics when
//! they disagree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        cookiestore::fuzzing::restore_line_agrees(text);
    }
});
