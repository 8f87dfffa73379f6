//! Where the demo tells its story: headings, notes, command output, and a live table of the
//! workloads, redrawn in place on a terminal and printed as plain lines (one per change) when the
//! output is not a terminal (a log, a pipe, the end-to-end suite).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One workload's line of the live table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// `Kind/name`.
    pub workload: String,
    /// Per zone (short name): Ready pods, and pods starting (`+n`) or leaving (`-n`).
    pub zones: Vec<(String, String)>,
    pub skew: String,
    pub state: String,
    pub reason: String,
    pub evictions: String,
}

/// The story's output. Writes never fail the demo (a closed pipe just loses the text).
pub struct Screen {
    out: Box<dyn Write + Send>,
    tty: bool,
    started: Instant,
    /// Lines of the live table now on the terminal (tty), erased before anything else is printed.
    drawn: usize,
    /// The table while it is live: redrawn after every note.
    live: Option<(String, Vec<Row>)>,
    /// Plain mode: the last line printed per workload, to print only changes.
    printed: BTreeMap<String, String>,
}

impl Screen {
    /// `tty`: redraw the table in place (ANSI cursor movement) and print headings in bold.
    pub fn new(out: Box<dyn Write + Send>, tty: bool) -> Screen {
        Screen {
            out,
            tty,
            started: Instant::now(),
            drawn: 0,
            live: None,
            printed: BTreeMap::new(),
        }
    }

    /// Plain lines into a buffer the caller keeps (tests, the end-to-end suite).
    pub fn buffer() -> (Screen, SharedBuf) {
        let buf = SharedBuf::default();
        (Screen::new(Box::new(buf.clone()), false), buf)
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// Seconds since the story started.
    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// A step of the story.
    pub fn heading(&mut self, text: &str) {
        let line = if self.tty {
            format!("\n\x1b[1m{text}\x1b[0m")
        } else {
            format!("\n== {text}")
        };
        self.print(&line);
    }

    /// A line of narration.
    pub fn say(&mut self, text: &str) {
        self.print(text);
    }

    /// Preformatted text (command output), indented.
    pub fn block(&mut self, text: &str) {
        let indented: Vec<String> = text.lines().map(|l| format!("    {l}")).collect();
        self.print(&indented.join("\n"));
    }

    /// Starts (or updates) the live table: `title` above the rows.
    pub fn show(&mut self, title: String, rows: Vec<Row>) {
        if self.tty {
            self.erase();
            self.live = Some((title, rows));
            self.draw();
        } else {
            let at = self.elapsed();
            for row in &rows {
                let line = plain_row(row);
                if self.printed.get(&row.workload) != Some(&line) {
                    let _ = writeln!(self.out, "  [{at:6.1}s] {line}");
                    self.printed.insert(row.workload.clone(), line);
                }
            }
            let _ = self.out.flush();
            self.live = Some((title, rows));
        }
    }

    /// Ends the live table; on a terminal it stays on screen as last drawn.
    pub fn freeze(&mut self) {
        self.live = None;
        self.drawn = 0;
        self.printed.clear();
    }

    fn print(&mut self, text: &str) {
        self.erase();
        let _ = writeln!(self.out, "{text}");
        self.draw();
        let _ = self.out.flush();
    }

    /// Moves the cursor up over the table and clears to the end of the screen.
    fn erase(&mut self) {
        if self.tty && self.drawn > 0 {
            let _ = write!(self.out, "\x1b[{}A\r\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self) {
        if !self.tty {
            return;
        }
        let Some((title, rows)) = &self.live else {
            return;
        };
        // At most 80 columns: a wrapped line would throw the redraw's line count off.
        let mut lines = vec![format!("\x1b[2m{}\x1b[0m", clip(title))];
        lines.extend(table(rows).iter().map(|l| clip(l)));
        for line in &lines {
            let _ = writeln!(self.out, "{line}");
        }
        self.drawn = lines.len();
        let _ = self.out.flush();
    }
}

/// The first 80 characters of `line`.
fn clip(line: &str) -> String {
    line.chars().take(80).collect()
}

/// The rows as aligned columns, a header first.
pub fn table(rows: &[Row]) -> Vec<String> {
    let zones: Vec<String> = rows
        .first()
        .map(|r| r.zones.iter().map(|(z, _)| z.clone()).collect())
        .unwrap_or_default();
    let mut header = vec!["WORKLOAD".to_string()];
    header.extend(zones.iter().cloned());
    header.extend(["SKEW", "STATE", "REASON", "EVICTIONS"].map(String::from));
    let mut cells = vec![header];
    for r in rows {
        let mut line = vec![r.workload.clone()];
        line.extend(r.zones.iter().map(|(_, n)| n.clone()));
        line.extend([
            r.skew.clone(),
            r.state.clone(),
            r.reason.clone(),
            r.evictions.clone(),
        ]);
        cells.push(line);
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|i| {
            cells
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    cells
        .iter()
        .map(|l| {
            let padded: Vec<String> = l
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("  {}", padded.join("  ").trim_end())
        })
        .collect()
}

/// One row as a line: `Deployment/web  2a=1 2c=1  skew 0  Idle  evictions 1`.
fn plain_row(r: &Row) -> String {
    let zones: Vec<String> = r.zones.iter().map(|(z, n)| format!("{z}={n}")).collect();
    let state = if r.reason.is_empty() {
        r.state.clone()
    } else {
        format!("{} ({})", r.state, r.reason)
    };
    format!(
        "{}  {}  skew {}  {}  evictions {}",
        r.workload,
        zones.join(" "),
        r.skew,
        state,
        r.evictions
    )
}

/// A `Write` into memory that clones share.
#[derive(Clone, Default)]
pub struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, a: &str, state: &str) -> Row {
        Row {
            workload: name.into(),
            zones: vec![("2a".into(), a.into()), ("2c".into(), "1".into())],
            skew: "0".into(),
            state: state.into(),
            reason: String::new(),
            evictions: "0".into(),
        }
    }

    #[test]
    fn plain_output_prints_a_row_only_when_it_changes() {
        let (mut s, buf) = Screen::buffer();
        s.say("hello");
        s.show("t".into(), vec![row("Deployment/web", "0", "Waiting")]);
        s.show("t".into(), vec![row("Deployment/web", "0", "Waiting")]);
        s.show("t".into(), vec![row("Deployment/web", "1", "Idle")]);
        let text = buf.text();
        assert_eq!(text.matches("Deployment/web").count(), 2, "{text}");
        assert!(text.contains("Deployment/web  2a=1 2c=1  skew 0  Idle  evictions 0"));
        assert!(
            !text.contains('\x1b'),
            "no escape codes when not a terminal"
        );
    }

    #[test]
    fn a_terminal_redraws_the_table_in_place() {
        let buf = SharedBuf::default();
        let mut s = Screen::new(Box::new(buf.clone()), true);
        s.show("live".into(), vec![row("Deployment/web", "0", "Waiting")]);
        s.say("a note");
        s.show("live".into(), vec![row("Deployment/web", "1", "Idle")]);
        let text = buf.text();
        // Title, header and one row: erased (cursor up 3) before the note and before the update.
        assert_eq!(text.matches("\x1b[3A\r\x1b[J").count(), 2, "{text:?}");
        assert!(text.contains("WORKLOAD"));
    }

    #[test]
    fn columns_line_up() {
        let lines = table(&[
            row("Deployment/web", "1", "Idle"),
            row("StatefulSet/redis-master", "0", "Idle"),
        ]);
        let col = |l: &str| l.find("Idle").unwrap();
        assert_eq!(col(&lines[1]), col(&lines[2]), "{lines:#?}");
    }
}
