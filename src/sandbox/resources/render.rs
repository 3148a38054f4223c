//! JSON representations, as the recorded responses show them: sorted keys, typed
//! `resource_uri`/`page`, URIs for relations, naive UTC timestamps.

use serde_json::{json, Map, Value};

use super::{money, Res};
use crate::sandbox::store::*;

// ---- representations ------------------------------------------------------

fn uri(res: &str, id: impl std::fmt::Display) -> String {
    format!("/rest/v1/{res}/{id}/")
}

fn opt_uri(res: &str, id: Option<u32>) -> Value {
    id.map(|i| Value::String(uri(res, i)))
        .unwrap_or(Value::Null)
}

/// Custom fields as ActionKit renders them: one row -> string, several -> array (row order).
pub fn render_fields(st: &Store, rows: impl Iterator<Item = (Sym, Sym)>) -> Value {
    let mut m: Map<String, Value> = Map::new();
    for (n, v) in rows {
        let name = st.sym(n).to_string();
        let val = Value::String(st.sym(v).to_string());
        match m.get_mut(&name) {
            None => {
                m.insert(name, val);
            }
            Some(Value::Array(a)) => a.push(val),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, val]);
            }
        }
    }
    Value::Object(m)
}

/// Renders an object of `res` (which must exist).
pub fn render(st: &Store, res: Res, id: u32) -> Value {
    match res {
        Res::User => render_user(st, id),
        Res::Action(t) => render_action(st, id, t.is_some()),
        Res::Page(t) => render_page(st, id, t.is_some()),
        Res::ActionField => match st.actionfield(id) {
            Some(f) => {
                let ptype = st
                    .action(f.parent)
                    .map(|a| st.action_type(a))
                    .unwrap_or(PageType::Petition);
                json!({
                    "id": id,
                    "name": st.sym(f.name),
                    "parent": uri(&format!("{}action", ptype.slug()), f.parent),
                    "resource_uri": uri("actionfield", id),
                    "value": st.sym(f.value),
                })
            }
            None => Value::Null,
        },
        Res::Tag => match st.tags.get((id as usize).wrapping_sub(1)) {
            Some(t) => json!({"name": &*t.name, "resource_uri": uri("tag", id)}),
            None => Value::Null,
        },
        Res::Language => match LANGUAGES.iter().find(|l| l.id == id) {
            Some(l) => json!({
                "created_at": "2010-01-26T11:34:42",
                "hidden": false,
                "id": l.id,
                "iso_code": l.iso_code,
                "name": l.name,
                "ordering": 0,
                "resource_uri": uri("language", l.id),
                "translations": "{}",
                "updated_at": "2014-10-02T01:02:18",
            }),
            None => Value::Null,
        },
        Res::Phone => match st.phones.get((id as usize).wrapping_sub(1)) {
            Some(p) => json!({
                "created_at": fmt_secs(p.created_at),
                "id": id,
                "normalized_phone": &*p.phone,
                "phone": &*p.phone,
                "resource_uri": uri("phone", id),
                "source": st.sym(p.source),
                "type": st.sym(p.kind),
                "updated_at": fmt_secs(p.created_at),
                "user": uri("user", p.user),
            }),
            None => Value::Null,
        },
        Res::AllowedUserField => match st.allowed_user_fields.get((id as usize).wrapping_sub(1)) {
            Some(f) => json!({
                "allow_multiple": f.allow_multiple,
                "always_show": false,
                "choices": [],
                "created_at": fmt_secs(f.created_at),
                "description": "",
                "display_name": f.display_name,
                "field_choices": "",
                "field_default": "",
                "field_length": null,
                "field_regex": "",
                "field_type": f.field_type,
                "hidden": false,
                "name": f.name,
                "order_index": 0,
                "required": false,
                "resource_uri": uri("alloweduserfield", f.name),
                "updated_at": fmt_secs(f.created_at),
            }),
            None => Value::Null,
        },
        Res::Order => {
            let mut o = render_order(st, id);
            if let Value::Object(m) = &mut o {
                m.insert(
                    "reverse".into(),
                    json!(format!("/rest/v1/order/{id}/reverse/")),
                );
            }
            o
        }
    }
}

pub fn render_user(st: &Store, id: u32) -> Value {
    let Some(u) = st.user(id) else {
        return Value::Null;
    };
    let mut m = Map::new();
    for (i, f) in USER_STR_FIELDS.iter().enumerate() {
        m.insert((*f).into(), json!(st.sym(u.s[i])));
    }
    let list = |r: &str| json!(format!("/rest/v1/{r}/?user={id}"));
    m.insert("actions".into(), list("action"));
    m.insert("events".into(), list("event"));
    m.insert("eventsignups".into(), list("eventsignup"));
    m.insert("orderrecurrings".into(), list("orderrecurring"));
    m.insert("orders".into(), list("order"));
    m.insert("subscriptionhistory".into(), list("subscriptionhistory"));
    m.insert("subscriptions".into(), list("subscription"));
    m.insert("usergeofields".into(), list("usergeofield"));
    m.insert("usermailings".into(), list("usermailing"));
    m.insert("created_at".into(), json!(fmt_secs(u.created_at)));
    m.insert("updated_at".into(), json!(fmt_secs(u.updated_at)));
    m.insert("email".into(), json!(&*u.email));
    m.insert("fields".into(), render_fields(st, u.fields.iter().copied()));
    m.insert("id".into(), json!(id));
    m.insert("lang".into(), opt_uri("language", u.lang));
    m.insert("location".into(), json!(uri("location", id)));
    m.insert("useroriginal".into(), json!(uri("useroriginal", id)));
    m.insert(
        "phones".into(),
        Value::Array(u.phones.iter().map(|p| json!(uri("phone", p))).collect()),
    );
    m.insert("rand_id".into(), json!(u.rand_id));
    m.insert("resource_uri".into(), json!(uri("user", id)));
    m.insert("token".into(), json!(st.token(id)));
    Value::Object(m)
}

/// The limited view of `GET /rest/v1/userpublic/<akid>/` (fields UNCONFIRMED; chosen
/// to identify the person without contact details).
pub fn render_userpublic(st: &Store, id: u32, akid: &str) -> Value {
    let Some(u) = st.user(id) else {
        return Value::Null;
    };
    let g = |f: &str| user_str_index(f).map(|i| st.sym(u.s[i])).unwrap_or("");
    json!({
        "akid": akid,
        "city": g("city"),
        "country": g("country"),
        "first_name": g("first_name"),
        "id": id,
        "last_name": g("last_name"),
        "resource_uri": uri("userpublic", akid),
        "state": g("state"),
        "token": st.token(id),
        "zip": g("zip"),
    })
}

pub fn action_akid(st: &Store, a: &Action) -> String {
    let clear = match a.mailing {
        Some(m) => format!("{m}.{}", a.user),
        None => format!(".{}", a.user),
    };
    format!("{clear}.{}", akid_hash(&st.akid_secret, &clear))
}

/// An action; `typed` adds the type-specific extras (`order`, `event`, `signup`).
/// `resource_uri` and `page` are typed URIs in both cases.
pub fn render_action(st: &Store, id: u32, typed: bool) -> Value {
    let Some(a) = st.action(id) else {
        return Value::Null;
    };
    let t = st.action_type(a);
    let action_res = format!("{}action", t.slug());
    let page_res = format!("{}page", t.slug());
    let mut m = Map::new();
    m.insert("akid".into(), json!(action_akid(st, a)));
    m.insert("created_at".into(), json!(fmt_micros(a.created_at)));
    m.insert("updated_at".into(), json!(fmt_micros(a.updated_at)));
    m.insert(
        "created_user".into(),
        json!(a.flags & FLAG_CREATED_USER != 0),
    );
    m.insert(
        "subscribed_user".into(),
        json!(a.flags & FLAG_SUBSCRIBED_USER != 0),
    );
    m.insert(
        "is_forwarded".into(),
        json!(a.flags & FLAG_IS_FORWARDED != 0),
    );
    m.insert(
        "fields".into(),
        render_fields(
            st,
            a.fields
                .iter()
                .filter_map(|f| st.actionfield(*f).map(|r| (r.name, r.value))),
        ),
    );
    m.insert("id".into(), json!(id));
    m.insert(
        "ip_address".into(),
        a.ip_address
            .render(st)
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    m.insert("link".into(), Value::Null);
    m.insert("mailing".into(), opt_uri("mailing", a.mailing));
    m.insert("opq_id".into(), json!(""));
    m.insert("page".into(), json!(uri(&page_res, a.page)));
    m.insert("referring_mailing".into(), Value::Null);
    m.insert("referring_user".into(), opt_uri("user", a.referring_user));
    m.insert("resource_uri".into(), json!(uri(&action_res, id)));
    m.insert("source".into(), json!(st.sym(a.source)));
    m.insert("status".into(), json!(st.sym(a.status)));
    m.insert("taf_emails_sent".into(), json!(a.taf_emails_sent));
    m.insert("type".into(), json!(t.name()));
    m.insert("user".into(), json!(uri("user", a.user)));
    if typed {
        match t {
            PageType::Donation => {
                m.insert("order".into(), render_order(st, id));
            }
            PageType::EventCreate => {
                m.insert("event".into(), json!(uri("event", id)));
            }
            PageType::EventSignup => {
                m.insert("signup".into(), json!(uri("eventsignup", id)));
            }
            _ => {}
        }
    }
    Value::Object(m)
}

/// The order of a donation action, embedded as in a donationpush response. Order ids
/// equal their donation action's id.
pub fn render_order(st: &Store, id: u32) -> Value {
    let Some(a) = st.action(id) else {
        return Value::Null;
    };
    let total = money(a.amount_cents);
    json!({
        "account": "Default Import Stub",
        "action": uri("donationaction", id),
        "card_num_last_four": "1111",
        "created_at": fmt_micros(a.created_at),
        "currency": "USD",
        "id": id,
        "import_id": "",
        "orderdetails": [],
        "orderrecurrings": [],
        "payment_method": "cc",
        "resource_uri": uri("order", id),
        "shipping_address": null,
        "status": "completed",
        "total": total,
        "total_converted": total,
        "transactions": [uri("transaction", id)],
        "updated_at": fmt_micros(a.updated_at),
        "user": uri("user", a.user),
        "user_detail": uri("orderuserdetail", id),
    })
}

/// A page; `typed` adds the type-specific keys of the typed resource.
pub fn render_page(st: &Store, id: u32, typed: bool) -> Value {
    let Some(p) = st.page(id) else {
        return Value::Null;
    };
    let t = p.ptype;
    let page_uri = uri(&format!("{}page", t.slug()), id);
    let event = matches!(t, PageType::EventCreate | PageType::EventSignup);
    let mut m = Map::new();
    m.insert(
        "actions".into(),
        json!(format!("/rest/v1/{}action/?page={id}", t.slug())),
    );
    m.insert(
        "allow_multiple_responses".into(),
        json!(p.allow_multiple_responses),
    );
    if !event && p.cms_form {
        m.insert(
            "cms_form".into(),
            json!(uri(&format!("{}form", t.slug()), 1)),
        );
    }
    m.insert("created_at".into(), json!(fmt_secs(p.created_at)));
    m.insert("updated_at".into(), json!(fmt_secs(p.updated_at)));
    m.insert("fields".into(), render_fields(st, p.fields.iter().copied()));
    let followup = if event {
        Value::Null
    } else {
        json!({
            "email_body": "<p>Dear {{user.first_name}},</p>\r\n<p>Thank you!</p>",
            "email_custom_from": "",
            "email_from_line": "/rest/v1/fromline/1/",
            "email_subject": format!("Thanks: {}", p.title),
            "email_wrapper": "/rest/v1/emailwrapper/1/",
            "id": id,
            "notifications": [],
            "page": page_uri,
            "resource_uri": uri("pagefollowup", id),
            "send_email": true,
            "send_notifications": false,
            "send_pushes": false,
            "send_taf": false,
            "taf_body": "",
            "taf_subject": "",
            "url": format!("/cms/thanks/{}/", p.name),
        })
    };
    m.insert("followup".into(), followup);
    m.insert("goal".into(), json!(p.goal));
    m.insert("goal_type".into(), json!(st.sym(p.goal_type)));
    m.insert("hidden".into(), json!(p.hidden));
    m.insert("hosted_with".into(), json!(uri("hostingplatform", 1)));
    m.insert("id".into(), json!(id));
    m.insert("language".into(), opt_uri("language", p.lang));
    m.insert("list".into(), json!(uri("list", p.list)));
    m.insert("multilingual_campaign".into(), Value::Null);
    m.insert("name".into(), json!(&*p.name));
    m.insert("recognize".into(), json!(st.sym(p.recognize)));
    m.insert(
        "required_fields".into(),
        Value::Array(
            p.required_fields
                .iter()
                .filter_map(|f| {
                    form_field_name(*f)
                        .map(|n| json!({"id": f, "name": n, "resource_uri": uri("formfield", f)}))
                })
                .collect(),
        ),
    );
    m.insert("resource_uri".into(), json!(page_uri));
    m.insert("status".into(), json!(st.sym(p.status)));
    m.insert(
        "tags".into(),
        Value::Array(
            p.tags
                .iter()
                .filter_map(|t| {
                    st.tags
                        .get((*t as usize).wrapping_sub(1))
                        .map(|tag| json!({"name": &*tag.name, "resource_uri": uri("tag", t)}))
                })
                .collect(),
        ),
    );
    m.insert("title".into(), json!(&*p.title));
    m.insert("type".into(), json!(t.name()));
    m.insert("url".into(), json!(&*p.url));
    if typed {
        match t {
            PageType::Petition => {
                for (k, v) in [
                    ("delivery_template", json!("")),
                    ("immediate_email_subject", json!("")),
                    ("one_click", json!(false)),
                    ("send_immediate_email", json!(false)),
                    ("send_immediate_email_override_limit", json!(false)),
                    ("send_immediate_fax", json!(false)),
                ] {
                    m.insert(k.into(), v);
                }
            }
            PageType::EventCreate | PageType::EventSignup => {
                m.insert("campaign".into(), json!(uri("campaign", 1)));
                if t == PageType::EventCreate {
                    m.insert("campaign_title".into(), json!(""));
                    m.insert("eventcreateform".into(), Value::Null);
                } else {
                    m.insert("eventsignupform".into(), Value::Null);
                }
                m.insert("never_spam_check".into(), json!(false));
                m.insert("notes".into(), json!(""));
                m.insert("real_actions".into(), json!(true));
            }
            _ => {}
        }
    }
    Value::Object(m)
}
