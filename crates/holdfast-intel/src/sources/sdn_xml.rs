//! OFAC's SDN advanced XML (`SDN_ADVANCED.XML`), for `holdfast intel update --sdn-xml FILE`.
//!
//! OFAC's Sanctions List Service publishes the whole SDN list in the UN "advanced sanctions
//! data model" at
//! `https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN_ADVANCED.XML`
//! (about 120 MB). Its root is `<Sanctions>` in the namespace [`SDN_ADVANCED_NAMESPACE`]; the
//! files published before 2024 under `treasury.gov/ofac/downloads/sanctions/1.0/` used the
//! UN namespace [`LEGACY_SDN_ADVANCED_NAMESPACE`] with the same structure. Both are accepted.
//!
//! The parts this module reads, in the order the schema fixes them:
//!
//! ```text
//! Sanctions
//! ├─ DateOfIssue/{Year,Month,Day}                      publication date
//! ├─ ReferenceValueSets
//! │  ├─ FeatureTypeValues/FeatureType[@ID]             "Digital Currency Address - XBT" (344), …
//! │  └─ SanctionsTypeValues/SanctionsType[@ID]         "Program" (1), "Block" (1705), …
//! ├─ Locations, IDRegDocuments                         (skipped)
//! ├─ DistinctParties/DistinctParty[@FixedRef]          FixedRef = the SDN "uid"
//! │  └─ Profile[@ID]
//! │     ├─ Identity[@Primary]
//! │     │  ├─ Alias[@Primary]/DocumentedName/DocumentedNamePart/NamePartValue[@NamePartGroupID]
//! │     │  └─ NamePartGroups/MasterNamePartGroup/NamePartGroup[@ID]   order of the name parts
//! │     └─ Feature[@FeatureTypeID]/FeatureVersion/VersionDetail      the address text
//! ├─ ProfileRelationships                              (skipped)
//! └─ SanctionsEntries/SanctionsEntry[@ProfileID]
//!    └─ SanctionsMeasure[@SanctionsTypeID]/Comment      program code ("DPRK3", "CYBER2", …)
//! ```
//!
//! The reader streams with `quick_xml` and keeps only what it needs (feature types, the
//! digital currency features with their parties, the program measures), never the document.
//! It does not rely on the section order: features met before `FeatureTypeValues` are kept
//! and resolved at the end, and programs are joined to profiles at the end.
//!
//! Input is bounded: at most [`MAX_ADDRESS_FEATURES`] addresses and [`MAX_TEXT_BYTES`] per
//! text node (enforced while reading, so an oversized node is refused before it is buffered).

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};

use quick_xml::NsReader;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;

/// Namespace of `SDN_ADVANCED.XML` as served by OFAC's Sanctions List Service.
pub const SDN_ADVANCED_NAMESPACE: &str =
    "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/ADVANCED_XML";

/// Namespace of the pre-2024 `sdn_advanced.xml` (UN sanctions data model, same structure).
pub const LEGACY_SDN_ADVANCED_NAMESPACE: &str = "http://www.un.org/sanctions/1.0";

/// Text of the `FeatureType`s that carry addresses; the currency code follows it.
pub const DIGITAL_CURRENCY_PREFIX: &str = "Digital Currency Address - ";

/// Most digital currency addresses a file may hold (the real list has about a thousand).
pub const MAX_ADDRESS_FEATURES: usize = 2_000_000;

/// Longest text node accepted, in bytes (1 MiB).
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Deepest element nesting accepted (the real file nests about ten levels).
const MAX_DEPTH: usize = 64;

/// Bytes a tag may add to a text node before the reader-level guard trips.
const TAG_SLACK: u64 = 64 * 1024;

/// What one `SDN_ADVANCED.XML` says about digital currency addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SdnPublication {
    /// `DateOfIssue` as (year, month, day), when the file has one.
    pub date_of_issue: Option<(u16, u8, u8)>,
    /// One entry per address feature, in document order, exact duplicates removed.
    pub entries: Vec<SdnAddress>,
}

/// One "Digital Currency Address - XXX" feature with the party it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdnAddress {
    /// Exactly as in the XML (original case), trimmed.
    pub address: String,
    /// The `XXX` of "Digital Currency Address - XXX", e.g. `XBT`, `ETH`, `USDT`.
    pub currency: String,
    /// The `FixedRef` of the `DistinctParty`: the SDN entry's uid.
    pub uid: String,
    /// Primary name: the primary alias's name parts joined by spaces, in `NamePartGroups`
    /// order (for individuals OFAC lists the last name first, e.g. `TIAN Yinyin`).
    pub entity: String,
    /// Program codes of the profile's sanctions entries, in document order, deduplicated.
    pub programs: Vec<String>,
}

/// Why an SDN advanced XML file could not be read. Positions are byte offsets in the input.
#[derive(Debug, thiserror::Error)]
pub enum SdnXmlError {
    #[error("the input is empty: expected ofac's sdn advanced xml (SDN_ADVANCED.XML)")]
    Empty,
    #[error(
        "not an ofac sdn advanced xml document: {found}; expected root element <Sanctions> in namespace {ns}",
        ns = SDN_ADVANCED_NAMESPACE
    )]
    NotSdnAdvanced { found: String },
    #[error("malformed xml at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("could not read the sdn advanced xml at byte {position}: {message}")]
    Io { position: u64, message: String },
    #[error(
        "truncated xml: the input ends at byte {position} inside {path} (open elements: {open})"
    )]
    Truncated {
        position: u64,
        path: String,
        open: usize,
    },
    #[error(
        "text node at byte {position} in {path} is longer than {limit} bytes; refusing to load it"
    )]
    TextTooLarge {
        position: u64,
        path: String,
        limit: usize,
    },
    #[error(
        "text or markup starting at byte {position} runs past {limit} bytes without a tag; refusing to load it"
    )]
    RunTooLong { position: u64, limit: u64 },
    #[error("elements nested deeper than {limit} levels at byte {position} ({path})")]
    TooDeep {
        position: u64,
        path: String,
        limit: usize,
    },
    #[error(
        "more than {limit} digital currency address features (limit passed at byte {position}); refusing to load the file"
    )]
    TooManyAddresses { position: u64, limit: usize },
    #[error(
        "more than {limit} feature values appear before <FeatureTypeValues> (limit passed at byte {position}); refusing to buffer them"
    )]
    TooManyPendingFeatures { position: u64, limit: usize },
    #[error("<{element}> at byte {position} lacks its {attribute} attribute")]
    MissingAttribute {
        position: u64,
        element: &'static str,
        attribute: &'static str,
    },
    #[error(
        "<Feature{feature_id}> of DistinctParty {uid} at byte {position} references FeatureTypeID {feature_type_id}, which <FeatureTypeValues> does not declare"
    )]
    UnknownFeatureType {
        position: u64,
        feature_id: String,
        uid: String,
        feature_type_id: String,
    },
    #[error("invalid <DateOfIssue> at byte {position}: {message}")]
    InvalidDate { position: u64, message: String },
    #[error(
        "no <FeatureTypeValues> in <ReferenceValueSets>: cannot tell which features are digital currency addresses"
    )]
    MissingFeatureTypes,
    #[error(
        "DistinctParty {uid} at byte {position} has digital currency addresses but no name in its profile"
    )]
    PartyWithoutName { position: u64, uid: String },
}

/// Reads `SDN_ADVANCED.XML` and returns every "Digital Currency Address - XXX" feature with
/// its party's uid, primary name and programs.
///
/// Streams the input: memory grows with the number of address features and sanctions
/// entries, not with the file. Wrap a file in a `BufReader`.
pub fn parse_sdn_advanced<R: BufRead>(reader: R) -> Result<SdnPublication, SdnXmlError> {
    parse_with_limits(reader, Limits::DEFAULT)
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_addresses: usize,
    max_text: usize,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        max_addresses: MAX_ADDRESS_FEATURES,
        max_text: MAX_TEXT_BYTES,
    };
}

fn parse_with_limits<R: BufRead>(input: R, limits: Limits) -> Result<SdnPublication, SdnXmlError> {
    let run_limit = limits.max_text as u64 + TAG_SLACK;
    let mut xml = NsReader::from_reader(RunGuard::new(input, run_limit));
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut parser = Parser::new(limits);
    let mut root = RootState::Before;

    loop {
        buf.clear();
        let position = xml.buffer_position();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(err) => {
                if let Some(start) = xml.get_ref().tripped {
                    return Err(SdnXmlError::RunTooLong {
                        position: start,
                        limit: run_limit,
                    });
                }
                let position = xml.error_position();
                return Err(match err {
                    quick_xml::Error::Io(io) => SdnXmlError::Io {
                        position,
                        message: io.to_string(),
                    },
                    quick_xml::Error::Syntax(syntax) => SdnXmlError::Malformed {
                        position,
                        message: format!("{syntax} (the file looks truncated)"),
                    },
                    other => malformed(position, other),
                });
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                match root {
                    RootState::Before => {
                        check_root(&xml, e)?;
                        root = RootState::Inside;
                    }
                    RootState::Inside => {}
                    RootState::After => {
                        return Err(SdnXmlError::Malformed {
                            position,
                            message: format!(
                                "second root element <{}> after </Sanctions>",
                                String::from_utf8_lossy(e.local_name().as_ref())
                            ),
                        });
                    }
                }
                parser.start(e, position)?;
                if empty {
                    parser.end(position)?;
                }
            }
            Event::End(_) => {
                parser.end(position)?;
            }
            Event::Text(ref t) => {
                if t.len() > limits.max_text {
                    return Err(parser.text_too_large(position));
                }
                let text = t.decode().map_err(|e| malformed(position, e))?;
                parser.text(&text, root, position)?;
            }
            Event::CData(ref t) => {
                if t.len() > limits.max_text {
                    return Err(parser.text_too_large(position));
                }
                let text = t.decode().map_err(|e| malformed(position, e))?;
                parser.text(&text, root, position)?;
            }
            Event::GeneralRef(ref r) => {
                let text = resolve_reference(r, position)?;
                parser.text(&text, root, position)?;
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        if root == RootState::Inside && parser.stack.is_empty() {
            root = RootState::After;
        }
    }

    match root {
        RootState::Before => Err(SdnXmlError::Empty),
        RootState::Inside => Err(SdnXmlError::Truncated {
            position: xml.buffer_position(),
            path: parser.path.clone(),
            open: parser.stack.len(),
        }),
        RootState::After => parser.finish(xml.buffer_position()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootState {
    Before,
    Inside,
    After,
}

fn check_root<R>(xml: &NsReader<R>, e: &BytesStart<'_>) -> Result<(), SdnXmlError> {
    let (ns, local) = xml.resolve_element(e.name());
    let name = String::from_utf8_lossy(local.as_ref()).into_owned();
    let (namespace_ok, namespace) = match ns {
        ResolveResult::Unbound => (true, "without a namespace".to_owned()),
        ResolveResult::Bound(ns) => {
            let uri = String::from_utf8_lossy(ns.as_ref()).into_owned();
            let ok = uri == SDN_ADVANCED_NAMESPACE || uri == LEGACY_SDN_ADVANCED_NAMESPACE;
            (ok, format!("in namespace {uri}"))
        }
        ResolveResult::Unknown(prefix) => (
            false,
            format!(
                "with undeclared prefix {}",
                String::from_utf8_lossy(&prefix)
            ),
        ),
    };
    if name == "Sanctions" && namespace_ok {
        Ok(())
    } else {
        Err(SdnXmlError::NotSdnAdvanced {
            found: format!("root element was <{name}> {namespace}"),
        })
    }
}

fn resolve_reference(r: &BytesRef<'_>, position: u64) -> Result<String, SdnXmlError> {
    if r.is_char_ref() {
        return match r.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(malformed(position, e)),
        };
    }
    let name = r.decode().map_err(|e| malformed(position, e))?;
    match quick_xml::escape::resolve_predefined_entity(&name) {
        Some(text) => Ok(text.to_owned()),
        None => Err(SdnXmlError::Malformed {
            position,
            message: format!("unknown entity &{name};"),
        }),
    }
}

fn malformed(position: u64, err: impl std::fmt::Display) -> SdnXmlError {
    SdnXmlError::Malformed {
        position,
        message: err.to_string(),
    }
}

/// Passes a `BufRead` through, refusing any stretch longer than `limit` bytes without a `<`.
///
/// quick-xml buffers a whole text node (or tag) before returning it; this stops a huge one
/// after at most one underlying buffer past the limit instead of after the whole node.
#[derive(Debug)]
struct RunGuard<R> {
    inner: R,
    offset: u64,
    run_start: u64,
    limit: u64,
    tripped: Option<u64>,
}

impl<R> RunGuard<R> {
    fn new(inner: R, limit: u64) -> Self {
        RunGuard {
            inner,
            offset: 0,
            run_start: 0,
            limit,
            tripped: None,
        }
    }
}

impl<R: BufRead> Read for RunGuard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for RunGuard<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if let Some(start) = self.tripped {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "more than {} bytes without a tag from byte {start}",
                    self.limit
                ),
            ));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // `consume` follows a `fill_buf` that returned at least `amt` bytes, so this second
        // `fill_buf` returns the same bytes without reading.
        if let Ok(available) = self.inner.fill_buf() {
            let seen = &available[..amt.min(available.len())];
            if let Some(i) = seen.iter().rposition(|&b| b == b'<') {
                self.run_start = self.offset + i as u64;
            }
        }
        self.offset += amt as u64;
        if self.tripped.is_none() && self.offset - self.run_start > self.limit {
            self.tripped = Some(self.run_start);
        }
        self.inner.consume(amt);
    }
}

/// The elements the parser reacts to; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Sanctions,
    DateOfIssue,
    Year,
    Month,
    Day,
    ReferenceValueSets,
    FeatureTypeValues,
    FeatureType,
    SanctionsTypeValues,
    SanctionsType,
    DistinctParties,
    DistinctParty,
    Profile,
    Identity,
    Alias,
    DocumentedName,
    NamePartValue,
    NamePartGroup,
    Feature,
    VersionDetail,
    SanctionsEntries,
    SanctionsEntry,
    SanctionsMeasure,
    Comment,
    Other,
}

impl Tag {
    fn of(local: &[u8]) -> Tag {
        match local {
            b"Sanctions" => Tag::Sanctions,
            b"DateOfIssue" => Tag::DateOfIssue,
            b"Year" => Tag::Year,
            b"Month" => Tag::Month,
            b"Day" => Tag::Day,
            b"ReferenceValueSets" => Tag::ReferenceValueSets,
            b"FeatureTypeValues" => Tag::FeatureTypeValues,
            b"FeatureType" => Tag::FeatureType,
            b"SanctionsTypeValues" => Tag::SanctionsTypeValues,
            b"SanctionsType" => Tag::SanctionsType,
            b"DistinctParties" => Tag::DistinctParties,
            b"DistinctParty" => Tag::DistinctParty,
            b"Profile" => Tag::Profile,
            b"Identity" => Tag::Identity,
            b"Alias" => Tag::Alias,
            b"DocumentedName" => Tag::DocumentedName,
            b"NamePartValue" => Tag::NamePartValue,
            b"NamePartGroup" => Tag::NamePartGroup,
            b"Feature" => Tag::Feature,
            b"VersionDetail" => Tag::VersionDetail,
            b"SanctionsEntries" => Tag::SanctionsEntries,
            b"SanctionsEntry" => Tag::SanctionsEntry,
            b"SanctionsMeasure" => Tag::SanctionsMeasure,
            b"Comment" => Tag::Comment,
            _ => Tag::Other,
        }
    }
}

/// Which text is being collected, and what it becomes.
#[derive(Debug)]
enum Capture {
    FeatureTypeName { id: String },
    SanctionsTypeName { id: String },
    DatePart(Tag),
    NamePart { group: String },
    Detail,
    MeasureComment,
}

#[derive(Debug, Clone)]
enum FeatureKind {
    Currency(String),
    Other,
}

#[derive(Debug)]
struct DateState {
    depth: usize,
    position: u64,
    year: Option<String>,
    month: Option<String>,
    day: Option<String>,
}

#[derive(Debug)]
struct PartyState {
    depth: usize,
    position: u64,
    uid: String,
}

#[derive(Debug)]
struct ProfileState {
    depth: usize,
    id: String,
    /// Best name so far, and whether it came from the primary identity.
    name: Option<(String, bool)>,
    addresses: Vec<PendingAddress>,
}

#[derive(Debug)]
struct IdentityState {
    depth: usize,
    primary: bool,
    /// Parts (group id, value) of the chosen documented name, and whether its alias is primary.
    chosen: Option<(Vec<(String, String)>, bool)>,
    group_order: Vec<String>,
}

#[derive(Debug)]
struct AliasState {
    depth: usize,
    primary: bool,
    names_seen: usize,
}

#[derive(Debug)]
struct DocNameState {
    depth: usize,
    alias_primary: bool,
    parts: Vec<(String, String)>,
}

#[derive(Debug)]
struct FeatureState {
    depth: usize,
    position: u64,
    id: Option<String>,
    type_id: String,
    details: Vec<String>,
}

#[derive(Debug)]
enum CurrencyRef {
    Known(String),
    /// FeatureTypeID met before `FeatureTypeValues`; resolved at the end.
    Pending(String),
}

#[derive(Debug)]
struct PendingAddress {
    address: String,
    currency: CurrencyRef,
    feature_id: Option<String>,
    position: u64,
}

#[derive(Debug)]
struct PartyInfo {
    uid: String,
    entity: String,
    profile_id: String,
}

#[derive(Debug)]
struct RawAddress {
    pending: PendingAddress,
    party: usize,
}

#[derive(Debug)]
struct EntryState {
    depth: usize,
    profile_id: String,
    measures: Vec<(String, String)>,
}

#[derive(Debug)]
struct MeasureState {
    depth: usize,
    type_id: String,
    comment: String,
}

#[derive(Debug)]
struct Parser {
    limits: Limits,
    /// Open elements with the length of `path` before each was pushed.
    stack: Vec<(Tag, usize)>,
    /// `/Sanctions/DistinctParties/…` of the open elements, for messages.
    path: String,
    capture: Option<(Capture, usize)>,
    text: String,
    date: Option<DateState>,
    date_of_issue: Option<(u16, u8, u8)>,
    feature_types: HashMap<String, FeatureKind>,
    feature_types_declared: bool,
    feature_types_complete: bool,
    sanctions_types: HashMap<String, String>,
    party: Option<PartyState>,
    profile: Option<ProfileState>,
    identity: Option<IdentityState>,
    alias: Option<AliasState>,
    doc_name: Option<DocNameState>,
    feature: Option<FeatureState>,
    entry: Option<EntryState>,
    measure: Option<MeasureState>,
    parties: Vec<PartyInfo>,
    raw: Vec<RawAddress>,
    address_count: usize,
    pending_count: usize,
    /// Profile id → (SanctionsTypeID, comment) of its sanctions measures.
    measures: HashMap<String, Vec<(String, String)>>,
}

impl Parser {
    fn new(limits: Limits) -> Self {
        Parser {
            limits,
            stack: Vec::with_capacity(MAX_DEPTH),
            path: String::new(),
            capture: None,
            text: String::new(),
            date: None,
            date_of_issue: None,
            feature_types: HashMap::new(),
            feature_types_declared: false,
            feature_types_complete: false,
            sanctions_types: HashMap::new(),
            party: None,
            profile: None,
            identity: None,
            alias: None,
            doc_name: None,
            feature: None,
            entry: None,
            measure: None,
            parties: Vec::new(),
            raw: Vec::new(),
            address_count: 0,
            pending_count: 0,
            measures: HashMap::new(),
        }
    }

    fn text_too_large(&self, position: u64) -> SdnXmlError {
        SdnXmlError::TextTooLarge {
            position,
            path: self.path_or_root(),
            limit: self.limits.max_text,
        }
    }

    fn path_or_root(&self) -> String {
        if self.path.is_empty() {
            "the document prolog".to_owned()
        } else {
            self.path.clone()
        }
    }

    fn start(&mut self, e: &BytesStart<'_>, position: u64) -> Result<(), SdnXmlError> {
        let local = e.local_name();
        let tag = Tag::of(local.as_ref());
        let parent = self.stack.last().map(|&(t, _)| t);
        if self.stack.len() >= MAX_DEPTH {
            return Err(SdnXmlError::TooDeep {
                position,
                path: self.path.clone(),
                limit: MAX_DEPTH,
            });
        }
        self.stack.push((tag, self.path.len()));
        self.path.push('/');
        self.path.push_str(&String::from_utf8_lossy(local.as_ref()));
        let depth = self.stack.len();

        match (tag, parent) {
            (Tag::DateOfIssue, Some(Tag::Sanctions)) => {
                self.date = Some(DateState {
                    depth,
                    position,
                    year: None,
                    month: None,
                    day: None,
                });
            }
            (Tag::Year | Tag::Month | Tag::Day, Some(Tag::DateOfIssue)) if self.date.is_some() => {
                self.begin_capture(Capture::DatePart(tag), depth);
            }
            (Tag::FeatureTypeValues, Some(Tag::ReferenceValueSets)) => {
                self.feature_types_declared = true;
            }
            (Tag::FeatureType, Some(Tag::FeatureTypeValues)) => {
                let id = required_attr(e, b"ID", "FeatureType", "ID", position)?;
                self.begin_capture(Capture::FeatureTypeName { id }, depth);
            }
            (Tag::SanctionsType, Some(Tag::SanctionsTypeValues)) => {
                let id = required_attr(e, b"ID", "SanctionsType", "ID", position)?;
                self.begin_capture(Capture::SanctionsTypeName { id }, depth);
            }
            (Tag::DistinctParty, Some(Tag::DistinctParties)) => {
                let uid = required_attr(e, b"FixedRef", "DistinctParty", "FixedRef", position)?;
                self.party = Some(PartyState {
                    depth,
                    position,
                    uid,
                });
            }
            (Tag::Profile, Some(Tag::DistinctParty)) => {
                if let Some(party) = &self.party {
                    let id = attr(e, b"ID", position)?.unwrap_or_else(|| party.uid.clone());
                    self.profile = Some(ProfileState {
                        depth,
                        id,
                        name: None,
                        addresses: Vec::new(),
                    });
                }
            }
            (Tag::Identity, Some(Tag::Profile)) if self.profile.is_some() => {
                let primary = attr(e, b"Primary", position)?.is_some_and(|v| is_true(&v));
                self.identity = Some(IdentityState {
                    depth,
                    primary,
                    chosen: None,
                    group_order: Vec::new(),
                });
            }
            (Tag::Alias, Some(Tag::Identity)) if self.identity.is_some() => {
                let primary = attr(e, b"Primary", position)?.is_some_and(|v| is_true(&v));
                self.alias = Some(AliasState {
                    depth,
                    primary,
                    names_seen: 0,
                });
            }
            (Tag::DocumentedName, Some(Tag::Alias)) => {
                if let (Some(alias), Some(identity)) = (&mut self.alias, &self.identity) {
                    alias.names_seen += 1;
                    // The first documented name of the primary alias; until one is met, the
                    // first of the first alias.
                    let wanted = alias.names_seen == 1
                        && match &identity.chosen {
                            None => true,
                            Some((_, chosen_primary)) => !chosen_primary && alias.primary,
                        };
                    if wanted {
                        self.doc_name = Some(DocNameState {
                            depth,
                            alias_primary: alias.primary,
                            parts: Vec::new(),
                        });
                    }
                }
            }
            (Tag::NamePartValue, _) if self.doc_name.is_some() => {
                let group = attr(e, b"NamePartGroupID", position)?.unwrap_or_default();
                self.begin_capture(Capture::NamePart { group }, depth);
            }
            (Tag::NamePartGroup, _) => {
                if let Some(identity) = &mut self.identity
                    && let Some(id) = attr(e, b"ID", position)?
                {
                    identity.group_order.push(id);
                }
            }
            (Tag::Feature, _) if self.profile.is_some() && self.feature.is_none() => {
                let type_id =
                    required_attr(e, b"FeatureTypeID", "Feature", "FeatureTypeID", position)?;
                let id = attr(e, b"ID", position)?;
                self.feature = Some(FeatureState {
                    depth,
                    position,
                    id,
                    type_id,
                    details: Vec::new(),
                });
            }
            (Tag::VersionDetail, _) if self.feature.is_some() => {
                self.begin_capture(Capture::Detail, depth);
            }
            (Tag::SanctionsEntry, Some(Tag::SanctionsEntries)) => {
                let profile_id =
                    required_attr(e, b"ProfileID", "SanctionsEntry", "ProfileID", position)?;
                self.entry = Some(EntryState {
                    depth,
                    profile_id,
                    measures: Vec::new(),
                });
            }
            (Tag::SanctionsMeasure, Some(Tag::SanctionsEntry)) if self.entry.is_some() => {
                let type_id = attr(e, b"SanctionsTypeID", position)?.unwrap_or_default();
                self.measure = Some(MeasureState {
                    depth,
                    type_id,
                    comment: String::new(),
                });
            }
            (Tag::Comment, Some(Tag::SanctionsMeasure)) if self.measure.is_some() => {
                self.begin_capture(Capture::MeasureComment, depth);
            }
            _ => {}
        }
        Ok(())
    }

    fn begin_capture(&mut self, capture: Capture, depth: usize) {
        if self.capture.is_none() {
            self.text.clear();
            self.capture = Some((capture, depth));
        }
    }

    fn text(&mut self, text: &str, root: RootState, position: u64) -> Result<(), SdnXmlError> {
        match root {
            RootState::Before | RootState::After => {
                let content = text.trim();
                if content.is_empty() {
                    return Ok(());
                }
                let snippet: String = content.chars().take(40).collect();
                return Err(if root == RootState::Before {
                    SdnXmlError::NotSdnAdvanced {
                        found: format!("text before any element at byte {position}: {snippet:?}"),
                    }
                } else {
                    SdnXmlError::Malformed {
                        position,
                        message: format!("text after the root element: {snippet:?}"),
                    }
                });
            }
            RootState::Inside => {}
        }
        if self.capture.is_some() {
            if self.text.len() + text.len() > self.limits.max_text {
                return Err(self.text_too_large(position));
            }
            self.text.push_str(text);
        }
        Ok(())
    }

    fn end(&mut self, position: u64) -> Result<(), SdnXmlError> {
        let depth = self.stack.len();
        if self.capture.as_ref().is_some_and(|(_, d)| *d == depth)
            && let Some((capture, _)) = self.capture.take()
        {
            self.finish_capture(capture);
        }
        let Some((tag, path_len)) = self.stack.pop() else {
            return Err(SdnXmlError::Malformed {
                position,
                message: "closing tag without an open element".to_owned(),
            });
        };
        match tag {
            Tag::DateOfIssue if self.date.as_ref().is_some_and(|d| d.depth == depth) => {
                if let Some(date) = self.date.take() {
                    self.date_of_issue = Some(parse_date(&date)?);
                }
            }
            Tag::FeatureTypeValues if self.feature_types_declared => {
                self.feature_types_complete = true;
            }
            Tag::DocumentedName if self.doc_name.as_ref().is_some_and(|d| d.depth == depth) => {
                if let (Some(doc), Some(identity)) = (self.doc_name.take(), &mut self.identity) {
                    identity.chosen = Some((doc.parts, doc.alias_primary));
                }
            }
            Tag::Alias if self.alias.as_ref().is_some_and(|a| a.depth == depth) => {
                self.alias = None;
            }
            Tag::Identity if self.identity.as_ref().is_some_and(|i| i.depth == depth) => {
                if let (Some(identity), Some(profile)) = (self.identity.take(), &mut self.profile) {
                    finish_identity(identity, profile);
                }
            }
            Tag::Feature if self.feature.as_ref().is_some_and(|f| f.depth == depth) => {
                if let Some(feature) = self.feature.take() {
                    self.finish_feature(feature)?;
                }
            }
            Tag::Profile if self.profile.as_ref().is_some_and(|p| p.depth == depth) => {
                if let Some(profile) = self.profile.take() {
                    self.finish_profile(profile)?;
                }
            }
            Tag::DistinctParty if self.party.as_ref().is_some_and(|p| p.depth == depth) => {
                self.party = None;
            }
            Tag::SanctionsMeasure if self.measure.as_ref().is_some_and(|m| m.depth == depth) => {
                if let (Some(measure), Some(entry)) = (self.measure.take(), &mut self.entry) {
                    entry.measures.push((measure.type_id, measure.comment));
                }
            }
            Tag::SanctionsEntry if self.entry.as_ref().is_some_and(|e| e.depth == depth) => {
                if let Some(entry) = self.entry.take() {
                    self.measures
                        .entry(entry.profile_id)
                        .or_default()
                        .extend(entry.measures);
                }
            }
            _ => {}
        }
        self.path.truncate(path_len);
        Ok(())
    }

    fn finish_capture(&mut self, capture: Capture) {
        let value = self.text.trim();
        match capture {
            Capture::FeatureTypeName { id } => {
                let kind = match value.strip_prefix(DIGITAL_CURRENCY_PREFIX).map(str::trim) {
                    Some(code) if !code.is_empty() => FeatureKind::Currency(code.to_owned()),
                    _ => FeatureKind::Other,
                };
                self.feature_types.insert(id, kind);
            }
            Capture::SanctionsTypeName { id } => {
                self.sanctions_types.insert(id, value.to_owned());
            }
            Capture::DatePart(tag) => {
                if let Some(date) = &mut self.date {
                    let slot = match tag {
                        Tag::Year => &mut date.year,
                        Tag::Month => &mut date.month,
                        _ => &mut date.day,
                    };
                    *slot = Some(value.to_owned());
                }
            }
            Capture::NamePart { group } => {
                if let Some(doc) = &mut self.doc_name {
                    let part = value.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !part.is_empty() {
                        doc.parts.push((group, part));
                    }
                }
            }
            Capture::Detail => {
                if let Some(feature) = &mut self.feature
                    && !value.is_empty()
                {
                    feature.details.push(value.to_owned());
                }
            }
            Capture::MeasureComment => {
                if let Some(measure) = &mut self.measure {
                    measure.comment = value.to_owned();
                }
            }
        }
        self.text.clear();
    }

    fn finish_feature(&mut self, feature: FeatureState) -> Result<(), SdnXmlError> {
        let currency = if self.feature_types_complete {
            match self.feature_types.get(&feature.type_id) {
                None => {
                    return Err(SdnXmlError::UnknownFeatureType {
                        position: feature.position,
                        feature_id: feature
                            .id
                            .map(|id| format!(" ID=\"{id}\""))
                            .unwrap_or_default(),
                        uid: self
                            .party
                            .as_ref()
                            .map(|p| p.uid.clone())
                            .unwrap_or_default(),
                        feature_type_id: feature.type_id,
                    });
                }
                Some(FeatureKind::Other) => return Ok(()),
                Some(FeatureKind::Currency(code)) => {
                    self.address_count += feature.details.len();
                    if self.address_count > self.limits.max_addresses {
                        return Err(SdnXmlError::TooManyAddresses {
                            position: feature.position,
                            limit: self.limits.max_addresses,
                        });
                    }
                    CurrencyRef::Known(code.clone())
                }
            }
        } else {
            if feature.details.is_empty() {
                return Ok(());
            }
            self.pending_count += feature.details.len();
            if self.pending_count > self.limits.max_addresses {
                return Err(SdnXmlError::TooManyPendingFeatures {
                    position: feature.position,
                    limit: self.limits.max_addresses,
                });
            }
            CurrencyRef::Pending(feature.type_id)
        };
        let Some(profile) = &mut self.profile else {
            return Ok(());
        };
        for address in feature.details {
            let currency = match &currency {
                CurrencyRef::Known(code) => CurrencyRef::Known(code.clone()),
                CurrencyRef::Pending(id) => CurrencyRef::Pending(id.clone()),
            };
            profile.addresses.push(PendingAddress {
                address,
                currency,
                feature_id: feature.id.clone(),
                position: feature.position,
            });
        }
        Ok(())
    }

    fn finish_profile(&mut self, profile: ProfileState) -> Result<(), SdnXmlError> {
        if profile.addresses.is_empty() {
            return Ok(());
        }
        let (uid, position) = match &self.party {
            Some(party) => (party.uid.clone(), party.position),
            None => (String::new(), 0),
        };
        let Some((entity, _)) = profile.name else {
            return Err(SdnXmlError::PartyWithoutName { position, uid });
        };
        let party = self.parties.len();
        self.parties.push(PartyInfo {
            uid,
            entity,
            profile_id: profile.id,
        });
        self.raw.extend(
            profile
                .addresses
                .into_iter()
                .map(|pending| RawAddress { pending, party }),
        );
        Ok(())
    }

    fn finish(self, end_position: u64) -> Result<SdnPublication, SdnXmlError> {
        if !self.feature_types_declared {
            return Err(SdnXmlError::MissingFeatureTypes);
        }
        let program_types: HashSet<&str> = self
            .sanctions_types
            .iter()
            .filter(|(_, name)| name.eq_ignore_ascii_case("Program"))
            .map(|(id, _)| id.as_str())
            .collect();
        let programs_of = |profile_id: &str| -> Vec<String> {
            let mut programs: Vec<String> = Vec::new();
            for (type_id, comment) in self.measures.get(profile_id).into_iter().flatten() {
                let is_program =
                    program_types.is_empty() || program_types.contains(type_id.as_str());
                if is_program && !comment.is_empty() && !programs.contains(comment) {
                    programs.push(comment.clone());
                }
            }
            programs
        };
        let party_programs: Vec<Vec<String>> = self
            .parties
            .iter()
            .map(|party| programs_of(&party.profile_id))
            .collect();

        let mut seen: HashSet<(String, String, String)> = HashSet::new();
        let mut entries = Vec::with_capacity(self.raw.len());
        for raw in self.raw {
            let party = &self.parties[raw.party];
            let currency = match raw.pending.currency {
                CurrencyRef::Known(code) => code,
                CurrencyRef::Pending(type_id) => match self.feature_types.get(&type_id) {
                    Some(FeatureKind::Currency(code)) => code.clone(),
                    Some(FeatureKind::Other) => continue,
                    None => {
                        return Err(SdnXmlError::UnknownFeatureType {
                            position: raw.pending.position,
                            feature_id: raw
                                .pending
                                .feature_id
                                .map(|id| format!(" ID=\"{id}\""))
                                .unwrap_or_default(),
                            uid: party.uid.clone(),
                            feature_type_id: type_id,
                        });
                    }
                },
            };
            let key = (
                raw.pending.address.clone(),
                currency.clone(),
                party.uid.clone(),
            );
            if !seen.insert(key) {
                continue;
            }
            entries.push(SdnAddress {
                address: raw.pending.address,
                currency,
                uid: party.uid.clone(),
                entity: party.entity.clone(),
                programs: party_programs[raw.party].clone(),
            });
        }
        if entries.len() > self.limits.max_addresses {
            return Err(SdnXmlError::TooManyAddresses {
                position: end_position,
                limit: self.limits.max_addresses,
            });
        }
        Ok(SdnPublication {
            date_of_issue: self.date_of_issue,
            entries,
        })
    }
}

/// Puts the chosen name of an identity on its profile, preferring the primary identity.
fn finish_identity(identity: IdentityState, profile: &mut ProfileState) {
    let Some((mut parts, _)) = identity.chosen else {
        return;
    };
    let rank = |group: &str| {
        identity
            .group_order
            .iter()
            .position(|g| g == group)
            .unwrap_or(usize::MAX)
    };
    parts.sort_by_key(|(group, _)| rank(group));
    let name = parts
        .into_iter()
        .map(|(_, value)| value)
        .collect::<Vec<_>>()
        .join(" ");
    if name.is_empty() {
        return;
    }
    let replace = match &profile.name {
        None => true,
        Some((_, from_primary)) => !from_primary && identity.primary,
    };
    if replace {
        profile.name = Some((name, identity.primary));
    }
}

fn parse_date(date: &DateState) -> Result<(u16, u8, u8), SdnXmlError> {
    let position = date.position;
    let field = |value: &Option<String>, name: &str| -> Result<String, SdnXmlError> {
        value.clone().ok_or_else(|| SdnXmlError::InvalidDate {
            position,
            message: format!("missing <{name}>"),
        })
    };
    let bad = |name: &str, value: &str, expected: &str| SdnXmlError::InvalidDate {
        position,
        message: format!("<{name}> is {value:?}, expected {expected}"),
    };
    let year_text = field(&date.year, "Year")?;
    let month_text = field(&date.month, "Month")?;
    let day_text = field(&date.day, "Day")?;
    let year: u16 = year_text
        .parse()
        .ok()
        .filter(|y| (1900..=9999).contains(y))
        .ok_or_else(|| bad("Year", &year_text, "a year from 1900 to 9999"))?;
    let month: u8 = month_text
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| bad("Month", &month_text, "a month from 1 to 12"))?;
    let day: u8 = day_text
        .parse()
        .ok()
        .filter(|d| (1..=31).contains(d))
        .ok_or_else(|| bad("Day", &day_text, "a day from 1 to 31"))?;
    Ok((year, month, day))
}

fn is_true(value: &str) -> bool {
    value.trim() == "true" || value.trim() == "1"
}

/// The value of the attribute whose local name is `name`, unescaped.
fn attr(e: &BytesStart<'_>, name: &[u8], position: u64) -> Result<Option<String>, SdnXmlError> {
    for attribute in e.attributes() {
        let attribute = attribute.map_err(|err| malformed(position, err))?;
        if attribute.key.local_name().as_ref() == name {
            let value = attribute
                .unescape_value()
                .map_err(|err| malformed(position, err))?;
            return Ok(Some(value.trim().to_owned()));
        }
    }
    Ok(None)
}

fn required_attr(
    e: &BytesStart<'_>,
    name: &[u8],
    element: &'static str,
    attribute: &'static str,
    position: u64,
) -> Result<String, SdnXmlError> {
    match attr(e, name, position)? {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(SdnXmlError::MissingAttribute {
            position,
            element,
            attribute,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../tests/fixtures/sdn_advanced_sample.xml");

    fn parse(xml: &str) -> Result<SdnPublication, SdnXmlError> {
        parse_sdn_advanced(xml.as_bytes())
    }

    fn entry(
        address: &str,
        currency: &str,
        uid: &str,
        entity: &str,
        programs: &[&str],
    ) -> SdnAddress {
        SdnAddress {
            address: address.to_owned(),
            currency: currency.to_owned(),
            uid: uid.to_owned(),
            entity: entity.to_owned(),
            programs: programs.iter().map(|p| (*p).to_owned()).collect(),
        }
    }

    /// Wraps parties and sanctions entries in a minimal document with the real namespace.
    fn doc(feature_types: &str, parties: &str, entries: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<Sanctions xmlns="{SDN_ADVANCED_NAMESPACE}">
  <DateOfIssue><Year>2026</Year><Month>8</Month><Day>20</Day></DateOfIssue>
  <ReferenceValueSets>
    <FeatureTypeValues>{feature_types}</FeatureTypeValues>
    <SanctionsTypeValues><SanctionsType ID="1">Program</SanctionsType><SanctionsType ID="1705">Block</SanctionsType></SanctionsTypeValues>
  </ReferenceValueSets>
  <DistinctParties>{parties}</DistinctParties>
  <SanctionsEntries>{entries}</SanctionsEntries>
</Sanctions>"#
        )
    }

    const TYPES: &str = r#"<FeatureType ID="25">Location</FeatureType>
        <FeatureType ID="344">Digital Currency Address - XBT</FeatureType>
        <FeatureType ID="345">Digital Currency Address - ETH</FeatureType>"#;

    fn party(uid: &str, name: &str, features: &str) -> String {
        format!(
            r#"<DistinctParty FixedRef="{uid}"><Profile ID="{uid}" PartySubTypeID="3">
              <Identity ID="1{uid}" Primary="true"><Alias AliasTypeID="1403" Primary="true"><DocumentedName>
                <DocumentedNamePart><NamePartValue NamePartGroupID="9{uid}">{name}</NamePartValue></DocumentedNamePart>
              </DocumentedName></Alias>
              <NamePartGroups><MasterNamePartGroup><NamePartGroup ID="9{uid}" NamePartTypeID="1525"/></MasterNamePartGroup></NamePartGroups>
              </Identity>{features}</Profile></DistinctParty>"#
        )
    }

    fn feature(id: &str, type_id: &str, detail: &str) -> String {
        format!(
            r#"<Feature ID="{id}" FeatureTypeID="{type_id}"><FeatureVersion ID="{id}"><Comment/><VersionDetail DetailTypeID="1432">{detail}</VersionDetail></FeatureVersion></Feature>"#
        )
    }

    fn program(profile: &str, code: &str) -> String {
        format!(
            r#"<SanctionsEntry ID="{profile}" ProfileID="{profile}" ListID="1550"><SanctionsMeasure ID="1" SanctionsTypeID="1705"><Comment>not a program</Comment></SanctionsMeasure><SanctionsMeasure ID="2" SanctionsTypeID="1"><Comment>{code}</Comment></SanctionsMeasure></SanctionsEntry>"#
        )
    }

    #[test]
    fn sample_parses_to_exactly_the_expected_entries() {
        let publication = parse(SAMPLE).expect("the sample parses");
        assert_eq!(publication.date_of_issue, Some((2026, 8, 20)));
        let expected = vec![
            entry(
                "0x098B716B8Aaf21512996dC57EB0615e2383E2f96",
                "ETH",
                "27307",
                "LAZARUS GROUP",
                &["DPRK3"],
            ),
            entry(
                "0xa0e1c89Ef1a489c9C7dE96311eD5Ce5D32c20E4B",
                "ETH",
                "27307",
                "LAZARUS GROUP",
                &["DPRK3"],
            ),
            entry(
                "134r8iHv69xdT6p5qVKTsHrcUEuBVZAYak",
                "XBT",
                "28263",
                "TIAN Yinyin",
                &["CYBER2", "DPRK3"],
            ),
            entry(
                "3F2sZ4jbhvDKQdGbHYPC6ZxFXEau2m5Lqj",
                "XBT",
                "28263",
                "TIAN Yinyin",
                &["CYBER2", "DPRK3"],
            ),
            entry(
                "884Bz8UH63aYsjVdkfWfScRYWZGGNbjFL7pztqvWNSrtYT4reFSwyvkCj9KEGUtheHhhMUj87ciTBFyzoesrMJ4L1FvSoxL",
                "XMR",
                "31212",
                "SOUTHFRONT",
                &["CYBER2", "ELECTION-EO13848", "NPWMD"],
            ),
            entry(
                "0xb6f5ec1a0a9cd1526536d3f0426c429529471f40",
                "ETH",
                "43377",
                "KIM Sang Man",
                &["DPRK4"],
            ),
            entry(
                "0xb6f5ec1a0a9cd1526536d3f0426c429529471f40",
                "USDT",
                "43377",
                "KIM Sang Man",
                &["DPRK4"],
            ),
            entry(
                "0xb6f5ec1a0a9cd1526536d3f0426c429529471f40",
                "USDC",
                "43377",
                "KIM Sang Man",
                &["DPRK4"],
            ),
            entry(
                "TTUDyVhhpCC1xJoPmWzdjLAzeoPwbSABdr",
                "TRX",
                "50641",
                "CRYPTEX",
                &["CYBER2", "RUSSIA-EO14024"],
            ),
        ];
        assert_eq!(publication.entries, expected);
    }

    #[test]
    fn sample_party_without_crypto_feature_yields_nothing() {
        let publication = parse(SAMPLE).expect("the sample parses");
        assert!(publication.entries.iter().all(|e| e.uid != "36"));
        assert!(
            publication
                .entries
                .iter()
                .all(|e| e.entity != "AEROCARIBBEAN AIRLINES")
        );

        let xml = doc(
            TYPES,
            &party(
                "36",
                "AEROCARIBBEAN AIRLINES",
                &feature("1", "25", "Havana"),
            ),
            &program("36", "CUBA"),
        );
        let publication = parse(&xml).expect("parses");
        assert_eq!(publication.entries, vec![]);
        assert_eq!(publication.date_of_issue, Some((2026, 8, 20)));
    }

    #[test]
    fn sample_read_through_a_small_buffer_gives_the_same_result() {
        let whole = parse(SAMPLE).expect("the sample parses");
        let chunked = parse_sdn_advanced(io::BufReader::with_capacity(7, SAMPLE.as_bytes()))
            .expect("the sample parses in 7-byte chunks");
        assert_eq!(whole, chunked);
    }

    #[test]
    fn byte_order_mark_and_crlf_line_ends_are_accepted() {
        let whole = parse(SAMPLE).expect("the sample parses");
        let windows = format!("\u{feff}{}", SAMPLE.replace('\n', "\r\n"));
        assert_eq!(parse(&windows).expect("bom + crlf parses"), whole);
    }

    #[test]
    fn rejects_xml_that_is_not_sdn_advanced() {
        let legacy_sdn = r#"<?xml version="1.0"?><sdnList xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML"><sdnEntry/></sdnList>"#;
        let err = parse(legacy_sdn).expect_err("sdn.xml is not the advanced format");
        let message = err.to_string();
        assert!(
            matches!(err, SdnXmlError::NotSdnAdvanced { .. }),
            "{message}"
        );
        assert!(message.contains("root element was <sdnList>"), "{message}");
        assert!(message.contains(SDN_ADVANCED_NAMESPACE), "{message}");

        let foreign = r#"<Sanctions xmlns="urn:example:other"><DateOfIssue/></Sanctions>"#;
        let message = parse(foreign).expect_err("wrong namespace").to_string();
        assert!(
            message.contains("in namespace urn:example:other"),
            "{message}"
        );

        let html = "<html><body>hello</body></html>";
        let message = parse(html).expect_err("html").to_string();
        assert!(
            message.starts_with("not an ofac sdn advanced xml document: root element was <html>"),
            "{message}"
        );

        let err = parse("address,entity\n0xabc,lazarus\n").expect_err("csv");
        assert!(matches!(err, SdnXmlError::NotSdnAdvanced { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("text before any element at byte 0"),
            "{err}"
        );
    }

    #[test]
    fn accepts_the_legacy_un_namespace_and_a_prefixed_root() {
        let body = format!(
            "<ReferenceValueSets><FeatureTypeValues>{TYPES}</FeatureTypeValues></ReferenceValueSets><DistinctParties>{}</DistinctParties>",
            party(
                "27307",
                "LAZARUS GROUP",
                &feature("5", "345", "0x098B716B8Aaf21512996dC57EB0615e2383E2f96")
            )
        );
        let legacy =
            format!(r#"<Sanctions xmlns="{LEGACY_SDN_ADVANCED_NAMESPACE}">{body}</Sanctions>"#);
        let publication = parse(&legacy).expect("legacy namespace");
        assert_eq!(publication.entries.len(), 1);
        assert_eq!(publication.date_of_issue, None);
        assert_eq!(publication.entries[0].programs, Vec::<String>::new());

        let prefixed =
            format!(r#"<s:Sanctions xmlns:s="{SDN_ADVANCED_NAMESPACE}">{body}</s:Sanctions>"#);
        let publication = parse(&prefixed).expect("prefixed root");
        assert_eq!(publication.entries[0].entity, "LAZARUS GROUP");
    }

    #[test]
    fn truncated_xml_is_an_error_at_every_cut() {
        let end = SAMPLE
            .rfind("</Sanctions>")
            .expect("sample has a closing root tag")
            + "</Sanctions>".len();
        let mut cut = 0;
        while cut < end {
            let result = parse_sdn_advanced(&SAMPLE.as_bytes()[..cut]);
            assert!(result.is_err(), "cut at byte {cut} parsed");
            cut += 13;
        }
        let err = parse(&SAMPLE[..SAMPLE.find("<SanctionsEntries>").expect("has entries")])
            .expect_err("cut before the sanctions entries");
        let message = err.to_string();
        assert!(
            matches!(err, SdnXmlError::Truncated { open: 1, .. }),
            "{message}"
        );
        assert!(
            message.starts_with("truncated xml: the input ends at byte"),
            "{message}"
        );
        assert!(message.contains("inside /Sanctions"), "{message}");

        let err = parse(
            &SAMPLE[..SAMPLE
                .find("DistinctParty FixedRef=\"28263\"")
                .expect("has party")
                + 10],
        )
        .expect_err("cut inside a tag");
        assert!(
            err.to_string().starts_with("malformed xml at byte"),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(matches!(parse(""), Err(SdnXmlError::Empty)));
        assert!(matches!(parse("  \n\t"), Err(SdnXmlError::Empty)));
        assert!(matches!(
            parse(r#"<?xml version="1.0"?><!-- nothing -->"#),
            Err(SdnXmlError::Empty)
        ));
        let message = parse("").expect_err("empty").to_string();
        assert_eq!(
            message,
            "the input is empty: expected ofac's sdn advanced xml (SDN_ADVANCED.XML)"
        );
    }

    #[test]
    fn mismatched_tags_name_the_byte_position() {
        let xml = doc(
            TYPES,
            "<DistinctParty FixedRef=\"1\"><Profile ID=\"1\"></DistinctParty>",
            "",
        );
        let err = parse(&xml).expect_err("mismatched end tag");
        let message = err.to_string();
        assert!(matches!(err, SdnXmlError::Malformed { .. }), "{message}");
        assert!(message.contains("</Profile>"), "{message}");
    }

    #[test]
    fn out_of_order_sections_are_resolved_at_the_end() {
        // Sanctions entries before the parties, feature types after them.
        let xml = format!(
            r#"<Sanctions xmlns="{SDN_ADVANCED_NAMESPACE}">
  <SanctionsEntries>{}</SanctionsEntries>
  <DistinctParties>{}</DistinctParties>
  <ReferenceValueSets>
    <SanctionsTypeValues><SanctionsType ID="1">Program</SanctionsType><SanctionsType ID="1705">Block</SanctionsType></SanctionsTypeValues>
    <FeatureTypeValues>{TYPES}</FeatureTypeValues>
  </ReferenceValueSets>
</Sanctions>"#,
            program("28263", "CYBER2") + &program("28263", "DPRK3") + &program("28263", "CYBER2"),
            party(
                "28263",
                "TIAN Yinyin",
                &(feature("1", "25", "Beijing")
                    + &feature("2", "344", " 134r8iHv69xdT6p5qVKTsHrcUEuBVZAYak\n"))
            ),
        );
        let publication = parse(&xml).expect("parses out of order");
        assert_eq!(
            publication.entries,
            vec![entry(
                "134r8iHv69xdT6p5qVKTsHrcUEuBVZAYak",
                "XBT",
                "28263",
                "TIAN Yinyin",
                &["CYBER2", "DPRK3"]
            )]
        );
    }

    #[test]
    fn unknown_feature_type_is_an_error() {
        let xml = doc(
            TYPES,
            &party("27307", "LAZARUS GROUP", &feature("77", "999", "0xabc")),
            "",
        );
        let err = parse(&xml).expect_err("feature type 999 is not declared");
        let message = err.to_string();
        assert!(
            matches!(err, SdnXmlError::UnknownFeatureType { .. }),
            "{message}"
        );
        assert!(message.contains("FeatureTypeID 999"), "{message}");
        assert!(
            message.contains("<Feature ID=\"77\"> of DistinctParty 27307"),
            "{message}"
        );

        // Also when the declaration would have come after the party.
        let xml = format!(
            r#"<Sanctions><DistinctParties>{}</DistinctParties><ReferenceValueSets><FeatureTypeValues>{TYPES}</FeatureTypeValues></ReferenceValueSets></Sanctions>"#,
            party("27307", "LAZARUS GROUP", &feature("78", "998", "0xabc"))
        );
        let message = parse(&xml).expect_err("998 undeclared").to_string();
        assert!(message.contains("FeatureTypeID 998"), "{message}");
    }

    #[test]
    fn missing_feature_type_declarations_is_an_error() {
        let xml = format!(
            r#"<Sanctions xmlns="{SDN_ADVANCED_NAMESPACE}"><DistinctParties/></Sanctions>"#
        );
        assert!(matches!(parse(&xml), Err(SdnXmlError::MissingFeatureTypes)));
    }

    #[test]
    fn name_parts_follow_name_part_groups_and_the_primary_alias() {
        // The weak alias comes first, and the parts are listed first name first; the
        // NamePartGroups order (last name first) decides.
        let parties = r#"<DistinctParty FixedRef="43377"><Profile ID="43377" PartySubTypeID="4">
          <Identity ID="1" Primary="true">
            <Alias AliasTypeID="1400" Primary="false"><DocumentedName><DocumentedNamePart><NamePartValue NamePartGroupID="3">Sangman KIM</NamePartValue></DocumentedNamePart></DocumentedName></Alias>
            <Alias AliasTypeID="1403" Primary="true">
              <DocumentedName DocNameStatusID="1">
                <DocumentedNamePart><NamePartValue NamePartGroupID="2">Sang  Man</NamePartValue></DocumentedNamePart>
                <DocumentedNamePart><NamePartValue NamePartGroupID="1">KIM</NamePartValue></DocumentedNamePart>
              </DocumentedName>
              <DocumentedName DocNameStatusID="2"><DocumentedNamePart><NamePartValue NamePartGroupID="4">김상만</NamePartValue></DocumentedNamePart></DocumentedName>
            </Alias>
            <NamePartGroups>
              <MasterNamePartGroup><NamePartGroup ID="1" NamePartTypeID="1520"/></MasterNamePartGroup>
              <MasterNamePartGroup><NamePartGroup ID="2" NamePartTypeID="1521"/></MasterNamePartGroup>
            </NamePartGroups>
          </Identity>
          <Feature ID="9" FeatureTypeID="345"><FeatureVersion><VersionDetail>0xb6f5ec1a0a9cd1526536d3f0426c429529471f40</VersionDetail></FeatureVersion></Feature>
        </Profile></DistinctParty>"#;
        let publication = parse(&doc(TYPES, parties, "")).expect("parses");
        assert_eq!(publication.entries.len(), 1);
        assert_eq!(publication.entries[0].entity, "KIM Sang Man");
    }

    #[test]
    fn entities_and_character_references_are_decoded() {
        let xml = doc(
            TYPES,
            &party(
                "48302",
                "Tawfiq Muhammad Sa&apos;id AL-LAW &amp; Co&#46;",
                &feature("1", "345", "0x175d44451403Edf28469dF03A9280c1197ADb92c"),
            ),
            "",
        );
        let publication = parse(&xml).expect("parses");
        assert_eq!(
            publication.entries[0].entity,
            "Tawfiq Muhammad Sa'id AL-LAW & Co."
        );

        let xml = doc(
            TYPES,
            &party("1", "A &bogus; B", &feature("1", "345", "0x1")),
            "",
        );
        let message = parse(&xml).expect_err("unknown entity").to_string();
        assert!(message.contains("unknown entity &bogus;"), "{message}");
    }

    #[test]
    fn duplicate_addresses_of_one_party_are_listed_once() {
        let features = feature("1", "344", "1JHdQHkBZiim1cb4hyUh2PbzEbbg6z2TrF")
            + &feature("2", "344", "1JHdQHkBZiim1cb4hyUh2PbzEbbg6z2TrF")
            + &feature("3", "345", "0x1");
        let publication =
            parse(&doc(TYPES, &party("44437", "SINBAD", &features), "")).expect("parses");
        let addresses: Vec<_> = publication
            .entries
            .iter()
            .map(|e| (e.address.as_str(), e.currency.as_str()))
            .collect();
        assert_eq!(
            addresses,
            vec![
                ("1JHdQHkBZiim1cb4hyUh2PbzEbbg6z2TrF", "XBT"),
                ("0x1", "ETH")
            ]
        );
    }

    #[test]
    fn empty_version_details_are_skipped() {
        let features = r#"<Feature ID="1" FeatureTypeID="344"><FeatureVersion><VersionDetail DetailTypeID="1431" DetailReferenceID="91905"/></FeatureVersion></Feature>
            <Feature ID="2" FeatureTypeID="344"><FeatureVersion><VersionDetail>   </VersionDetail></FeatureVersion></Feature>"#;
        let publication = parse(&doc(TYPES, &party("1", "X", features), "")).expect("parses");
        assert_eq!(publication.entries, vec![]);
    }

    #[test]
    fn invalid_date_of_issue_is_an_error() {
        let xml = doc(TYPES, "", "").replace("<Month>8</Month>", "<Month>13</Month>");
        let message = parse(&xml).expect_err("month 13").to_string();
        assert!(message.contains("invalid <DateOfIssue>"), "{message}");
        assert!(message.contains("<Month> is \"13\""), "{message}");

        let xml = doc(TYPES, "", "").replace("<Day>20</Day>", "");
        let message = parse(&xml).expect_err("no day").to_string();
        assert!(message.contains("missing <Day>"), "{message}");
    }

    #[test]
    fn oversized_text_nodes_are_refused() {
        // Just over the limit: caught on the text event.
        let big = "a".repeat(MAX_TEXT_BYTES + 10);
        let xml = doc(TYPES, &party("1", "X", &feature("1", "345", &big)), "");
        let err = parse(&xml).expect_err("text over 1 MiB");
        assert!(matches!(err, SdnXmlError::TextTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("VersionDetail"), "{err}");

        // Far over the limit: stopped by the reader guard before it is buffered.
        let huge = "b".repeat(4 * MAX_TEXT_BYTES);
        let xml = doc(TYPES, &party("1", "X", &feature("1", "345", &huge)), "");
        let err =
            parse_sdn_advanced(io::BufReader::new(xml.as_bytes())).expect_err("text over 4 MiB");
        assert!(matches!(err, SdnXmlError::RunTooLong { .. }), "{err}");
    }

    #[test]
    fn too_many_addresses_are_refused() {
        let limits = Limits {
            max_addresses: 2,
            max_text: MAX_TEXT_BYTES,
        };
        let features =
            feature("1", "344", "a1") + &feature("2", "344", "a2") + &feature("3", "344", "a3");
        let xml = doc(TYPES, &party("1", "X", &features), "");
        let err =
            parse_with_limits(xml.as_bytes(), limits).expect_err("3 addresses over a limit of 2");
        assert!(
            matches!(err, SdnXmlError::TooManyAddresses { limit: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("more than 2 digital currency address features"),
            "{err}"
        );

        let ok =
            feature("1", "344", "a1") + &feature("2", "25", "Havana") + &feature("3", "344", "a2");
        let publication =
            parse_with_limits(doc(TYPES, &party("1", "X", &ok), "").as_bytes(), limits)
                .expect("2 are fine");
        assert_eq!(publication.entries.len(), 2);
    }

    #[test]
    fn party_with_addresses_but_no_name_is_an_error() {
        let parties = format!(
            r#"<DistinctParty FixedRef="5"><Profile ID="5"><Identity ID="1"/>{}</Profile></DistinctParty>"#,
            feature("1", "344", "a1")
        );
        let message = parse(&doc(TYPES, &parties, ""))
            .expect_err("no name")
            .to_string();
        assert!(message.contains("DistinctParty 5"), "{message}");
    }

    #[test]
    fn missing_required_attributes_are_named() {
        let parties = r#"<DistinctParty><Profile ID="5"/></DistinctParty>"#;
        let message = parse(&doc(TYPES, parties, ""))
            .expect_err("no FixedRef")
            .to_string();
        assert!(message.contains("<DistinctParty> at byte"), "{message}");
        assert!(
            message.contains("lacks its FixedRef attribute"),
            "{message}"
        );
    }

    #[test]
    fn content_after_the_root_is_an_error() {
        let xml = format!("{}\n<Sanctions/>", doc(TYPES, "", ""));
        let message = parse(&xml).expect_err("second root").to_string();
        assert!(
            message.contains("second root element <Sanctions>"),
            "{message}"
        );

        let xml = format!("{}\ntrailing", doc(TYPES, "", ""));
        let message = parse(&xml).expect_err("trailing text").to_string();
        assert!(message.contains("text after the root element"), "{message}");
    }

    #[test]
    fn profile_id_links_programs_not_the_fixed_ref() {
        let parties = r#"<DistinctParty FixedRef="100"><Profile ID="200">
            <Identity Primary="true"><Alias Primary="true"><DocumentedName><DocumentedNamePart><NamePartValue>ENTITY</NamePartValue></DocumentedNamePart></DocumentedName></Alias></Identity>
            <Feature ID="1" FeatureTypeID="345"><FeatureVersion><VersionDetail>0x2</VersionDetail></FeatureVersion></Feature>
          </Profile></DistinctParty>"#;
        let entries = program("100", "WRONG") + &program("200", "SDGT");
        let publication = parse(&doc(TYPES, parties, &entries)).expect("parses");
        assert_eq!(
            publication.entries,
            vec![entry("0x2", "ETH", "100", "ENTITY", &["SDGT"])]
        );
    }
}
