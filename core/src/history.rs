//! Timeline history files (`00000002.history`): which timeline each one branched from,
//! and where.
//!
//! ```text
//! 1<TAB>0/3000158<TAB>no recovery target specified
//! ```
//!
//! Each line names a parent timeline and the LSN where its child branched off; the file
//! of timeline N lists every ancestor of N, oldest first. Fields are tab-separated.

use crate::{Lsn, Timeline};

/// One ancestor: `timeline` was followed until `switch_lsn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Branch {
    pub timeline: Timeline,
    pub switch_lsn: Lsn,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad timeline history file, line {line}: {reason}")]
pub struct HistoryError {
    pub line: usize,
    pub reason: &'static str,
}

/// Parses a history file's ancestors, oldest first. Comments and blank lines are skipped
/// as PostgreSQL does.
pub fn parse(text: &str) -> Result<Vec<Branch>, HistoryError> {
    let mut out: Vec<Branch> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason| HistoryError {
            line: i + 1,
            reason,
        };
        let mut fields = line.split_whitespace();
        let timeline = fields
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|&t| t != 0)
            .map(Timeline)
            .ok_or_else(|| err("bad timeline id"))?;
        let switch_lsn: Lsn = fields
            .next()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| err("bad switch point"))?;
        if out
            .last()
            .is_some_and(|p| p.timeline >= timeline || p.switch_lsn > switch_lsn)
        {
            return Err(err("timelines out of order"));
        }
        out.push(Branch {
            timeline,
            switch_lsn,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ancestors_in_order() {
        let h =
            parse("1\t0/3000158\tno recovery target specified\n\n# c\n2\t0/5000000\tbefore 2026\n")
                .unwrap();
        assert_eq!(
            h,
            [
                Branch {
                    timeline: Timeline(1),
                    switch_lsn: Lsn(0x300_0158)
                },
                Branch {
                    timeline: Timeline(2),
                    switch_lsn: Lsn(0x500_0000)
                }
            ]
        );
        assert!(parse("2\t0/1\tx\n1\t0/2\ty\n").is_err());
        assert!(parse("x\t0/1\n").is_err());
        assert!(parse("1\tnope\n").is_err());
    }
}
