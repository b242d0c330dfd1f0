//! The lookup path's field reader: on any bytes, the bounds-checked reader the lookups use
//! and the fully verified decode agree (both refuse the bytes, or both read the same fields);
//! `cookiestore::fuzzing::reader_agrees` panics when they do not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    cookiestore::fuzzing::reader_agrees(data);
});
