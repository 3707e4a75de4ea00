//! The metric spec syntax of CloudWatch expressions: `NAMESPACE:METRIC:STAT{Dim=Value,...}`.

use std::fmt;

/// One CloudWatch metric and statistic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    /// Namespace (`AWS/EC2`, `AWS/ApplicationELB`, `Hoist`).
    pub namespace: String,
    /// Metric name (`CPUUtilization`).
    pub metric_name: String,
    /// Statistic (`Average`, `Sum`, `Maximum`, `p95`, ...).
    pub stat: String,
    /// Dimensions; `None` means "the group's `AutoScalingGroupName`".
    pub dimensions: Option<Vec<(String, String)>>,
}

impl fmt::Display for MetricSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.namespace, self.metric_name, self.stat)?;
        if let Some(dims) = &self.dimensions {
            let dims: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "{{{}}}", dims.join(","))?;
        }
        Ok(())
    }
}

/// Parses a metric spec. Returns `Ok(None)` when `text` is not one (it is then a metric math
/// or Metrics Insights expression), and an error when it looks like one but is malformed.
pub fn parse_metric_spec(text: &str) -> Result<Option<MetricSpec>, String> {
    let text = text.trim();
    // Metric math and Metrics Insights use spaces, parentheses or keywords; specs never do.
    if text.contains(' ') || text.contains('(') || text.matches(':').count() != 2 {
        return Ok(None);
    }
    let (head, dims) = match text.find('{') {
        Some(open) => {
            let Some(inner) = text[open + 1..].strip_suffix('}') else {
                return Err("dimensions must end with `}`".to_owned());
            };
            (&text[..open], Some(inner))
        }
        None => (text, None),
    };
    let mut parts = head.split(':');
    let (Some(namespace), Some(metric_name), Some(stat)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Ok(None);
    };
    if namespace.is_empty() || metric_name.is_empty() || stat.is_empty() {
        return Err("expected NAMESPACE:METRIC:STAT with none of them empty".to_owned());
    }
    let dimensions = match dims {
        None => None,
        Some(inner) if inner.trim().is_empty() => Some(Vec::new()),
        Some(inner) => Some(
            inner
                .split(',')
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                        Ok((k.trim().to_owned(), v.trim().to_owned()))
                    }
                    _ => Err(format!("dimension `{pair}` is not Name=Value")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(Some(MetricSpec {
        namespace: namespace.to_owned(),
        metric_name: metric_name.to_owned(),
        stat: stat.to_owned(),
        dimensions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_leaves_expressions_alone() {
        let spec = parse_metric_spec(
            "AWS/ApplicationELB:RequestCountPerTarget:Sum{TargetGroup=targetgroup/web/1}",
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.namespace, "AWS/ApplicationELB");
        assert_eq!(spec.stat, "Sum");
        assert_eq!(
            spec.dimensions,
            Some(vec![("TargetGroup".into(), "targetgroup/web/1".into())])
        );
        assert_eq!(
            spec.to_string(),
            "AWS/ApplicationELB:RequestCountPerTarget:Sum{TargetGroup=targetgroup/web/1}"
        );
        let plain = parse_metric_spec("Hoist:QueueDepth:Maximum")
            .unwrap()
            .unwrap();
        assert_eq!(plain.dimensions, None);
        assert_eq!(
            parse_metric_spec("Hoist:QueueDepth:Maximum{}")
                .unwrap()
                .unwrap()
                .dimensions,
            Some(vec![])
        );
        assert_eq!(parse_metric_spec("SUM(METRICS())").unwrap(), None);
        assert_eq!(
            parse_metric_spec("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\"").unwrap(),
            None
        );
        assert!(parse_metric_spec("A:B:C{X}").is_err());
        assert!(parse_metric_spec("A::C").is_err());
        assert!(parse_metric_spec("A:B:C{X=1").is_err());
    }
}
