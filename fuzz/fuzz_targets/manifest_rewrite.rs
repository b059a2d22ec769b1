//! Arbitrary YAML through the manifest reader (serde-saphyr) and the deploy rewrite, for
//! every track and exposure, then written back as YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nprt::deploy::manifest::{parse_documents, to_yaml};
use nprt::deploy::rewrite::{isolation_violations, rewrite, Release, Track};
use nprt::deploy::Exposure;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(manifests) = parse_documents(text, "fuzz.yaml") else {
        return;
    };
    let objects: Vec<_> = manifests.into_iter().map(|m| m.object).collect();
    let release = Release {
        service: "shop".into(),
        version: "v1".into(),
        tag: "abc123".into(),
        commit: Some("abc1234def".into()),
        track: if ctl & 1 == 0 { Track::Canary } else { Track::Stable },
        exposure: if ctl & 2 == 0 { Exposure::Shadow } else { Exposure::Shared },
        namespace: (ctl & 4 != 0).then(|| "ns".into()),
        workloads: if ctl & 8 != 0 { vec!["web".into()] } else { Vec::new() },
    };
    if let Ok(plan) = rewrite(&objects, &release) {
        let _ = isolation_violations(&objects, &plan.objects);
        let _ = to_yaml(&plan.objects);
    }
});
