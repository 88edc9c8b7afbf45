//! One sampled value: a family (its Prometheus name), labels, and the value.

/// Label pairs, sorted by name; few and low-cardinality (a mount, an interface, a state).
pub type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: &'static str,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn new(metric: &'static str, value: f64) -> Sample {
        Sample { metric, labels: Vec::new(), value }
    }

    pub fn labelled(
        metric: &'static str,
        label: &'static str,
        label_value: impl Into<String>,
        value: f64,
    ) -> Sample {
        Sample { metric, labels: vec![(label, label_value.into())], value }
    }

    /// The labels as a JSON object (`pitstop.host_metrics.labels`, alert payloads).
    pub fn labels_json(&self) -> String {
        labels_json(self.labels.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

pub fn labels_json<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    serde_json::Value::Object(
        labels.map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect(),
    )
    .to_string()
}

/// `a/b` when `b` is positive, else None (a ratio of nothing is no value).
pub fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part / whole).clamp(0.0, 1.0))
}
