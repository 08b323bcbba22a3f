//! What a register client did: one [`Op`] per operation, with the clock times around it.

/// A register's value. Every write writes a value no other write writes.
pub type Value = i64;

/// What an operation asked, and what it was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A strict read; `None` when no answer came (it then constrains nothing).
    Read { value: Option<Value> },
    /// An unconditional write.
    Write { value: Value },
    /// Compare-and-set: `from` → `to`; `succeeded` is `None` when the outcome is unknown.
    Cas {
        from: Value,
        to: Value,
        succeeded: Option<bool>,
    },
}

/// One operation of one client on one register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The client; a client runs one operation at a time.
    pub client: usize,
    /// The register.
    pub key: usize,
    pub kind: OpKind,
    /// Wall-clock microseconds when the client sent the first attempt.
    pub invoke_us: i64,
    /// Wall-clock microseconds when the definite answer came; `None` when none did, so the
    /// operation may take effect at any time after `invoke_us`, or never.
    pub complete_us: Option<i64>,
    /// The node that gave the definite answer (empty when none did).
    pub node: String,
}

impl Op {
    /// The value this operation put in its register if it took effect, if it writes one.
    pub fn written(&self) -> Option<Value> {
        match self.kind {
            OpKind::Write { value } => Some(value),
            OpKind::Cas {
                to,
                succeeded: Some(true) | None,
                ..
            } => Some(to),
            _ => None,
        }
    }

    /// Whether it was acknowledged as having written (a write, or a compare-and-set that
    /// succeeded).
    pub fn acknowledged_write(&self) -> bool {
        self.complete_us.is_some()
            && matches!(
                self.kind,
                OpKind::Write { .. }
                    | OpKind::Cas {
                        succeeded: Some(true),
                        ..
                    }
            )
    }

    /// Whether its interval meets `[start_us, end_us]`.
    pub fn overlaps(&self, start_us: i64, end_us: i64) -> bool {
        self.invoke_us <= end_us && self.complete_us.unwrap_or(i64::MAX) >= start_us
    }

    pub fn describe(&self, origin_us: i64) -> String {
        let at = |us: i64| format!("{:.3}s", (us - origin_us) as f64 / 1e6);
        let end = self.complete_us.map_or_else(|| "never".to_string(), at);
        let what = match &self.kind {
            OpKind::Read { value: Some(v) } => format!("read -> {v}"),
            OpKind::Read { value: None } => "read -> no answer".to_string(),
            OpKind::Write { value } => format!("write {value}"),
            OpKind::Cas {
                from,
                to,
                succeeded,
            } => {
                let outcome = match succeeded {
                    Some(true) => "ok",
                    Some(false) => "failed",
                    None => "unknown",
                };
                format!("cas {from} -> {to} ({outcome})")
            }
        };
        let node = if self.node.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.node)
        };
        format!(
            "client {} key {}: {what}{node} [{} .. {end}]",
            self.client,
            self.key,
            at(self.invoke_us)
        )
    }
}
