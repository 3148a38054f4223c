//! The default demo data (seed 1, 300 users) is what other tests (client, gateway) were
//! written against: changing it must be deliberate. If this fails after an intended
//! change to the seed, update the digest and tell the people whose tests use the data.
//! (Last change: pages got `required_fields` and goals, tracker issue 15; users,
//! actions, action fields and phones are as before.)
#![allow(clippy::unwrap_used)]

use actionkit_graphql::sandbox::resources::{render, Res};
use actionkit_graphql::sandbox::seed;
use sha2::{Digest, Sha256};

#[test]
fn default_demo_data_is_stable() {
    let st = seed::generate(1, 300, "sandbox-akid-secret".into());
    let mut h = Sha256::new();
    for id in 1..=300u32 {
        h.update(render(&st, Res::User, id).to_string());
    }
    for id in (1..=st.actions.len() as u32).step_by(97) {
        h.update(render(&st, Res::Action(None), id).to_string());
    }
    for id in 1..=st.pages.len() as u32 {
        h.update(render(&st, Res::Page(None), id).to_string());
    }
    h.update(format!("{} {}", st.actions.len(), st.actionfields.len()));
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("demo data digest: {digest}");
    assert_eq!(
        digest,
        "51ed2c12274e591e2d5e29ea4a395bff06d98c28e410daeb0b616731b3729378"
    );
}
