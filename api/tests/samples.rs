//! Every manifest under samples/ parses and validates: the samples are documentation
//! users copy, so they must stay applicable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use paas_api::manifest::parse_manifests;

#[test]
fn every_sample_manifest_is_valid() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let mut checked = 0;
    for dir in ["serving", "eventing"] {
        for entry in std::fs::read_dir(samples.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.display().to_string();
            let manifests = parse_manifests(&name, &text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!manifests.is_empty(), "{name} holds no manifest");
            for m in &manifests {
                assert!(m.warnings.is_empty(), "{name}: {:?}", m.warnings);
            }
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} sample files found");
}
