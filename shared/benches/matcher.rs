//! Keyword matching per comment: normalization plus one campaign set's automaton, for Latin,
//! Devanagari and Tamil comments. Run with `cargo bench -p igflow-core --bench matcher`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use igflow_core::campaign::{
    Actions, Campaign, MatchMode, MediaScope, Require, Rule, Schedule, Trigger,
};
use igflow_core::event::Comment;
use igflow_core::ids::{EventId, IgUserId};
use igflow_core::plan::CampaignSet;
use uuid::Uuid;

fn campaign(slug: &str, keywords: &[&str]) -> Campaign {
    Campaign {
        id: Uuid::nil(),
        slug: slug.to_owned(),
        trigger: Trigger::Comment,
        priority: 0,
        media: MediaScope::Any,
        payloads: vec![],
        refs: vec![],
        ad_ids: vec![],
        schedule: Schedule::default(),
        cooldown: Duration::ZERO,
        shadow: false,
        rules: vec![Rule {
            mode: MatchMode::WholeWord,
            require: Require::Any,
            keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
            exclude: vec!["priceless".into()],
            fold_accents: true,
            stretch: true,
        }],
        intents: vec![],
        steps: vec![],
        actions: Actions {
            private_reply: vec!["dm".into()],
            ..Actions::default()
        },
    }
}

fn bench(c: &mut Criterion) {
    // Ten campaigns of ten keywords each, the last one the one that matches.
    let mut campaigns: Vec<Campaign> = (0..9)
        .map(|i| {
            campaign(
                &format!("c{i}"),
                &(0..10)
                    .map(|k| format!("word{i}x{k}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    campaigns.push(campaign(
        "prices",
        &[
            "price",
            "cost",
            "how much",
            "kitna",
            "कीमत",
            "விலை",
            "prix",
            "precio",
            "цена",
            "🔥",
        ],
    ));
    let set = CampaignSet::new(campaigns).expect("campaigns compile");
    let account = IgUserId::parse("1").expect("id");
    let event = EventId::parse("comment:1").expect("id");
    let mut group = c.benchmark_group("decide_comment");
    for (name, text) in [
        (
            "latin",
            "Omg these look amazing!!! what's the PRIIICE? 😍😍",
        ),
        ("devanagari", "बहुत सुंदर है, इसकी कीमत क्या है भाई?"),
        ("tamil", "மிகவும் அழகு, இதன் விலை என்ன?"),
        ("no_match", "love the colours on this one, great shot"),
    ] {
        let comment: Comment = serde_json::from_value(
            serde_json::json!({"id": "1", "from": {"id": "2"}, "text": text}),
        )
        .expect("comment");
        group.bench_function(name, |b| {
            b.iter(|| black_box(set.decide_comment(&event, &account, black_box(&comment), 0)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
