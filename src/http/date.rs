//! The `Date` header value, formatted once per second per thread.
//!
//! Responses copy the cached bytes straight into the write buffer: no `HeaderValue`, no
//! reference count, no formatting on the hot path.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
const LEN: usize = 29;

thread_local! {
    /// The second the cached text is for, and the text.
    static CACHE: Cell<(u64, [u8; LEN])> = const { Cell::new((u64::MAX, [b' '; LEN])) };
}

/// Appends the current time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to `out`.
pub(crate) fn write(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (cached_secs, mut text) = CACHE.get();
    if cached_secs != secs {
        let formatted = httpdate::fmt_http_date(now);
        if formatted.len() == LEN {
            text.copy_from_slice(formatted.as_bytes());
        }
        CACHE.set((secs, text));
    }
    out.extend_from_slice(&text);
}

#[cfg(test)]
mod tests {
    #[test]
    fn date_is_an_imf_fixdate() {
        let mut out = Vec::new();
        super::write(&mut out);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.len(), 29, "{text:?}");
        assert!(text.ends_with(" GMT"), "{text:?}");
        assert!(httpdate::parse_http_date(text).is_ok(), "{text:?}");
    }
}
