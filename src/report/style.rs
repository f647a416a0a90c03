//! Aligned columns and optional ANSI colour (anstyle) for the terminal commands. Widths are
//! counted on the text without escape codes, so coloured and plain output line up the
//! same way.

use std::fmt::Write as _;

/// What a piece of text means, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Plain,
    /// Headings.
    Bold,
    /// Host sharing that exposes the node (net, pid, ipc, uts, mnt) and host root.
    Danger,
    /// Host sharing that is normal for containers (cgroup, time, user) or remapped root.
    Notice,
    /// Isolated from the host.
    Good,
    /// Secondary information.
    Dim,
}

impl Tone {
    fn style(self) -> anstyle::Style {
        use anstyle::{AnsiColor, Style};
        match self {
            Tone::Plain => Style::new(),
            Tone::Bold => Style::new().bold(),
            Tone::Danger => Style::new().bold().fg_color(Some(AnsiColor::Red.into())),
            Tone::Notice => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
            Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
            Tone::Dim => Style::new().dimmed(),
        }
    }
}

/// Whether to write escape codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Painter {
    pub(crate) color: bool,
}

impl Painter {
    /// Colour for stdout unless `no_color`: anstream's choice for it, which honours
    /// `NO_COLOR` (set and not empty), `TERM=dumb`, `CLICOLOR`/`CLICOLOR_FORCE`, and
    /// whether stdout is a terminal.
    pub(crate) fn for_stdout(no_color: bool) -> Painter {
        let choice = anstream::AutoStream::choice(&std::io::stdout());
        Painter {
            color: !no_color && choice != anstream::ColorChoice::Never,
        }
    }

    pub(crate) fn paint(&self, text: &str, tone: Tone) -> String {
        let style = tone.style();
        if self.color && !text.is_empty() && style != anstyle::Style::new() {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }
}

/// Text from /proc is chosen by whoever runs a process or makes a mount, in any
/// container: a comm, or a mount point (mountinfo leaves bytes other than space, tab,
/// newline and backslash raw, and its octal escapes decode to anything). Control
/// characters are shown as `\xNN` so that such text can neither send escape sequences
/// to the terminal nor break a row.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// One table cell: text spans, each with its own tone. All text goes through
/// [`printable`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cell(Vec<(String, Tone)>);

impl Cell {
    pub(crate) fn plain(text: impl AsRef<str>) -> Cell {
        Cell::toned(text, Tone::Plain)
    }

    pub(crate) fn toned(text: impl AsRef<str>, tone: Tone) -> Cell {
        Cell(vec![(printable(text.as_ref()), tone)])
    }

    pub(crate) fn push(&mut self, text: impl AsRef<str>, tone: Tone) {
        self.0.push((printable(text.as_ref()), tone));
    }

    fn width(&self) -> usize {
        self.0.iter().map(|(t, _)| t.chars().count()).sum()
    }

    fn render(&self, p: Painter) -> String {
        self.0.iter().map(|(t, tone)| p.paint(t, *tone)).collect()
    }
}

/// Columns separated by two spaces, left-aligned, no trailing blanks.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    pub(crate) fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self, p: Painter) -> String {
        let ncols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(ncols) {
                widths[i] = widths[i].max(c.width());
            }
        }
        let mut out = String::new();
        let header: Vec<Cell> = self
            .header
            .iter()
            .map(|h| Cell::toned(*h, Tone::Bold))
            .collect();
        for r in std::iter::once(&header).chain(self.rows.iter()) {
            let mut line = String::new();
            let last = r.len().min(ncols).saturating_sub(1);
            for (i, c) in r.iter().enumerate().take(ncols) {
                line.push_str(&c.render(p));
                if i < last {
                    let pad = widths[i] - c.width() + 2;
                    let _ = write!(line, "{:pad$}", "");
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_reach_the_terminal() {
        assert_eq!(
            printable("/run/netns/a\x1b[2Jb\nc"),
            "/run/netns/a\\x1b[2Jb\\x0ac"
        );
        assert_eq!(printable("leaked uts"), "leaked uts");
        let mut t = Table::new(&["MOUNT POINTS"]);
        t.row(vec![Cell::plain("/x\x1b]0;pwned\x07\r")]);
        let text = t.render(Painter { color: true });
        assert!(!text.contains("\x1b]"), "{text:?}");
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn columns_line_up_with_and_without_colour() {
        let mut t = Table::new(&["A", "LONGER"]);
        let mut c = Cell::toned("net", Tone::Danger);
        c.push(" time", Tone::Notice);
        t.row(vec![c, Cell::plain("x")]);
        t.row(vec![Cell::plain("a"), Cell::plain("")]);
        let plain = t.render(Painter { color: false });
        assert_eq!(plain, "A         LONGER\nnet time  x\na\n");
        let coloured = t.render(Painter { color: true });
        assert!(
            coloured.contains("\x1b[1m\x1b[31mnet\x1b[0m\x1b[33m time\x1b[0m  x\n"),
            "{coloured:?}"
        );
        let stripped: String = {
            let mut s = String::new();
            let mut esc = false;
            for ch in coloured.chars() {
                match (esc, ch) {
                    (false, '\x1b') => esc = true,
                    (true, 'm') => esc = false,
                    (true, _) => {}
                    (false, c) => s.push(c),
                }
            }
            s
        };
        assert_eq!(stripped, plain);
    }
}
