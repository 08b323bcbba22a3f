//! `TablePolicy`: how a table settles a row changed on both sides of a split brain.
//!
//! DESIGN.md §4 names two policies, `newest` by HLC (the default) and `keep_active`. A table may
//! also declare a weaker value: an image that loses to any image without it, whatever the stamps
//! and the policy. The gateway's CDRs use it: a call the new active closed with
//! `cause = 'failover'` loses to the real end the old active recorded (issue 4). The rule is a
//! predicate on an image, so the policy stays generic; `WeakerValue::column_equals` covers the
//! common "one column holds one value" case.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::orphan::RowImage;

/// Which change of a row changed on both sides is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConflictPolicy {
    /// The change with the greater HLC stamp, in `Hlc`'s total order (`ms`, `logical`, then the
    /// issuing node's name), so two different nodes never tie.
    #[default]
    Newest,
    /// The active's change, always.
    KeepActive,
}

/// A predicate saying an image holds a weaker value.
#[derive(Clone)]
pub struct WeakerValue {
    /// The predicate; shared so a policy can be cloned into every merge.
    is_weaker: Arc<dyn Fn(&RowImage) -> bool + Send + Sync>,
    /// What the predicate tests, for `Debug` and logs.
    description: String,
}

impl WeakerValue {
    /// Any predicate, with a description for logs.
    pub fn new(
        description: impl Into<String>,
        is_weaker: impl Fn(&RowImage) -> bool + Send + Sync + 'static,
    ) -> WeakerValue {
        WeakerValue {
            is_weaker: Arc::new(is_weaker),
            description: description.into(),
        }
    }

    /// An image is weaker when `column` holds exactly `value`.
    pub fn column_equals(column: impl Into<String>, value: Value) -> WeakerValue {
        let column = column.into();
        let description = format!("{column} = {value}");
        WeakerValue::new(description, move |image| image.get(&column) == Some(&value))
    }

    /// Whether `image` holds the weaker value. A deleted row (`None`) never does.
    pub fn is_weaker(&self, image: Option<&RowImage>) -> bool {
        image.is_some_and(|image| (self.is_weaker)(image))
    }
}

impl fmt::Debug for WeakerValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WeakerValue({})", self.description)
    }
}

/// The merge policy of one table.
#[derive(Clone, Debug, Default)]
pub struct TablePolicy {
    /// Which change wins when neither or both images are weaker.
    pub conflict: ConflictPolicy,
    /// The table's weaker value, if it declares one.
    pub weaker: Option<WeakerValue>,
}

impl TablePolicy {
    pub fn new(conflict: ConflictPolicy) -> TablePolicy {
        TablePolicy {
            conflict,
            weaker: None,
        }
    }

    pub fn with_weaker(self, weaker: WeakerValue) -> TablePolicy {
        TablePolicy {
            weaker: Some(weaker),
            ..self
        }
    }
}
