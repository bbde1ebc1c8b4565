//! [`IntoResponse`]: what a handler may return.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::body::Body;
use super::error::{Error, ErrorKind};

/// Types a handler can return: anything that becomes a `Response<Body>`.
///
/// Implemented for `Response<B>` (with `B: Into<Body>`), `(StatusCode, B)`,
/// `(StatusCode, [(HeaderName, HeaderValue); N], B)`, a bare `StatusCode`, `&'static str`,
/// `String`, `Vec<u8>`, `Bytes`, `Body`, `()` (an empty 200) and `Result<T, E>` where both
/// are `IntoResponse`. The HTTP client's [`Error`] answers 413 for a body over the limit, 504
/// for a timeout and 502 otherwise, so a handler can use `?` on upstream calls.
///
/// # Example
/// ```
/// use untangle::http::{header, IntoResponse, StatusCode};
///
/// let r = (StatusCode::CREATED, [(header::LOCATION, header::HeaderValue::from_static("/a"))], "made")
///     .into_response();
/// assert_eq!(r.status(), StatusCode::CREATED);
/// assert_eq!(r.headers()[header::LOCATION], "/a");
/// ```
pub trait IntoResponse {
    /// Builds the response.
    fn into_response(self) -> Response<Body>;
}

impl<B: Into<Body>> IntoResponse for Response<B> {
    fn into_response(self) -> Response<Body> {
        self.map(Into::into)
    }
}

impl<B: Into<Body>> IntoResponse for (StatusCode, B) {
    fn into_response(self) -> Response<Body> {
        let mut response = Response::new(self.1.into());
        *response.status_mut() = self.0;
        response
    }
}

impl<B: Into<Body>, const N: usize> IntoResponse
    for (StatusCode, [(HeaderName, HeaderValue); N], B)
{
    fn into_response(self) -> Response<Body> {
        let mut response = Response::new(self.2.into());
        *response.status_mut() = self.0;
        let headers = response.headers_mut();
        for (name, value) in self.1 {
            headers.append(name, value);
        }
        response
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response<Body> {
        (self, Body::empty()).into_response()
    }
}

macro_rules! body_into_response {
    ($($ty:ty),*) => {
        $(impl IntoResponse for $ty {
            fn into_response(self) -> Response<Body> {
                Response::new(Body::from(self))
            }
        })*
    };
}

body_into_response!(
    &'static str,
    String,
    Vec<u8>,
    Bytes,
    Body,
    &'static [u8],
    ()
);

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response<Body> {
        match self {
            Ok(value) => value.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response<Body> {
        let status = match self.kind() {
            ErrorKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        log::warn!("handler error: {self}");
        (status, status.canonical_reason().unwrap_or("error")).into_response()
    }
}
