//! The record decoder: any bytes decode to a cookie or an error, never a panic; whatever
//! decodes re-encodes, and a second round trip changes nothing.
#![no_main]

use cookiestore::{Cookie, CookieView};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The zero-copy view the lookup path uses: every accessor on verified bytes.
    if let Ok(view) = CookieView::new(data) {
        let _ = (
            view.oid(),
            view.created(),
            view.max_age(),
            view.expires_at(),
        );
        let _ = (view.value(), view.name(), view.authid(), view.authrole());
        let _ = (view.authmethod(), view.authrealm(), view.authextra_cbor());
        let _ = view.is_expired(u64::MAX);
        let auth = view.auth();
        let _ = view.authextra();
        let full = view.to_cookie();
        if let (Ok(Some(auth)), Ok(cookie)) = (&auth, &full) {
            assert_eq!(cookie.auth().as_ref(), Some(auth));
        }
        let _ = format!("{view:?}");
    }
    let Ok(first) = Cookie::decode(data) else {
        return;
    };
    // Too deep or too big for writing is a clean error.
    let Ok(bytes) = first.encode() else {
        return;
    };
    let second = Cookie::decode(&bytes).expect("an encoded record decodes");
    let again = second.encode().expect("a decoded record encodes again");
    let third = Cookie::decode(&again).expect("and decodes again");
    assert_eq!(second, third);
    assert_eq!(bytes.len(), again.len());
});
