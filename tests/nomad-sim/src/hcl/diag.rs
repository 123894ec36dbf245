//! Diagnostics as Nomad's HCL2 parser words them: `input.hcl:LINE,COL-ENDCOL: Summary;
//! Detail`, `input.hcl:LINE,COL-ENDLINE,ENDCOL: ...` when the range spans lines, and
//! `<nil>: ...` when the problem has no place in the file (an unset variable). Lines and
//! columns count from 1; columns count characters, not bytes.

use std::ops::Range;

/// A byte range in one of the parsed texts.
pub(crate) type Span = Range<usize>;

/// The file name Nomad's parse endpoint gives every jobspec (and its variable values).
pub(crate) const FILE: &str = "input.hcl";

/// Which text a diagnostic points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Text {
    /// The jobspec.
    Job,
    /// The request's `Variables` (var-file format).
    Vars,
}

/// One problem found in a jobspec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Diag {
    /// Where it is (`None` prints `<nil>`).
    pub at: Option<(Text, Span)>,
    pub summary: String,
    pub detail: String,
    /// A warning only: reported only next to an error, as Nomad does.
    pub warning: bool,
}

impl Diag {
    /// An error at `span` of the jobspec.
    pub(crate) fn at(span: Span, summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            at: Some((Text::Job, span)),
            summary: summary.into(),
            detail: detail.into(),
            warning: false,
        }
    }

    /// An error with no place in the file.
    pub(crate) fn nowhere(summary: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            at: None,
            summary: summary.into(),
            detail: detail.into(),
            warning: false,
        }
    }

    /// The same diagnostic pointing into `text`.
    pub(crate) fn in_text(mut self, text: Text) -> Self {
        if let Some((t, _)) = &mut self.at {
            *t = text;
        }
        self
    }
}

/// Line starts of a text, for turning byte offsets into lines and columns.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Self { text, starts }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub(crate) fn pos(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line, col + 1)
    }

    /// `input.hcl:L,C-EC` or `input.hcl:L,C-EL,EC`.
    pub(crate) fn range(&self, span: &Span) -> String {
        let (l1, c1) = self.pos(span.start);
        let (l2, c2) = self.pos(span.end.max(span.start));
        if l1 == l2 {
            format!("{FILE}:{l1},{c1}-{c2}")
        } else {
            format!("{FILE}:{l1},{c1}-{l2},{c2}")
        }
    }
}

/// Renders diagnostics like Nomad's parse endpoint: one per line.
pub(crate) fn render_all(diags: &[Diag], job: &Lines<'_>, vars: &Lines<'_>) -> String {
    diags
        .iter()
        .map(|d| render(d, job, vars))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders diagnostics the way `hcl.Diagnostics.Error()` does: the first one, and how
/// many others there were.
pub(crate) fn render_first(diags: &[Diag], job: &Lines<'_>, vars: &Lines<'_>) -> String {
    match diags {
        [] => String::new(),
        [one] => render(one, job, vars),
        [first, rest @ ..] => format!(
            "{}, and {} other diagnostic(s)",
            render(first, job, vars),
            rest.len()
        ),
    }
}

pub(crate) fn render(d: &Diag, job: &Lines<'_>, vars: &Lines<'_>) -> String {
    let at = match &d.at {
        None => "<nil>".to_string(),
        Some((Text::Job, span)) => job.range(span),
        Some((Text::Vars, span)) => vars.range(span),
    };
    format!("{at}: {}; {}", d.summary, d.detail)
}

/// Levenshtein distance, for `Did you mean "..."?`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// ` Did you mean "x"?` for the first candidate less than 3 edits away, else "".
pub(crate) fn suggestion<'c>(given: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    candidates
        .into_iter()
        .find(|c| distance(given, c) < 3)
        .map(|c| format!(" Did you mean {c:?}?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let l = Lines::new("ab\nééx\n");
        assert_eq!(l.pos(0), (1, 1));
        assert_eq!(l.pos(2), (1, 3));
        assert_eq!(l.pos(3), (2, 1));
        // `x` is the third character of line 2, at byte 7.
        assert_eq!(l.pos(7), (2, 3));
        assert_eq!(l.range(&(3..8)), "input.hcl:2,1-4");
        assert_eq!(l.range(&(1..3)), "input.hcl:1,2-2,1");
        assert_eq!(l.pos(100), (3, 1));
    }

    #[test]
    fn suggestions_need_fewer_than_three_edits() {
        assert_eq!(distance("cont", "count"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(
            suggestion("foo", ["variable", "job"]),
            " Did you mean \"job\"?"
        );
        assert_eq!(suggestion("xyzzy", ["job"]), "");
    }

    #[test]
    fn rendering() {
        let l = Lines::new("a = 1\n");
        let d = vec![
            Diag::at(0..1, "S", "D."),
            Diag::nowhere("Unset variable \"x\"", "D."),
        ];
        assert_eq!(
            render_all(&d, &l, &l),
            "input.hcl:1,1-2: S; D.\n<nil>: Unset variable \"x\"; D."
        );
        assert_eq!(
            render_first(&d, &l, &l),
            "input.hcl:1,1-2: S; D., and 1 other diagnostic(s)"
        );
    }
}
