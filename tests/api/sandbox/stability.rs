//! The default demo data (seed 1, 300 users) is what other tests (client, gateway) were
//! written against: changing it must be deliberate. If this fails after an intended
//! change to the seed, update the digest and tell the people whose tests use the data.

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
        "a520264279e3ae0573f085e866f68c526bea82583d99ded671889a3c353c46f7"
    );
}
