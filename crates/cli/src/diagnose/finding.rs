//! A diagnosis: a stable code, a one-line summary in plain words, the evidence it rests on,
//! and the commands that fix it. Printed as text or JSON; the same shape for
//! `sigil diagnose tls` and `sigil x509 verify`.

use serde::Serialize;

/// One fact the diagnosis rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evidence {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable, for scripts: `ok`, `unknown-authority`, `client-cert-rejected`, …
    pub code: &'static str,
    pub ok: bool,
    /// One line a person can act on; names the error they saw elsewhere
    /// (`CERTIFICATE_VERIFY_FAILED`, `SSL_ERROR_RX_RECORD_TOO_LONG`, `connection termination`).
    pub summary: String,
    /// Why this happens, in a few sentences.
    pub explanation: Vec<String>,
    pub evidence: Vec<Evidence>,
    /// Shell lines; lines starting with `#` say what the next lines do.
    pub fix: Vec<String>,
}

impl Finding {
    pub fn new(code: &'static str, ok: bool, summary: impl Into<String>) -> Self {
        Finding {
            code,
            ok,
            summary: summary.into(),
            explanation: Vec::new(),
            evidence: Vec::new(),
            fix: Vec::new(),
        }
    }

    pub fn explain(mut self, line: impl Into<String>) -> Self {
        self.explanation.push(line.into());
        self
    }

    pub fn evidence(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.evidence.push(Evidence {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    pub fn fix(mut self, line: impl Into<String>) -> Self {
        self.fix.push(line.into());
        self
    }

    pub fn fixes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, lines: I) -> Self {
        self.fix.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Text for people: headline, explanation, evidence, fix.
    pub fn human(&self, subject: &str) -> String {
        let mut out = String::new();
        if self.ok {
            // `openssl verify` prints `FILE: OK`; scripts grep for it.
            out.push_str(&format!("{subject}: OK\n"));
        } else {
            out.push_str(&format!("{subject}: FAILED [{}]\n", self.code));
        }
        out.push_str(&format!("  {}\n", self.summary));
        for l in &self.explanation {
            out.push_str(&format!("  {l}\n"));
        }
        if !self.evidence.is_empty() {
            out.push_str("Evidence:\n");
            let w = self
                .evidence
                .iter()
                .map(|e| e.name.chars().count())
                .max()
                .unwrap_or(0);
            for e in &self.evidence {
                let mut lines = e.value.lines();
                let first = lines.next().unwrap_or("");
                out.push_str(&format!("  {:<w$} : {first}\n", e.name));
                for more in lines {
                    out.push_str(&format!("  {:<w$}   {more}\n", ""));
                }
            }
        }
        if !self.fix.is_empty() {
            out.push_str("Fix:\n");
            for l in &self.fix {
                out.push_str(&format!("  {l}\n"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_text_aligns_evidence_and_lists_fixes() {
        let f = Finding::new("unknown-authority", false, "CERTIFICATE_VERIFY_FAILED: x")
            .explain("because")
            .evidence("expected root", "CN=a")
            .evidence("presented issuer", "CN=b\nCN=c")
            .fix("# do this")
            .fix("sigil bundle show");
        let t = f.human("127.0.0.1:1");
        assert!(
            t.starts_with("127.0.0.1:1: FAILED [unknown-authority]\n"),
            "{t}"
        );
        assert!(t.contains("  expected root    : CN=a\n"), "{t}");
        assert!(
            t.contains("  presented issuer : CN=b\n                     CN=c\n"),
            "{t}"
        );
        assert!(
            t.contains("Fix:\n  # do this\n  sigil bundle show\n"),
            "{t}"
        );
    }
}
