//! The Helm chart: `integration-tests/python/test_chart.py` lints and renders it with Helm's
//! own library for every values file in `helm/cairn/ci/`, validates every manifest against the
//! Kubernetes schemas and checks the properties a deployment relies on.

use std::process::Command;

#[test]
fn the_helm_chart_lints_renders_and_validates_for_every_values_file() -> anyhow::Result<()> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/test_chart.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python).arg(&script).output().map_err(|e| {
        anyhow::anyhow!("running {python} (needs helm-python-sdk and kubernetes-validate from PyPI): {e}")
    })?;
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the chart checks failed:\n{report}");
    // Every check class ran.
    for class in ["EveryValuesFile.", "StorageNodes.", "Exposure.", "Schema."] {
        assert!(report.contains(class), "{class} did not run:\n{report}");
    }
    Ok(())
}
