//! Every recorded ActionKit object the client models (user, any action type, any page
//! type, actionfield) decodes into the client's models; every recorded collection
//! decodes with the client's collection envelope parser.
//!
//! Covered resources (by each object's own `resource_uri`, not the file name):
//! `user`; `*action` (petitionaction, donationaction, eventcreateaction,
//! eventsignupaction — donationpush answers are donation actions); `*page`
//! (petitionpage, surveypage, donationpage, eventcreatepage, eventsignuppage, ... in
//! `page-list-200.json`); `actionfield` (none is recorded; the arm is there for when
//! one is). Other resources (tag, language, order, campaign, alloweduserfield, phone,
//! multilingualcampaign, orderuserdetail, ...) are only checked to be JSON objects
//! inside a readable envelope.

use std::path::Path;

use actionkit_graphql::actionkit::models::parse_uri;
use actionkit_graphql::actionkit::wire::{decode_collection, decode_object};
use actionkit_graphql::actionkit::{Action, ActionField, Page, User};
use serde_json::Value;

const FIXTURES: &str = crate::helpers::RECORDED;

#[derive(Default, Debug)]
struct Seen {
    users: usize,
    actions: usize,
    pages: usize,
    actionfields: usize,
    other_objects: usize,
    collections: usize,
}

/// Decodes `obj` (from `file`, at `at`) into the model its `resource_uri` names.
fn check_object(file: &str, at: &str, obj: &Value, seen: &mut Seen) {
    assert!(obj.is_object(), "{file} {at}: not a JSON object");
    let bytes = serde_json::to_vec(obj).unwrap();
    let resource = obj
        .get("resource_uri")
        .and_then(Value::as_str)
        .and_then(parse_uri)
        .map(|(res, _)| res.to_owned());
    let fail = |e: actionkit_graphql::actionkit::Error| -> ! {
        panic!("{file} {at}: does not decode: {e}")
    };
    match resource.as_deref() {
        Some("user") => {
            let u: User = decode_object(&bytes).unwrap_or_else(|e| fail(e));
            assert_eq!(Some(u.id.0), obj["id"].as_u64(), "{file} {at}");
            seen.users += 1;
        }
        Some("actionfield") => {
            let f: ActionField = decode_object(&bytes).unwrap_or_else(|e| fail(e));
            assert_eq!(Some(f.id), obj["id"].as_u64(), "{file} {at}");
            seen.actionfields += 1;
        }
        Some(r) if r.ends_with("action") => {
            let a: Action = decode_object(&bytes).unwrap_or_else(|e| fail(e));
            assert_eq!(Some(a.id.0), obj["id"].as_u64(), "{file} {at}");
            assert_eq!(
                Some(a.kind.type_name()),
                obj["type"].as_str(),
                "{file} {at}"
            );
            assert_eq!(
                a.fields.len(),
                obj["fields"].as_object().unwrap().len(),
                "{file} {at}"
            );
            seen.actions += 1;
        }
        Some(r) if r.ends_with("page") => {
            let p: Page = decode_object(&bytes).unwrap_or_else(|e| fail(e));
            assert_eq!(Some(p.id.0), obj["id"].as_u64(), "{file} {at}");
            assert_eq!(Some(p.name.as_str()), obj["name"].as_str(), "{file} {at}");
            seen.pages += 1;
        }
        _ => seen.other_objects += 1,
    }
}

#[test]
fn every_recorded_object_decodes_into_the_models() {
    let index: Value =
        serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join("index.json")).unwrap())
            .unwrap();
    let mut seen = Seen::default();
    for entry in index.as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let fixture: Value =
            serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join(file)).unwrap())
                .unwrap();
        let status = fixture["response"]["status"].as_u64().unwrap();
        let body = &fixture["response"]["body"];
        if !(200..300).contains(&status) || body.is_null() {
            continue; // errors and empty bodies: see the client's error tests
        }
        if body.get("objects").is_some() {
            // A collection: the client's own envelope parser must read it.
            let bytes = serde_json::to_vec(body).unwrap();
            let page = decode_collection::<Value>(&bytes)
                .unwrap_or_else(|e| panic!("{file}: envelope does not decode: {e}"));
            assert!(page.meta.total_count.is_some(), "{file}: no total_count");
            for (i, obj) in page.objects.iter().enumerate() {
                check_object(file, &format!("objects[{i}]"), obj, &mut seen);
            }
            seen.collections += 1;
        } else {
            check_object(file, "body", body, &mut seen);
        }
    }
    eprintln!("{seen:?}");
    // The fixtures hold (at least) these many objects of each modelled kind; a test
    // that decoded nothing would otherwise pass.
    assert!(seen.users >= 2, "{seen:?}");
    assert!(seen.actions >= 7, "{seen:?}");
    assert!(seen.pages >= 23, "{seen:?}");
    assert!(seen.collections >= 11, "{seen:?}");
    assert!(seen.other_objects > 0, "{seen:?}");
}

#[test]
fn donation_orders_and_event_links_are_read() {
    let read = |f: &str| -> Vec<u8> {
        let v: Value =
            serde_json::from_slice(&std::fs::read(Path::new(FIXTURES).join(f)).unwrap()).unwrap();
        serde_json::to_vec(&v["response"]["body"]).unwrap()
    };
    let donation: Action = decode_object(&read("donationpush-create-201.json")).unwrap();
    let order = donation.order.clone().unwrap();
    assert_eq!(order.id, Some(802839));
    assert_eq!(order.total.as_deref(), Some("34.00"));
    assert_eq!(donation.page_id().0, 8644);
    let create: Action = decode_object(&read("eventcreateaction-detail-200.json")).unwrap();
    assert_eq!(create.event, Some(999));
    let signup: Action = decode_object(&read("eventsignupaction-detail-200.json")).unwrap();
    assert!(signup.signup.is_some());
    let user: User = decode_object(&read("user-detail-with-phones-200.json")).unwrap();
    assert_eq!(
        user.fields["color"].values(),
        vec!["blue".to_owned(), "yellow".to_owned()]
    );
}
