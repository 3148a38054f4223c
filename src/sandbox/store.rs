//! The in-memory store: compact rows (ids, interned strings, indexes), never JSON values.
//!
//! Ids start at 1 and are `index + 1` in each table. Deleted rows stay in place
//! (their slot is marked) so ids are never reused.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

/// An interned string.
pub type Sym = u32;

/// A fast non-cryptographic hasher (FxHash) for the interner: keys are our own strings.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        for b in chunks.remainder() {
            self.add(*b as u64);
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Interned strings: each distinct value is stored once.
#[derive(Default)]
pub struct Interner {
    strings: Vec<Box<str>>,
    map: FxMap<Box<str>, Sym>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.strings.len() as Sym;
        self.strings.push(s.into());
        self.map.insert(s.into(), id);
        id
    }

    pub fn get(&self, sym: Sym) -> &str {
        self.strings.get(sym as usize).map(|s| &**s).unwrap_or("")
    }
}

/// Page (and action) types the sandbox knows. The name is the `type` string
/// ActionKit renders; the slug prefixes the typed resources (`petitionpage`,
/// `petitionaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageType {
    Petition,
    Signup,
    Donation,
    EventSignup,
    EventCreate,
    Unsubscribe,
    Survey,
    Call,
    Letter,
    Lte,
    Import,
    UserUpdate,
}

impl PageType {
    pub const ALL: [PageType; 12] = [
        PageType::Petition,
        PageType::Signup,
        PageType::Donation,
        PageType::EventSignup,
        PageType::EventCreate,
        PageType::Unsubscribe,
        PageType::Survey,
        PageType::Call,
        PageType::Letter,
        PageType::Lte,
        PageType::Import,
        PageType::UserUpdate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PageType::Petition => "Petition",
            PageType::Signup => "Signup",
            PageType::Donation => "Donation",
            PageType::EventSignup => "EventSignup",
            PageType::EventCreate => "EventCreate",
            PageType::Unsubscribe => "Unsubscribe",
            PageType::Survey => "Survey",
            PageType::Call => "Call",
            PageType::Letter => "Letter",
            PageType::Lte => "LTE",
            PageType::Import => "Import",
            PageType::UserUpdate => "UserUpdate",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            PageType::Petition => "petition",
            PageType::Signup => "signup",
            PageType::Donation => "donation",
            PageType::EventSignup => "eventsignup",
            PageType::EventCreate => "eventcreate",
            PageType::Unsubscribe => "unsubscribe",
            PageType::Survey => "survey",
            PageType::Call => "call",
            PageType::Letter => "letter",
            PageType::Lte => "lte",
            PageType::Import => "import",
            PageType::UserUpdate => "userupdate",
        }
    }

    pub fn from_slug(s: &str) -> Option<PageType> {
        PageType::ALL.into_iter().find(|t| t.slug() == s)
    }

    pub fn from_name_ci(s: &str) -> Option<PageType> {
        PageType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
    }
}

/// String columns of a user, in this order in [`User::s`]; all default to `""`.
pub const USER_STR_FIELDS: [&str; 16] = [
    "address1",
    "address2",
    "city",
    "country",
    "first_name",
    "last_name",
    "middle_name",
    "plus4",
    "postal",
    "prefix",
    "region",
    "source",
    "state",
    "subscription_status",
    "suffix",
    "zip",
];

pub fn user_str_index(name: &str) -> Option<usize> {
    USER_STR_FIELDS.iter().position(|f| *f == name)
}

pub struct User {
    pub email: Box<str>,
    pub s: [Sym; 16],
    pub created_at: i64,
    pub updated_at: i64,
    pub rand_id: u32,
    pub lang: Option<u32>,
    /// Custom user fields, one entry per row (a name may repeat: multi-valued).
    pub fields: Vec<(Sym, Sym)>,
    pub phones: Vec<u32>,
}

impl User {
    /// A user created through the API (`POST /rest/v1/user/`, or a new signer of
    /// `POST /action/`) at `now`: language 100 (English), `rand_id` 0, no custom fields
    /// or phones yet.
    pub fn created(email: Box<str>, s: [Sym; 16], now: i64) -> User {
        User {
            email,
            s,
            created_at: now,
            updated_at: now,
            rand_id: 0,
            lang: Some(100),
            fields: Vec::new(),
            phones: Vec::new(),
        }
    }
}

/// An action's IP address: IPv4 packed (the seed's), or any other text interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ip {
    None,
    V4([u8; 4]),
    Text(Sym),
}

impl Ip {
    pub fn parse(st: &mut Store, s: &str) -> Ip {
        match s.parse::<std::net::Ipv4Addr>() {
            Ok(a) => Ip::V4(a.octets()),
            Err(_) => Ip::Text(st.strings.intern(s)),
        }
    }

    pub fn render(self, st: &Store) -> Option<String> {
        match self {
            Ip::None => None,
            Ip::V4([a, b, c, d]) => Some(format!("{a}.{b}.{c}.{d}")),
            Ip::Text(s) => Some(st.sym(s).to_string()),
        }
    }
}

pub const FLAG_CREATED_USER: u8 = 1;
pub const FLAG_SUBSCRIBED_USER: u8 = 2;
pub const FLAG_IS_FORWARDED: u8 = 4;

pub struct Action {
    pub user: u32,
    pub page: u32,
    /// Microseconds since the Unix epoch (naive UTC).
    pub created_at: i64,
    pub updated_at: i64,
    pub status: Sym,
    pub source: Sym,
    pub ip_address: Ip,
    pub referring_user: Option<u32>,
    pub mailing: Option<u32>,
    pub taf_emails_sent: Option<u32>,
    pub flags: u8,
    /// Donation: the order total in cents. Unused for other types.
    pub amount_cents: u32,
    /// Ids of the action's `actionfield` rows, in row-id order.
    pub fields: Vec<u32>,
    pub deleted: bool,
}

pub struct Page {
    pub name: Box<str>,
    pub title: Box<str>,
    pub ptype: PageType,
    pub hidden: bool,
    pub status: Sym,
    pub created_at: i64,
    pub updated_at: i64,
    pub tags: Vec<u32>,
    pub goal: Option<u32>,
    pub goal_type: Sym,
    pub recognize: Sym,
    pub allow_multiple_responses: bool,
    pub lang: Option<u32>,
    pub list: u32,
    pub url: Box<str>,
    pub fields: Vec<(Sym, Sym)>,
    /// Whether the page has a CMS form (`cms_form` is absent on some real pages).
    pub cms_form: bool,
    /// Required user fields beyond email, as ids in [`FORM_FIELDS`] (rendered as
    /// `required_fields`, checked by action processing).
    pub required_fields: Vec<u32>,
}

/// The form fields a page may require, by id (`/rest/v1/formfield/<id>/`); `zip` is
/// id 2 as in the recorded page list.
pub const FORM_FIELDS: [&str; 12] = [
    "name",
    "zip",
    "first_name",
    "last_name",
    "address1",
    "address2",
    "city",
    "state",
    "postal",
    "country",
    "region",
    "phone",
];

/// The id of a form field by name (see [`FORM_FIELDS`]).
pub fn form_field_id(name: &str) -> Option<u32> {
    FORM_FIELDS
        .iter()
        .position(|f| *f == name)
        .map(|i| i as u32 + 1)
}

/// The name of a form field by id.
pub fn form_field_name(id: u32) -> Option<&'static str> {
    (id as usize)
        .checked_sub(1)
        .and_then(|i| FORM_FIELDS.get(i))
        .copied()
}

pub struct ActionField {
    /// The action id; 0 once the row is deleted.
    pub parent: u32,
    pub name: Sym,
    pub value: Sym,
}

pub struct Tag {
    pub name: Box<str>,
}

pub struct Language {
    pub id: u32,
    pub iso_code: &'static str,
    pub name: &'static str,
}

pub const LANGUAGES: [Language; 4] = [
    Language {
        id: 100,
        iso_code: "en",
        name: "English",
    },
    Language {
        id: 101,
        iso_code: "es",
        name: "Spanish",
    },
    Language {
        id: 102,
        iso_code: "fr",
        name: "French",
    },
    Language {
        id: 103,
        iso_code: "de",
        name: "German",
    },
];

pub struct Phone {
    pub user: u32,
    pub phone: Box<str>,
    pub kind: Sym,
    pub source: Sym,
    pub created_at: i64,
}

/// A custom user field declaration (`alloweduserfield`, keyed by name).
pub struct AllowedUserField {
    pub name: &'static str,
    pub display_name: &'static str,
    pub field_type: &'static str,
    pub allow_multiple: bool,
    pub created_at: i64,
}

pub struct Store {
    pub strings: Interner,
    pub users: Vec<User>,
    pub pages: Vec<Page>,
    pub actions: Vec<Action>,
    pub actionfields: Vec<ActionField>,
    pub tags: Vec<Tag>,
    pub phones: Vec<Phone>,
    pub allowed_user_fields: Vec<AllowedUserField>,
    /// user id - 1 -> action ids (ascending).
    pub user_actions: Vec<Vec<u32>>,
    /// page id - 1 -> action ids (ascending).
    pub page_actions: Vec<Vec<u32>>,
    /// lower-cased email -> user id.
    pub email_index: HashMap<Box<str>, u32>,
    pub page_name_index: HashMap<Box<str>, u32>,
    pub akid_secret: String,
}

impl Store {
    pub fn new(akid_secret: String) -> Store {
        Store {
            strings: Interner::default(),
            users: Vec::new(),
            pages: Vec::new(),
            actions: Vec::new(),
            actionfields: Vec::new(),
            tags: Vec::new(),
            phones: Vec::new(),
            allowed_user_fields: Vec::new(),
            user_actions: Vec::new(),
            page_actions: Vec::new(),
            email_index: HashMap::new(),
            page_name_index: HashMap::new(),
            akid_secret,
        }
    }

    pub fn sym(&self, s: Sym) -> &str {
        self.strings.get(s)
    }

    pub fn user(&self, id: u32) -> Option<&User> {
        id.checked_sub(1).and_then(|i| self.users.get(i as usize))
    }

    pub fn page(&self, id: u32) -> Option<&Page> {
        id.checked_sub(1).and_then(|i| self.pages.get(i as usize))
    }

    pub fn action(&self, id: u32) -> Option<&Action> {
        id.checked_sub(1)
            .and_then(|i| self.actions.get(i as usize))
            .filter(|a| !a.deleted)
    }

    pub fn action_mut(&mut self, id: u32) -> Option<&mut Action> {
        id.checked_sub(1)
            .and_then(|i| self.actions.get_mut(i as usize))
            .filter(|a| !a.deleted)
    }

    pub fn actionfield(&self, id: u32) -> Option<&ActionField> {
        id.checked_sub(1)
            .and_then(|i| self.actionfields.get(i as usize))
            .filter(|f| f.parent != 0)
    }

    pub fn action_type(&self, a: &Action) -> PageType {
        self.page(a.page)
            .map(|p| p.ptype)
            .unwrap_or(PageType::Petition)
    }

    pub fn user_by_email(&self, email: &str) -> Option<u32> {
        self.email_index
            .get(email.to_ascii_lowercase().as_str())
            .copied()
    }

    pub fn page_by_name(&self, name: &str) -> Option<u32> {
        self.page_name_index.get(name).copied()
    }

    /// Adds a user and indexes it; returns its id.
    pub fn push_user(&mut self, user: User) -> u32 {
        self.users.push(user);
        self.user_actions.push(Vec::new());
        let id = self.users.len() as u32;
        if let Some(u) = self.users.last() {
            self.email_index
                .insert(u.email.to_ascii_lowercase().into_boxed_str(), id);
        }
        id
    }

    pub fn push_page(&mut self, page: Page) -> u32 {
        let name = page.name.clone();
        self.pages.push(page);
        self.page_actions.push(Vec::new());
        let id = self.pages.len() as u32;
        self.page_name_index.insert(name, id);
        id
    }

    /// Adds an action (ids grow, so the per-user/page indexes stay sorted).
    pub fn push_action(&mut self, action: Action) -> u32 {
        let (user, page) = (action.user, action.page);
        self.actions.push(action);
        let id = self.actions.len() as u32;
        if let Some(v) = self.user_actions.get_mut((user as usize).wrapping_sub(1)) {
            v.push(id);
        }
        if let Some(v) = self.page_actions.get_mut((page as usize).wrapping_sub(1)) {
            v.push(id);
        }
        id
    }

    /// Adds one `actionfield` row to an action; returns the row id.
    pub fn push_actionfield(&mut self, parent: u32, name: &str, value: &str) -> u32 {
        let name = self.strings.intern(name);
        let value = self.strings.intern(value);
        self.actionfields.push(ActionField {
            parent,
            name,
            value,
        });
        let id = self.actionfields.len() as u32;
        if let Some(a) = self.action_mut(parent) {
            a.fields.push(id);
        }
        id
    }

    pub fn delete_actionfield(&mut self, id: u32) {
        let Some(row) = id
            .checked_sub(1)
            .and_then(|i| self.actionfields.get_mut(i as usize))
        else {
            return;
        };
        let parent = row.parent;
        row.parent = 0;
        if let Some(a) = self.action_mut(parent) {
            a.fields.retain(|f| *f != id);
        }
    }

    pub fn delete_action(&mut self, id: u32) {
        let Some(a) = self.action(id) else { return };
        let (user, page, fields) = (a.user, a.page, a.fields.clone());
        for f in fields {
            self.delete_actionfield(f);
        }
        if let Some(a) = self.action_mut(id) {
            a.deleted = true;
        }
        if let Some(v) = self.user_actions.get_mut((user as usize).wrapping_sub(1)) {
            v.retain(|x| *x != id);
        }
        if let Some(v) = self.page_actions.get_mut((page as usize).wrapping_sub(1)) {
            v.retain(|x| *x != id);
        }
    }

    /// The user's token: an AKID without mailing id, `.<id>.<hash>`.
    pub fn token(&self, user_id: u32) -> String {
        let clear = format!(".{user_id}");
        let hash = akid_hash(&self.akid_secret, &clear);
        format!("{clear}.{hash}")
    }

    /// Checks an AKID (`<mailing>.<user>.<hash>`) and returns `(mailing, user)`.
    pub fn verify_akid(&self, akid: &str) -> Option<(Option<u32>, u32)> {
        let (clear, hash) = akid.rsplit_once('.')?;
        let (mailing, user) = clear.split_once('.')?;
        let user: u32 = user.parse().ok()?;
        let mailing = if mailing.is_empty() {
            None
        } else {
            Some(mailing.parse::<u32>().ok()?)
        };
        if akid_hash(&self.akid_secret, clear) != hash {
            return None;
        }
        self.user(user)?;
        Some((mailing, user))
    }
}

/// `first 6 chars of base64_urlsafe(sha256(SECRET + "." + CLEARTEXT))` (reference §4.1).
pub fn akid_hash(secret: &str, cleartext: &str) -> String {
    use base64::Engine;
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(b".");
    h.update(cleartext.as_bytes());
    let digest = h.finalize();
    let b64 = base64::engine::general_purpose::URL_SAFE.encode(digest);
    b64.chars().take(6).collect()
}

// ---- naive UTC timestamps -------------------------------------------------

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DDTHH:MM:SS` from seconds since the epoch.
pub fn fmt_secs(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Like [`fmt_secs`] from microseconds, with `.ffffff` when not zero (Python `isoformat`).
pub fn fmt_micros(t: i64) -> String {
    let secs = t.div_euclid(1_000_000);
    let us = t.rem_euclid(1_000_000);
    if us == 0 {
        fmt_secs(secs)
    } else {
        format!("{}.{us:06}", fmt_secs(secs))
    }
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.ffffff]]` (or a space for `T`) into microseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some()
        || !(1..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut micros = days_from_civil(y, m, d) * 86_400 * 1_000_000;
    if let Some(time) = time {
        let (hms, frac) = match time.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (time, None),
        };
        let mut tp = hms.split(':');
        let h: i64 = tp.next()?.parse().ok()?;
        let mi: i64 = tp.next()?.parse().ok()?;
        let sec: i64 = match tp.next() {
            Some(x) => x.parse().ok()?,
            None => 0,
        };
        if tp.next().is_some() || h > 23 || mi > 59 || sec > 60 {
            return None;
        }
        micros += (h * 3600 + mi * 60 + sec) * 1_000_000;
        if let Some(frac) = frac {
            if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let padded = format!("{frac:0<6}");
            micros += padded.parse::<i64>().ok()?;
        }
    }
    Some(micros)
}

/// Current wall-clock time in microseconds.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn akid_test_vectors() {
        assert_eq!(akid_hash("emulator-secret", ".3"), "qPLFs8");
        assert_eq!(akid_hash("emulator-secret", "2695.103007"), "zzv_jK");
        assert_eq!(akid_hash("emulator-secret", ".103007"), "HhWYZe");
    }

    #[test]
    fn timestamps_round_trip() {
        let t = parse_time("2016-02-11T16:34:43.628761").unwrap();
        assert_eq!(fmt_micros(t), "2016-02-11T16:34:43.628761");
        let t = parse_time("2009-09-02T18:42:54").unwrap();
        assert_eq!(fmt_micros(t), "2009-09-02T18:42:54");
        assert_eq!(fmt_secs(0), "1970-01-01T00:00:00");
        assert!(parse_time("2016-13-01").is_none());
        assert!(parse_time("99999999999999-01-01").is_none());
        assert!(parse_time("2016-01-01T10:00:00.1234567").is_none());
    }
}
