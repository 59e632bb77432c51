//! Verify + split, the webhook's CPU work per delivery, for a 1-item and a 100-item delivery
//! in Meta's encoding. Run with `cargo bench -p igflow-core` (or scripts/bench-ingress.sh).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use igflow_core::signature::{Verifier, sign};
use igflow_core::splitter::split;
use secrecy::SecretString;

/// A comments delivery with `n` items, non-ASCII escaped the way Meta sends it.
fn delivery(n: usize) -> String {
    let changes: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"field":"comments","value":{{"from":{{"id":"17841405{i:09}","username":"user{i}"}},"media":{{"id":"18000000000000001","media_product_type":"REELS"}},"id":"179000{i:011}","text":"Price??? \ud83d\ude0d \u0915\u0940\u092e\u0924 kitna?"}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"object":"instagram","entry":[{{"id":"17841400000000000","time":1732200000,"changes":[{}]}}]}}"#,
        changes.join(",")
    )
}

fn bench(c: &mut Criterion) {
    let secret = SecretString::from("bench-app-secret".to_owned());
    let verifier = Verifier::new(vec![secret.clone()]);
    let mut group = c.benchmark_group("verify_split");
    for n in [1usize, 100] {
        let body = delivery(n);
        let header = sign(&secret, body.as_bytes());
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{n}_item_delivery"), |b| {
            b.iter(|| {
                let verified = verifier
                    .verify(
                        Some(black_box(header.as_bytes())),
                        black_box(body.as_bytes()),
                    )
                    .expect("signed");
                let envelopes = split(verified, 1_732_200_000_000).expect("splits");
                assert_eq!(envelopes.len(), n);
                black_box(envelopes)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
