//! Op, its type, process, function and value, with the exact JSON shape of DESIGN.md, in a
//! compact in-memory form: `size_of::<Op>()` is 48 bytes (asserted below; it was 216).
//!
//! Compactness (issue #19): the fields most ops lack (`node`, `error`, `meta`, `siblings`)
//! live out of line in one optional box; a function name other than the client ones is a
//! 2-byte symbol of a process-wide interner (`F` is `Copy`); a list value is a shared thin
//! vector (one pointer; cloning it, as pairing does for every read, copies no elements) and
//! any other JSON value is boxed, so `Value` is 16 bytes; index, process
//! and key are 32-bit with explicit limits (`MAX_INDEX`, `MAX_CLIENT`, `MAX_KEY`,
//! `MAX_F_NAMES`) that the readers enforce with an error naming the line, and that
//! programmatic constructors (`Op::new`, `Process::client`) enforce with a panic naming
//! the limit: silently wrapping would corrupt a verdict.
//!
//! Serialization is hand-written: `Value` is decoded without serde's buffering `untagged`
//! machinery (a 1M-op history must parse quickly), `Process` is either an integer or the
//! string `"nemesis"`, and `Op` writes its fields in DESIGN.md's order, the optional ones
//! only when present.

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};
pub use thin_vec::ThinVec;

/// Keys are small non-negative integers in every schism workload.
pub type Key = u64;

/// Largest key an op can carry (`u32::MAX` marks "no key").
pub const MAX_KEY: Key = u32::MAX as Key - 1;

/// Largest op index (4,294,967,295 ops per history: 10 days at 5k ops/s).
pub const MAX_INDEX: u64 = u32::MAX as u64;

/// Largest client process number (`u32::MAX` is the nemesis).
pub const MAX_CLIENT: u64 = u32::MAX as u64 - 1;

/// Most distinct function names other than the client ones one process can hold.
pub const MAX_F_NAMES: usize = u16::MAX as usize;

/// A value beyond one of the limits above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("key {0} exceeds schism's limit of {MAX_KEY} keys per history")]
    Key(u64),
    #[error("index {0} exceeds schism's limit of {MAX_INDEX} ops per history")]
    Index(u64),
    #[error("process {0} exceeds schism's limit of {MAX_CLIENT} client processes")]
    Process(u64),
    #[error(
        "function {0:?} is one name too many: schism holds at most {MAX_F_NAMES} distinct function names per process"
    )]
    FNames(String),
}

/// Jepsen's op types: an `Invoke`, then exactly one completion by the same process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    /// It happened.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may take effect at any time after its invoke, or never.
    Info,
}

impl OpType {
    pub fn is_completion(self) -> bool {
        !matches!(self, OpType::Invoke)
    }
}

/// A logical client thread (Jepsen's process) or the nemesis, in 4 bytes: client numbers
/// up to `MAX_CLIENT`, and `u32::MAX` for the nemesis.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Process(u32);

impl Process {
    /// The nemesis (sorts after every client).
    pub const NEMESIS: Process = Process(u32::MAX);

    /// Client process `p`; panics beyond `MAX_CLIENT` (readers use `try_client`).
    pub fn client(p: u64) -> Process {
        Process::try_client(p).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_client(p: u64) -> Result<Process, LimitError> {
        if p <= MAX_CLIENT {
            Ok(Process(p as u32))
        } else {
            Err(LimitError::Process(p))
        }
    }

    /// The client number, or `None` for the nemesis.
    pub fn as_client(self) -> Option<u64> {
        (self != Process::NEMESIS).then_some(u64::from(self.0))
    }

    pub fn is_nemesis(self) -> bool {
        self == Process::NEMESIS
    }

    pub fn is_client(self) -> bool {
        !self.is_nemesis()
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_client() {
            Some(p) => write!(f, "Client({p})"),
            None => f.write_str("Nemesis"),
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_client() {
            Some(p) => write!(f, "{p}"),
            None => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_client() {
            Some(p) => s.serialize_u64(p),
            None => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Process::try_client(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                let v =
                    u64::try_from(v).map_err(|_| E::custom(format!("process {v} is negative")))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::NEMESIS)
                } else {
                    Err(E::custom(format!(
                        "process {v:?} is neither an integer nor \"nemesis\""
                    )))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An interned function name (`F::Other`): 2 bytes, alignment 1 so that `F` packs in 3.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sym([u8; 2]);

/// The process-wide table of function names: names are leaked once (a run or a check
/// uses a handful of nemesis names), so a `Sym` resolves to a `&'static str`.
#[derive(Default)]
struct Interner {
    names: Vec<&'static str>,
    ids: HashMap<&'static str, u16>,
}

static INTERNER: LazyLock<RwLock<Interner>> = LazyLock::new(Default::default);

impl Sym {
    /// The symbol of `name`, added to the table when new.
    pub fn intern(name: &str) -> Result<Sym, LimitError> {
        let known = INTERNER
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .ids
            .get(name)
            .copied();
        if let Some(id) = known {
            return Ok(Sym(id.to_le_bytes()));
        }
        let mut t = INTERNER.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = t.ids.get(name) {
            return Ok(Sym(id.to_le_bytes()));
        }
        if t.names.len() >= MAX_F_NAMES {
            return Err(LimitError::FNames(crate::clip(name)));
        }
        let id = t.names.len() as u16;
        let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
        t.names.push(name);
        t.ids.insert(name, id);
        Ok(Sym(id.to_le_bytes()))
    }

    pub fn as_str(self) -> &'static str {
        let t = INTERNER.read().unwrap_or_else(|e| e.into_inner());
        t.names[usize::from(u16::from_le_bytes(self.0))]
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// The function of an op. Client functions are closed; nemesis functions are free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum F {
    Read,
    Write,
    Cas,
    Append,
    Add,
    Incr,
    /// Any other name: nemesis events (`start-partition`, …) or functions a checker rejects.
    Other(Sym),
}

impl F {
    pub fn as_str(&self) -> &'static str {
        match self {
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
            F::Add => "add",
            F::Incr => "incr",
            F::Other(s) => s.as_str(),
        }
    }

    /// The function named `s`; panics past `MAX_F_NAMES` names (readers use `try_parse`).
    pub fn parse(s: &str) -> F {
        F::try_parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_parse(s: &str) -> Result<F, LimitError> {
        Ok(match s {
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            "append" => F::Append,
            "add" => F::Add,
            "incr" => F::Incr,
            other => F::Other(Sym::intern(other)?),
        })
    }

    /// True for functions that change state (everything but `read`).
    pub fn is_write(&self) -> bool {
        !matches!(self, F::Read | F::Other(_))
    }
}

impl fmt::Display for F {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for F {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = F;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a function name string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<F, E> {
                F::try_parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// An integer list value: thin (one pointer to length, capacity and elements) and shared,
/// so that pairing, which copies every read's value into its `Operation`, copies a count
/// and not the list (an append history is mostly read lists).
pub type IntList = Arc<ThinVec<i64>>;

/// The value of an op: what a write wrote, what a read returned, `[expected, new]` for cas.
/// 16 bytes: lists are one shared thin pointer (`IntList`), anything else is boxed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Value {
    /// No value: a read invocation, or a register read of a never-written key.
    #[default]
    Null,
    Int(i64),
    /// A list of integers: append/set reads, and cas as `[expected, new]`.
    List(IntList),
    /// Anything else (nemesis payloads such as partition groups), kept verbatim.
    Other(Box<serde_json::Value>),
}

impl Value {
    /// A list value.
    pub fn list(v: impl Into<ThinVec<i64>>) -> Value {
        Value::List(Arc::new(v.into()))
    }

    /// A verbatim JSON value.
    pub fn other(v: serde_json::Value) -> Value {
        Value::Other(Box::new(v))
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[i64]> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// The verbatim JSON of an `Other` value.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Value::Other(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("nil"),
            Value::Int(v) => write!(f, "{v}"),
            Value::List(v) => {
                f.write_str("[")?;
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{x}")?;
                }
                f.write_str("]")
            }
            Value::Other(v) => write!(f, "{v}"),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Int(v) => s.serialize_i64(*v),
            Value::List(v) => {
                let mut seq = s.serialize_seq(Some(v.len()))?;
                for x in v.iter() {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Value::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null, an integer, a list or an object")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                match i64::try_from(v) {
                    Ok(v) => Ok(Value::Int(v)),
                    Err(_) => Ok(Value::other(serde_json::Value::from(v))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::other(serde_json::Value::from(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::other(serde_json::Value::Bool(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::other(serde_json::Value::String(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                // Fast path: a list of integers, gathered in this thread's reused buffer and
                // then allocated once at its exact size (growing it element by element cost
                // ~log2(n) reallocations per list: every read the runner decodes and every
                // list the reader keeps). On the first non-integer, fall back to a verbatim
                // JSON array holding what was read so far plus the rest.
                let mut ints = LIST_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
                ints.clear();
                let value = loop {
                    match seq.next_element::<Element>() {
                        Err(e) => {
                            give_back(ints);
                            return Err(e);
                        }
                        Ok(None) => {
                            let mut exact = ThinVec::with_capacity(ints.len());
                            exact.extend_from_slice(&ints);
                            break Value::List(Arc::new(exact));
                        }
                        Ok(Some(Element::Int(i))) => ints.push(i),
                        Ok(Some(Element::Other(el))) => {
                            let mut all: Vec<serde_json::Value> =
                                ints.iter().map(|&i| serde_json::Value::from(i)).collect();
                            give_back(ints);
                            all.push(el);
                            while let Some(el) = seq.next_element::<serde_json::Value>()? {
                                all.push(el);
                            }
                            return Ok(Value::other(serde_json::Value::Array(all)));
                        }
                    }
                };
                give_back(ints);
                Ok(value)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Value::other(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Integers a thread's list buffer keeps between lists (a longer list's buffer is dropped).
const LIST_SCRATCH_KEPT_INTS: usize = 1 << 16;

thread_local! {
    /// The buffer `Value`'s decoder gathers a list's integers in.
    static LIST_SCRATCH: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Returns a list buffer to this thread, unless it grew past what a thread keeps.
fn give_back(ints: Vec<i64>) {
    if ints.capacity() <= LIST_SCRATCH_KEPT_INTS {
        LIST_SCRATCH.with(|s| *s.borrow_mut() = ints);
    }
}

/// One element of a list value: an integer (no JSON tree built for it, the common case),
/// or anything else kept verbatim.
enum Element {
    Int(i64),
    Other(serde_json::Value),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(i64::try_from(v).map_or(Element::Other(v.into()), Element::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Other(v.into()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
                Ok(Element::Other(serde_json::Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Element, A::Error> {
                serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(Element::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
                serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(Element::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields most ops lack, held out of line (one box per op that has any).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OpExt {
    /// Which node served it.
    pub node: Option<String>,
    pub error: Option<String>,
    /// Target facts such as a version, LSN or revision.
    pub meta: Option<serde_json::Value>,
    /// Concurrent versions a read returned (version-vector targets).
    pub siblings: Option<Vec<Value>>,
}

impl OpExt {
    const EMPTY: OpExt = OpExt {
        node: None,
        error: None,
        meta: None,
        siblings: None,
    };

    fn is_empty(&self) -> bool {
        self.node.is_none()
            && self.error.is_none()
            && self.meta.is_none()
            && self.siblings.is_none()
    }
}

/// The stored "no key".
const NO_KEY: u32 = u32::MAX;

/// One line of a history, in 48 bytes. `index`, `key` and the optional fields are read
/// through accessors (they are stored narrower than they read); `time_ns`, `process`,
/// `kind`, `f` and `value` are plain fields.
#[derive(Clone)]
pub struct Op {
    /// Monotonic nanoseconds since the run started, from the runner's one clock.
    pub time_ns: u64,
    pub value: Value,
    ext: Option<Box<OpExt>>,
    index: u32,
    pub process: Process,
    key: u32,
    pub f: F,
    pub kind: OpType,
}

impl Op {
    /// A bare op; the optional fields start empty. Panics when `index` or `key` exceed
    /// `MAX_INDEX` / `MAX_KEY` (readers check with `Op::try_new` and name the line).
    pub fn new(
        index: u64,
        time_ns: u64,
        process: Process,
        kind: OpType,
        f: F,
        key: Option<Key>,
        value: Value,
    ) -> Op {
        Op::try_new(index, time_ns, process, kind, f, key, value).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `Op::new`, or which limit the op exceeds.
    pub fn try_new(
        index: u64,
        time_ns: u64,
        process: Process,
        kind: OpType,
        f: F,
        key: Option<Key>,
        value: Value,
    ) -> Result<Op, LimitError> {
        Ok(Op {
            time_ns,
            value,
            ext: None,
            index: narrow_index(index)?,
            process,
            key: narrow_key(key)?,
            f,
            kind,
        })
    }

    /// The recorder's position of this op (strictly increasing in a history).
    pub fn index(&self) -> u64 {
        u64::from(self.index)
    }

    /// The index as stored (every index fits: `MAX_INDEX`).
    pub(crate) fn index32(&self) -> u32 {
        self.index
    }

    /// Panics beyond `MAX_INDEX`.
    pub fn set_index(&mut self, index: u64) {
        self.index = narrow_index(index).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The key the op touched, if it has one (nemesis and txn ops have none).
    pub fn key(&self) -> Option<Key> {
        (self.key != NO_KEY).then_some(Key::from(self.key))
    }

    /// Panics beyond `MAX_KEY`.
    pub fn set_key(&mut self, key: Option<Key>) {
        self.key = narrow_key(key).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Which node served it.
    pub fn node(&self) -> Option<&str> {
        self.ext_ref().node.as_deref()
    }

    pub fn error(&self) -> Option<&str> {
        self.ext_ref().error.as_deref()
    }

    /// Target facts such as a version, LSN or revision.
    pub fn meta(&self) -> Option<&serde_json::Value> {
        self.ext_ref().meta.as_ref()
    }

    /// Concurrent versions a read returned (version-vector targets).
    pub fn siblings(&self) -> Option<&[Value]> {
        self.ext_ref().siblings.as_deref()
    }

    pub fn set_node(&mut self, node: Option<String>) {
        self.with_ext(|x| x.node = node);
    }

    pub fn set_error(&mut self, error: Option<String>) {
        self.with_ext(|x| x.error = error);
    }

    pub fn set_meta(&mut self, meta: Option<serde_json::Value>) {
        self.with_ext(|x| x.meta = meta);
    }

    pub fn set_siblings(&mut self, siblings: Option<Vec<Value>>) {
        self.with_ext(|x| x.siblings = siblings);
    }

    /// The optional fields, together (empty when the op has none).
    pub fn ext_ref(&self) -> &OpExt {
        self.ext.as_deref().unwrap_or(&OpExt::EMPTY)
    }

    /// Changes the optional fields; the box exists only while one of them is set, so an
    /// op without them costs nothing out of line.
    pub fn with_ext(&mut self, change: impl FnOnce(&mut OpExt)) {
        let mut ext = self.ext.take().unwrap_or_default();
        change(&mut ext);
        if !ext.is_empty() {
            self.ext = Some(ext);
        }
    }
}

fn narrow_index(index: u64) -> Result<u32, LimitError> {
    u32::try_from(index).map_err(|_| LimitError::Index(index))
}

fn narrow_key(key: Option<Key>) -> Result<u32, LimitError> {
    match key {
        None => Ok(NO_KEY),
        Some(k) if k <= MAX_KEY => Ok(k as u32),
        Some(k) => Err(LimitError::Key(k)),
    }
}

impl PartialEq for Op {
    fn eq(&self, o: &Self) -> bool {
        self.index == o.index
            && self.time_ns == o.time_ns
            && self.process == o.process
            && self.kind == o.kind
            && self.f == o.f
            && self.key == o.key
            && self.value == o.value
            && self.ext_ref() == o.ext_ref()
    }
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Op");
        d.field("index", &self.index())
            .field("time_ns", &self.time_ns)
            .field("process", &self.process)
            .field("kind", &self.kind)
            .field("f", &self.f)
            .field("key", &self.key())
            .field("value", &self.value);
        if let Some(x) = &self.ext {
            d.field("ext", x);
        }
        d.finish()
    }
}

impl Serialize for Op {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let x = self.ext_ref();
        let optional = [
            self.key().is_some(),
            x.node.is_some(),
            x.error.is_some(),
            x.meta.is_some(),
            x.siblings.is_some(),
        ];
        let len = 6 + optional.iter().filter(|b| **b).count();
        let mut m = s.serialize_map(Some(len))?;
        m.serialize_entry("index", &self.index())?;
        m.serialize_entry("time_ns", &self.time_ns)?;
        m.serialize_entry("process", &self.process)?;
        m.serialize_entry("type", &self.kind)?;
        m.serialize_entry("f", &self.f)?;
        if let Some(k) = self.key() {
            m.serialize_entry("key", &k)?;
        }
        m.serialize_entry("value", &self.value)?;
        if let Some(v) = &x.node {
            m.serialize_entry("node", v)?;
        }
        if let Some(v) = &x.error {
            m.serialize_entry("error", v)?;
        }
        if let Some(v) = &x.meta {
            m.serialize_entry("meta", v)?;
        }
        if let Some(v) = &x.siblings {
            m.serialize_entry("siblings", v)?;
        }
        m.end()
    }
}

/// A field name of an op line; anything else is ignored, as it always was.
enum Field {
    Index,
    TimeNs,
    Process,
    Type,
    F,
    Key,
    Value,
    Node,
    Error,
    Meta,
    Siblings,
    Unknown,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "index" => Field::Index,
                    "time_ns" => Field::TimeNs,
                    "process" => Field::Process,
                    "type" => Field::Type,
                    "f" => Field::F,
                    "key" => Field::Key,
                    "value" => Field::Value,
                    "node" => Field::Node,
                    "error" => Field::Error,
                    "meta" => Field::Meta,
                    "siblings" => Field::Siblings,
                    _ => Field::Unknown,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// Stores a field's value, rejecting a second occurrence as serde's derive did.
fn once<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    slot: &mut Option<T>,
    map: &mut A,
    name: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Op;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a history op (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Op, A::Error> {
                let (mut index, mut time_ns, mut process, mut kind, mut f) =
                    (None::<u64>, None::<u64>, None, None, None);
                let (mut key, mut value) = (None::<Option<Key>>, None::<Value>);
                let mut ext = OpExt::default();
                let mut seen = [false; 4];
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Index => once(&mut index, &mut map, "index")?,
                        Field::TimeNs => once(&mut time_ns, &mut map, "time_ns")?,
                        Field::Process => once(&mut process, &mut map, "process")?,
                        Field::Type => once(&mut kind, &mut map, "type")?,
                        Field::F => once(&mut f, &mut map, "f")?,
                        Field::Key => once(&mut key, &mut map, "key")?,
                        Field::Value => once(&mut value, &mut map, "value")?,
                        Field::Node => {
                            optional(&mut seen[0], "node", &mut map, &mut ext.node)?;
                        }
                        Field::Error => {
                            optional(&mut seen[1], "error", &mut map, &mut ext.error)?;
                        }
                        Field::Meta => {
                            optional(&mut seen[2], "meta", &mut map, &mut ext.meta)?;
                        }
                        Field::Siblings => {
                            optional(&mut seen[3], "siblings", &mut map, &mut ext.siblings)?;
                        }
                        Field::Unknown => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let mut op = Op::try_new(
                    index.ok_or_else(|| de::Error::missing_field("index"))?,
                    time_ns.ok_or_else(|| de::Error::missing_field("time_ns"))?,
                    process.ok_or_else(|| de::Error::missing_field("process"))?,
                    kind.ok_or_else(|| de::Error::missing_field("type"))?,
                    f.ok_or_else(|| de::Error::missing_field("f"))?,
                    key.flatten(),
                    value.unwrap_or_default(),
                )
                .map_err(de::Error::custom)?;
                if !ext.is_empty() {
                    op.ext = Some(Box::new(ext));
                }
                Ok(op)
            }
        }
        d.deserialize_map(V)
    }
}

/// Reads an optional field (JSON `null` is absent), rejecting a second occurrence.
fn optional<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    seen: &mut bool,
    name: &'static str,
    map: &mut A,
    slot: &mut Option<T>,
) -> Result<(), A::Error> {
    if std::mem::replace(seen, true) {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = map.next_value()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn design_md_lines_round_trip() {
        let lines = [
            r#"{"index":0,"time_ns":1200,"process":3,"type":"invoke","f":"append","key":7,"value":42}"#,
            r#"{"index":1,"time_ns":830417,"process":3,"type":"ok","f":"append","key":7,"value":42,"node":"n2"}"#,
            r#"{"index":2,"time_ns":901000,"process":5,"type":"ok","f":"read","key":7,"value":[1,42],"node":"n1"}"#,
            r#"{"index":3,"time_ns":950000,"process":"nemesis","type":"info","f":"start-partition","value":{"groups":[["n1"],["n2","n3"]]}}"#,
        ];
        for line in lines {
            let op: Op = serde_json::from_str(line).unwrap();
            assert_eq!(serde_json::to_string(&op).unwrap(), line);
        }
        let op: Op = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(op.value, Value::list(vec![1, 42]));
        let op: Op = serde_json::from_str(lines[3]).unwrap();
        assert_eq!(op.process, Process::NEMESIS);
        assert_eq!(op.f.as_str(), "start-partition");
        assert_eq!(op.f, F::parse("start-partition"));
    }

    /// A decoded list is allocated at its exact size (no spare capacity kept for the whole
    /// check), and the thread's buffer is reused across lists of different lengths.
    #[test]
    fn a_decoded_list_has_its_exact_size() {
        for n in [0usize, 1, 5, 1000, 3] {
            let text = format!(
                "[{}]",
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            let Value::List(xs) = v else {
                panic!("{text} is not a list")
            };
            assert_eq!(xs.len(), n);
            assert_eq!(xs.capacity(), n, "{n} elements");
            assert!(xs.iter().copied().eq(0..n as i64));
        }
    }

    #[test]
    fn mixed_list_falls_back_to_verbatim_json() {
        let v: Value = serde_json::from_str(r#"[1,"x",3]"#).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"[1,"x",3]"#);
        let v: Value = serde_json::from_str("null").unwrap();
        assert_eq!(v, Value::Null);
    }

    /// The in-memory size of one op (BENCHMARKS.md, "History reader"): a history holds two
    /// per operation, so growth here is memory for every check (issue #19: at most 48).
    #[test]
    fn op_is_compact() {
        assert!(size_of::<Op>() <= 48, "{}", size_of::<Op>());
        assert_eq!(size_of::<Value>(), 16);
        assert!(size_of::<F>() <= 3, "{}", size_of::<F>());
        assert_eq!(size_of::<Process>(), 4);
    }

    #[test]
    fn optional_fields_round_trip_out_of_line() {
        let line = r#"{"index":4,"time_ns":7,"process":1,"type":"ok","f":"read","key":2,"value":[3],"node":"n1","error":"e","meta":{"lsn":5},"siblings":[1,[2]]}"#;
        let op: Op = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&op).unwrap(), line);
        assert_eq!(op.node(), Some("n1"));
        assert_eq!(op.siblings().map(<[Value]>::len), Some(2));
        let mut bare = op.clone();
        bare.set_node(None);
        bare.set_error(None);
        bare.set_meta(None);
        bare.set_siblings(None);
        assert!(
            bare.ext.is_none(),
            "an op without optional fields boxes nothing"
        );
        assert_ne!(bare, op);
    }

    #[test]
    fn limits_are_errors_naming_them() {
        let e = serde_json::from_str::<Op>(
            r#"{"index":0,"time_ns":0,"process":1,"type":"invoke","f":"read","key":5000000000}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("key 5000000000 exceeds schism's limit of 4294967294 keys"),
            "{e}"
        );
        let e = serde_json::from_str::<Op>(
            r#"{"index":4294967296,"time_ns":0,"process":1,"type":"invoke","f":"read"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("limit of 4294967295 ops"), "{e}");
        let e = serde_json::from_str::<Process>("4294967295").unwrap_err();
        assert!(e.to_string().contains("client processes"), "{e}");
        assert_eq!(
            Process::try_client(MAX_CLIENT).unwrap().as_client(),
            Some(MAX_CLIENT)
        );
    }

    #[test]
    fn interned_names_compare_by_name() {
        let a = F::parse("start-partition");
        let b: F = serde_json::from_str(r#""start-partition""#).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, F::parse("stop-partition"));
        assert_eq!(b.to_string(), "start-partition");
    }

    #[test]
    fn negative_process_is_rejected() {
        let e = serde_json::from_str::<Process>("-1").unwrap_err();
        assert!(e.to_string().contains("negative"), "{e}");
    }
}
