//! Deterministic demo data from a seed.
//!
//! - Users 1..=N with realistic names/addresses; emails `first.last<id>@example.org`.
//! - User 1 is the demo user "Rosa Delgado" (Oakland, CA), user 2 "Marcus Webb":
//!   with user 3, they have thousands of actions (2,400 / 3,500 / 2,000) so paging is
//!   exercised; every other user has 0-40 actions.
//! - 42 pages of all types, with tags; actions carry custom fields (some multi-valued:
//!   `issues` on surveys, `interests` on signups, `color` on some user fields).
//! - Action ids follow `created_at` order across users, as on a real instance.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::store::*;

/// Action counts of the heavy users (user id, count).
pub const HEAVY_USERS: [(u32, usize); 3] = [(1, 2_400), (2, 3_500), (3, 2_000)];

const FIRST: [&str; 48] = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Betty",
    "Mark",
    "Sandra",
    "Andre",
    "Ashley",
    "Kevin",
    "Kimberly",
    "Brian",
    "Emily",
    "George",
    "Donna",
    "Wei",
    "Michelle",
    "Aisha",
    "Carol",
    "Jamal",
    "Amanda",
    "Luis",
    "Melissa",
    "Priya",
    "Deborah",
    "Omar",
    "Stephanie",
];

const LAST: [&str; 48] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
];

/// (city, state, zip)
const PLACES: [(&str, &str, &str); 30] = [
    ("Oakland", "CA", "94612"),
    ("Philadelphia", "PA", "19130"),
    ("Chicago", "IL", "60614"),
    ("Madison", "WI", "53703"),
    ("Austin", "TX", "78701"),
    ("Denver", "CO", "80203"),
    ("Portland", "OR", "97214"),
    ("Seattle", "WA", "98122"),
    ("Atlanta", "GA", "30307"),
    ("Boston", "MA", "02130"),
    ("Brooklyn", "NY", "11215"),
    ("Minneapolis", "MN", "55408"),
    ("Detroit", "MI", "48207"),
    ("Phoenix", "AZ", "85004"),
    ("Raleigh", "NC", "27601"),
    ("Columbus", "OH", "43215"),
    ("Nashville", "TN", "37203"),
    ("Milwaukee", "WI", "53202"),
    ("Tucson", "AZ", "85701"),
    ("Albuquerque", "NM", "87102"),
    ("Richmond", "VA", "23220"),
    ("Pittsburgh", "PA", "15213"),
    ("Baltimore", "MD", "21218"),
    ("Sacramento", "CA", "95814"),
    ("Kansas City", "MO", "64111"),
    ("New Orleans", "LA", "70116"),
    ("Salt Lake City", "UT", "84111"),
    ("Burlington", "VT", "05401"),
    ("Des Moines", "IA", "50309"),
    ("Anchorage", "AK", "99501"),
];

const STREETS: [&str; 16] = [
    "Oak St",
    "Maple Ave",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Blvd",
    "Lake Dr",
    "Hillside Rd",
    "Park Ave",
    "Main St",
    "Grand Ave",
    "Sunset Blvd",
    "River Rd",
    "Broadway",
    "Highland Ave",
    "Willow Way",
];

const TAGS: [&str; 14] = [
    "Climate",
    "Housing",
    "Healthcare",
    "Voting rights",
    "Education",
    "Labor",
    "Immigration",
    "Economic justice",
    "Racial justice",
    "Democracy",
    "Water",
    "Public transit",
    "Volunteer",
    "Fundraising",
];

/// (type, short name, title)
const PAGES: [(PageType, &str, &str); 42] = [
    (
        PageType::Petition,
        "save-the-bees",
        "Save the Bees: Ban Neonicotinoids",
    ),
    (
        PageType::Petition,
        "clean-water-now",
        "Clean Water for Every Community",
    ),
    (
        PageType::Petition,
        "fair-rent",
        "Tell Congress: Cap Rent Increases",
    ),
    (
        PageType::Petition,
        "protect-the-vote",
        "Protect Our Freedom to Vote",
    ),
    (
        PageType::Petition,
        "medicare-for-all",
        "Healthcare Is a Human Right",
    ),
    (
        PageType::Petition,
        "stop-pipeline",
        "Stop the Line 5 Pipeline",
    ),
    (
        PageType::Petition,
        "free-transit",
        "Fare-Free Buses in Our Cities",
    ),
    (PageType::Petition, "student-debt", "Cancel Student Debt"),
    (PageType::Petition, "living-wage", "Raise the Wage to $20"),
    (
        PageType::Petition,
        "public-broadband",
        "Broadband Is a Public Good",
    ),
    (PageType::Petition, "end-cash-bail", "End Cash Bail"),
    (PageType::Petition, "usda", "Demand a Sustainable USDA"),
    (PageType::Signup, "join-us", "Join the Movement"),
    (PageType::Signup, "volunteer", "Volunteer With Us"),
    (PageType::Signup, "newsletter", "Get Our Weekly Newsletter"),
    (PageType::Signup, "text-alerts", "Sign Up for Text Alerts"),
    (PageType::Signup, "climate-team", "Join a Climate Team"),
    (PageType::Donation, "support", "Support Our Cause"),
    (PageType::Donation, "year-end", "Year-End Fundraiser"),
    (
        PageType::Donation,
        "emergency-fund",
        "Emergency Response Fund",
    ),
    (
        PageType::Donation,
        "monthly-giving",
        "Become a Monthly Donor",
    ),
    (PageType::Donation, "match-drive", "Double Your Impact"),
    (
        PageType::EventSignup,
        "town-hall-rsvp",
        "RSVP: Town Hall on Housing",
    ),
    (
        PageType::EventSignup,
        "climate-strike-rsvp",
        "RSVP: Climate Strike",
    ),
    (
        PageType::EventSignup,
        "phonebank-rsvp",
        "RSVP: Weekly Phonebank",
    ),
    (
        PageType::EventSignup,
        "canvass-rsvp",
        "RSVP: Neighborhood Canvass",
    ),
    (PageType::EventCreate, "host-town-hall", "Host a Town Hall"),
    (
        PageType::EventCreate,
        "host-climate-strike",
        "Host a Climate Strike",
    ),
    (
        PageType::EventCreate,
        "host-house-party",
        "Host a House Party",
    ),
    (PageType::Unsubscribe, "unsubscribe", "Unsubscribe"),
    (
        PageType::Survey,
        "priorities-2025",
        "What Should We Fight For Next?",
    ),
    (PageType::Survey, "member-survey", "Annual Member Survey"),
    (PageType::Survey, "event-feedback", "How Was the Event?"),
    (PageType::Survey, "dating", "Dating Game"),
    (
        PageType::Call,
        "call-your-senator",
        "Call Your Senator Today",
    ),
    (PageType::Call, "call-the-governor", "Call the Governor"),
    (PageType::Call, "ohiomilk", "Mothers Have a Right to Know"),
    (PageType::Letter, "letter-to-epa", "Write to the EPA"),
    (
        PageType::Letter,
        "letter-to-council",
        "Write to Your City Council",
    ),
    (
        PageType::Letter,
        "letter-to-editor-guide",
        "Letter to Your Representative",
    ),
    (
        PageType::Lte,
        "lte-climate",
        "Write a Letter to the Editor on Climate",
    ),
    (
        PageType::Import,
        "import-2024-rally",
        "Import: 2024 Rally Sign-ins",
    ),
];

const COMMENTS: [&str; 8] = [
    "This matters to my family.",
    "Please act now.",
    "I live downstream and our water is not safe.",
    "My kids deserve better.",
    "Thank you for organizing this!",
    "We cannot wait any longer.",
    "As a nurse, I see this every day.",
    "Count me in.",
];
const ISSUES: [&str; 8] = [
    "climate",
    "housing",
    "healthcare",
    "voting",
    "education",
    "labor",
    "immigration",
    "transit",
];
const EMPLOYERS: [&str; 8] = [
    "Self-employed",
    "Retired",
    "City of Oakland",
    "Kaiser Permanente",
    "Acme Corp",
    "Public Schools",
    "Not employed",
    "University Hospital",
];
const OCCUPATIONS: [&str; 8] = [
    "Teacher",
    "Nurse",
    "Engineer",
    "Retired",
    "Student",
    "Carpenter",
    "Writer",
    "Accountant",
];
const TARGETS: [&str; 6] = [
    "Sen. Baldwin",
    "Sen. Padilla",
    "Sen. Casey",
    "Gov. Evers",
    "Gov. Newsom",
    "Rep. Lee",
];
const SOURCES: [&str; 6] = [
    "website",
    "email",
    "facebook",
    "restful_api",
    "twitter",
    "import",
];

/// 2015-01-01T00:00:00 and 2025-12-31T00:00:00 in seconds.
const T_START: i64 = 1_420_070_400;
const T_END: i64 = 1_767_139_200;

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

/// Builds the demo store.
pub fn generate(seed: u64, users: usize, akid_secret: String) -> Store {
    let mut st = Store::new(akid_secret);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let empty = st.strings.intern("");

    for name in TAGS {
        st.tags.push(Tag { name: name.into() });
    }

    // Pages.
    let active = st.strings.intern("active");
    let actions_s = st.strings.intern("actions");
    let once = st.strings.intern("once");
    let always = st.strings.intern("always");
    for (i, (ptype, name, title)) in PAGES.iter().enumerate() {
        let created = T_START - 86_400 * 400 + (i as i64) * 86_400 * 60 + rng.gen_range(0..86_400);
        let ntags = rng.gen_range(0..=3);
        let mut tags: Vec<u32> = (0..ntags)
            .map(|_| rng.gen_range(1..=TAGS.len() as u32))
            .collect();
        tags.sort_unstable();
        tags.dedup();
        let multiple = matches!(
            ptype,
            PageType::Donation | PageType::Survey | PageType::EventSignup | PageType::Unsubscribe
        );
        st.push_page(Page {
            name: (*name).into(),
            title: (*title).into(),
            ptype: *ptype,
            hidden: i == 41,
            status: active,
            created_at: created,
            updated_at: created + rng.gen_range(0..86_400 * 30),
            tags,
            goal: if i % 3 == 0 {
                Some(100 * (i as u32 + 1))
            } else {
                None
            },
            goal_type: actions_s,
            recognize: if multiple { always } else { once },
            allow_multiple_responses: multiple,
            lang: Some(100),
            list: 1,
            url: "".into(),
            fields: Vec::new(),
            // One survey without a CMS form, as seen on a real instance.
            cms_form: *name != "dating",
        });
    }
    let npages = st.pages.len() as u32;

    // Custom user field declarations.
    for (name, display, ty, multi) in [
        ("age", "Age", "integer", false),
        ("color", "Favourite colour", "string", true),
        ("food", "Favourite food", "string", false),
        ("volunteer_skills", "Volunteer skills", "string", true),
        ("employer", "Employer", "string", false),
    ] {
        st.allowed_user_fields.push(AllowedUserField {
            name,
            display_name: display,
            field_type: ty,
            allow_multiple: multi,
            created_at: T_START + 86_400,
        });
    }

    // Users.
    let statuses = [
        "subscribed",
        "subscribed",
        "subscribed",
        "subscribed",
        "subscribed",
        "subscribed",
        "subscribed",
        "unsubscribed",
        "bounced",
        "never",
    ];
    let us_sym = st.strings.intern("United States");
    let home = st.strings.intern("home");
    let mobile = st.strings.intern("mobile");
    let user_src = st.strings.intern("user");
    for id in 1..=users as u32 {
        let (first, last, place) = match id {
            1 => ("Rosa", "Delgado", PLACES[0]),
            2 => ("Marcus", "Webb", PLACES[2]),
            _ => (
                *pick(&mut rng, &FIRST),
                *pick(&mut rng, &LAST),
                *pick(&mut rng, &PLACES),
            ),
        };
        let email = format!(
            "{}.{}{}@example.org",
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
            id
        );
        let address1 = format!("{} {}", rng.gen_range(10..9_999), pick(&mut rng, &STREETS));
        let created = rng.gen_range(T_START..T_START + 86_400 * 365 * 6);
        let mut s = [empty; 16];
        let mut set = |st: &mut Store, f: &str, v: &str| {
            if let Some(i) = user_str_index(f) {
                s[i] = st.strings.intern(v);
            }
        };
        set(&mut st, "address1", &address1);
        set(&mut st, "city", place.0);
        set(&mut st, "state", place.1);
        set(&mut st, "region", place.1);
        set(&mut st, "zip", place.2);
        set(&mut st, "postal", place.2);
        set(&mut st, "first_name", first);
        set(&mut st, "last_name", last);
        let status = if id <= 3 {
            "subscribed"
        } else {
            *pick(&mut rng, &statuses)
        };
        set(&mut st, "subscription_status", status);
        let src = *pick(&mut rng, &SOURCES);
        set(&mut st, "source", src);
        if id == 2 {
            set(&mut st, "address2", "Apt 4B");
        }
        s[user_str_index("country").unwrap_or(3)] = us_sym;

        let mut fields = Vec::new();
        let mut add = |st: &mut Store, n: &str, v: &str| {
            let n = st.strings.intern(n);
            let v = st.strings.intern(v);
            fields.push((n, v));
        };
        if id == 1 {
            add(&mut st, "age", "34");
            add(&mut st, "color", "green");
            add(&mut st, "color", "purple");
            add(&mut st, "food", "tamales");
            add(&mut st, "volunteer_skills", "canvassing");
            add(&mut st, "volunteer_skills", "translation");
        } else {
            if rng.gen_bool(0.3) {
                let age = rng.gen_range(18..90).to_string();
                add(&mut st, "age", &age);
            }
            if rng.gen_bool(0.1) {
                add(&mut st, "color", "blue");
                add(&mut st, "color", "yellow");
            }
            if rng.gen_bool(0.1) {
                let e = *pick(&mut rng, &EMPLOYERS);
                add(&mut st, "employer", e);
            }
        }
        let lang = if id % 17 == 0 { Some(101) } else { Some(100) };
        let uid = st.push_user(User {
            email: email.into(),
            s,
            created_at: created,
            updated_at: created + rng.gen_range(0..86_400 * 400),
            rand_id: rng.gen_range(1..1_000_000_000),
            lang,
            fields,
            phones: Vec::new(),
        });
        if id == 1 || id % 4 == 1 {
            let n = if id == 1 { 2 } else { 1 };
            for k in 0..n {
                let phone = format!("{}555{:04}", 510 + k * 5, (id * 7 + k) % 10_000);
                st.phones.push(Phone {
                    user: uid,
                    phone: phone.into(),
                    kind: if k == 0 { mobile } else { home },
                    source: user_src,
                    created_at: created + 3600,
                });
                let pid = st.phones.len() as u32;
                if let Some(u) = st.users.last_mut() {
                    u.phones.push(pid);
                }
            }
        }
    }

    // Actions: draw (time, user, page) for every action, then number them in time order.
    struct Proto {
        t: i64,
        user: u32,
        page: u32,
    }
    let mut protos: Vec<Proto> = Vec::with_capacity(users * 21);
    for uid in 1..=users as u32 {
        let n = HEAVY_USERS
            .iter()
            .find(|(id, _)| *id == uid)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| rng.gen_range(0..=40));
        let from = st.users[uid as usize - 1].created_at * 1_000_000;
        let to = T_END * 1_000_000;
        for _ in 0..n {
            protos.push(Proto {
                t: rng.gen_range(from..to),
                user: uid,
                page: rng.gen_range(1..=npages),
            });
        }
    }
    protos.sort_unstable_by_key(|p| (p.t, p.user, p.page));

    let complete = st.strings.intern("complete");
    let src_syms: Vec<Sym> = SOURCES.iter().map(|s| st.strings.intern(s)).collect();
    let website = st.strings.intern("website");
    let mut frng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_f1e1d5);
    for p in protos {
        let ptype = st.pages[p.page as usize - 1].ptype;
        let ip = if frng.gen_bool(0.7) {
            // Drawn as i32, as before the addresses were packed, so the demo data
            // (which other tests rely on) stays the same for a given seed.
            let mut octet = |lo: i32, hi: i32| frng.gen_range(lo..hi).clamp(0, 255) as u8;
            Ip::V4([octet(11, 200), octet(0, 255), octet(0, 255), octet(1, 255)])
        } else {
            Ip::None
        };
        let source = if frng.gen_bool(0.5) {
            website
        } else {
            src_syms[frng.gen_range(0..src_syms.len())]
        };
        let id = st.push_action(Action {
            user: p.user,
            page: p.page,
            created_at: p.t,
            updated_at: p.t + frng.gen_range(1_000..90_000),
            status: complete,
            source,
            ip_address: ip,
            referring_user: if frng.gen_bool(0.15) {
                Some(frng.gen_range(1..=users as u32))
            } else {
                None
            },
            mailing: if frng.gen_bool(0.3) {
                Some(frng.gen_range(1..500))
            } else {
                None
            },
            taf_emails_sent: if frng.gen_bool(0.2) {
                Some(frng.gen_range(1..6))
            } else {
                None
            },
            flags: if frng.gen_bool(0.05) {
                FLAG_IS_FORWARDED
            } else {
                0
            },
            amount_cents: if ptype == PageType::Donation {
                *pick(
                    &mut frng,
                    &[500, 1_000, 2_500, 3_400, 5_000, 10_000, 25_000],
                )
            } else {
                0
            },
            fields: Vec::new(),
            deleted: false,
        });
        let r = &mut frng;
        match ptype {
            PageType::Petition => {
                if r.gen_bool(0.5) {
                    let c = *pick(r, &COMMENTS);
                    st.push_actionfield(id, "comment", c);
                }
                if r.gen_bool(0.2) {
                    st.push_actionfield(
                        id,
                        "referrer_code",
                        if r.gen_bool(0.5) {
                            "fb-ad"
                        } else {
                            "partner-x"
                        },
                    );
                }
            }
            PageType::Signup => {
                if r.gen_bool(0.6) {
                    let a = r.gen_range(0..ISSUES.len());
                    let b = (a + r.gen_range(1..4)) % ISSUES.len();
                    st.push_actionfield(id, "interests", ISSUES[a]);
                    st.push_actionfield(id, "interests", ISSUES[b]);
                }
            }
            PageType::Donation => {
                let e = *pick(r, &EMPLOYERS);
                let o = *pick(r, &OCCUPATIONS);
                st.push_actionfield(id, "employer", e);
                st.push_actionfield(id, "occupation", o);
            }
            PageType::EventSignup => {
                st.push_actionfield(
                    id,
                    "bringing_guest",
                    if r.gen_bool(0.3) { "yes" } else { "no" },
                );
                if r.gen_bool(0.2) {
                    st.push_actionfield(
                        id,
                        "dietary",
                        if r.gen_bool(0.5) {
                            "vegetarian"
                        } else {
                            "gluten-free"
                        },
                    );
                }
            }
            PageType::EventCreate => {
                st.push_actionfield(id, "is_virtual", if r.gen_bool(0.4) { "1" } else { "0" });
            }
            PageType::Unsubscribe => {
                st.push_actionfield(
                    id,
                    "reason",
                    if r.gen_bool(0.5) {
                        "too_many_emails"
                    } else {
                        "not_interested"
                    },
                );
            }
            PageType::Survey => {
                let a = r.gen_range(0..ISSUES.len());
                st.push_actionfield(id, "q_priority", ISSUES[a]);
                let n = r.gen_range(2..=3);
                for k in 0..n {
                    st.push_actionfield(id, "issues", ISSUES[(a + 1 + k * 2) % ISSUES.len()]);
                }
            }
            PageType::Call => {
                let t = *pick(r, &TARGETS);
                st.push_actionfield(id, "target", t);
                let o = *pick(r, &["reached", "voicemail", "no_answer"]);
                st.push_actionfield(id, "call_outcome", o);
            }
            PageType::Letter | PageType::Lte => {
                let c = *pick(r, &COMMENTS);
                st.push_actionfield(id, "letter_subject", c);
            }
            PageType::Import => {
                st.push_actionfield(id, "import_batch", "2024-rally");
            }
            PageType::UserUpdate => {}
        }
    }
    st
}
