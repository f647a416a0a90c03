//! Response bodies: sent in frames of bounded size, so that a scrape holds its slot
//! until nearly all of the response is written, and gzipped once per scan.

use std::convert::Infallible;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper::header::{HeaderMap, ACCEPT_ENCODING};

use super::admit::{RequestGuard, ScrapeSlot};
use crate::metrics::Format;
use crate::sampler::Exposition;

/// Largest body frame handed to hyper: a response is sent in pieces, so a scrape slot is
/// held until nearly all of it has been written to the client.
const CHUNK: usize = 16 * 1024;

/// A response body: bytes handed out in frames of at most [`CHUNK`], holding a scrape
/// slot (when it has one) until the last frame is taken, and marking its connection's
/// request answered when hyper is done with it (dropped).
#[derive(Debug)]
pub struct Body {
    pub(super) rest: Bytes,
    pub(super) slot: Option<ScrapeSlot>,
    pub(super) request: Option<RequestGuard>,
}

impl Body {
    pub(super) fn new(b: impl Into<Bytes>) -> Self {
        Body {
            rest: b.into(),
            slot: None,
            request: None,
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.rest.is_empty() {
            this.slot = None;
            return Poll::Ready(None);
        }
        let n = this.rest.len().min(CHUNK);
        let chunk = this.rest.split_to(n);
        if this.rest.is_empty() {
            this.slot = None;
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

/// Whether `Accept-Encoding` asks for gzip with a non-zero quality.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            if !coding.eq_ignore_ascii_case("gzip") {
                return false;
            }
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| v.trim())
                })
                .next()
                .map(|v| v.parse::<f32>().unwrap_or(0.0))
                .unwrap_or(1.0);
            q > 0.0
        })
}

fn gzip(body: &[u8]) -> std::io::Result<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(body)?;
    Ok(Bytes::from(enc.finish()?))
}

/// The gzipped body of the latest exposition, per format: compressed once per scan, not
/// once per scrape.
#[derive(Debug, Default)]
pub(super) struct GzipCache {
    entries: Mutex<Vec<(Arc<Exposition>, Format, Bytes)>>,
}

impl GzipCache {
    pub(super) fn get(
        &self,
        exp: &Arc<Exposition>,
        format: Format,
        plain: &Bytes,
    ) -> Option<Bytes> {
        let lookup = |entries: &Vec<(Arc<Exposition>, Format, Bytes)>| {
            entries
                .iter()
                .find(|(e, f, _)| Arc::ptr_eq(e, exp) && *f == format)
                .map(|(_, _, b)| b.clone())
        };
        let lock = || match self.entries.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(b) = lookup(&lock()) {
            return Some(b);
        }
        // Compress outside the lock; two scrapes racing just compress twice.
        let z = match gzip(plain) {
            Ok(z) => z,
            Err(e) => {
                tracing::warn!(error = %e, "gzip failed; answering uncompressed");
                return None;
            }
        };
        let mut entries = lock();
        entries.retain(|(e, f, _)| Arc::ptr_eq(e, exp) && *f != format);
        entries.push((exp.clone(), format, z.clone()));
        Some(z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::admit::ScrapeSlots;
    use hyper::header::HeaderValue;

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip;q=0.5",
            "br;q=1.0, gzip",
            "gzip; q=1",
        ] {
            assert!(accepts_gzip(&h(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "gzip;q=0",
            "gzip;q=0.0",
            "deflate",
            "x-gzip2",
            "gzip;q=abc",
        ] {
            assert!(!accepts_gzip(&h(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn body_is_chunked_and_releases_its_slot_at_the_end() {
        use http_body_util::BodyExt;
        let slots = ScrapeSlots::new(1);
        let local = std::net::IpAddr::from([127, 0, 0, 1]);
        let data = Bytes::from(vec![7u8; CHUNK * 2 + 5]);
        let mut b = Body {
            rest: data.clone(),
            slot: Some(slots.try_acquire(local).unwrap()),
            request: None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut got = Vec::new();
        let mut frames = 0;
        rt.block_on(async {
            while let Some(f) = b.frame().await {
                assert_eq!(slots.in_use(), usize::from(!b.rest.is_empty()));
                got.extend_from_slice(&f.unwrap().into_data().unwrap());
                frames += 1;
            }
        });
        assert_eq!(frames, 3);
        assert_eq!(Bytes::from(got), data);
        assert_eq!(slots.in_use(), 0);
    }
}
