//! Logging: `tracing` to stderr, as logfmt or JSON, at the configured level.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// Install the global subscriber. Later calls are ignored (tests may call it twice).
pub fn init(level: LevelFilter, format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy("")
        .add_directive("hyper=warn".parse().unwrap_or_else(|_| level.into()));
    let layer = match format {
        LogFormat::Logfmt => tracing_logfmt::builder()
            .with_span_name(false)
            .with_span_path(false)
            .layer()
            .with_writer(|| LogfmtStderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
}

/// stderr for logfmt lines, with one step of tracing-logfmt undone: it escapes quoted
/// values with `str::escape_debug`, which turns `'` into `\'` (`host\'s`), an escape
/// that logfmt does not have and its readers keep. The layer hands over each event as
/// one line in one write, so an escape never spans two writes.
struct LogfmtStderr;

impl std::io::Write for LogfmtStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(&unescape_apostrophes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `\'` back to `'`, leaving every other escape (`\\`, `\"`, `\n`) as it is.
fn unescape_apostrophes(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !line.windows(2).any(|w| w == b"\\'") {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        match (line[i], line.get(i + 1)) {
            (b'\\', Some(b'\'')) => out.push(b'\''),
            (b'\\', Some(&escaped)) => out.extend_from_slice(&[b'\\', escaped]),
            (b, _) => {
                out.push(b);
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::unescape_apostrophes;

    #[test]
    fn apostrophes_lose_their_backslash_and_other_escapes_stay() {
        let cases: [(&str, &str); 5] = [
            (r#"message="PID 1\'s links""#, r#"message="PID 1's links""#),
            (r#"a="x\\\'s""#, r#"a="x\\'s""#),
            (r#"a="say \"hi\"\n""#, r#"a="say \"hi\"\n""#),
            (r#"path="C:\\dir\\""#, r#"path="C:\\dir\\""#),
            ("plain=1 no=escapes", "plain=1 no=escapes"),
        ];
        for (raw, want) in cases {
            assert_eq!(
                String::from_utf8_lossy(&unescape_apostrophes(raw.as_bytes())),
                want,
                "{raw}"
            );
        }
    }
}
