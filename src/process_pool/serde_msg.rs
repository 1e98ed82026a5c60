//! Keeping the message of a custom serde error across postcard.
//!
//! postcard's error type drops the text of `ser::Error::custom` / `de::Error::custom` (it has no room
//! for one: it is `no_std`), so a `Serialize` impl that refuses a value with "my reason" surfaced as
//! "Serde Serialization Error". These adapters stand between postcard and the user's impls: the
//! serializer and deserializer the user's code sees have [`Msg`] as their error type, which keeps the
//! text. Where a `Msg` must travel back through postcard (out of a nested value), its text waits in a
//! thread-local slot and is taken back out by the adapter one level up, so the outermost call returns
//! it. Everything else is forwarded as it is: the bytes on the wire are postcard's own, and a
//! `serialize_bytes` is still one block.
//!
//! One shortcut, which leaves the bytes unchanged: a plain `Vec<u8>` (or `[u8]`) crosses as one block
//! too. serde has no special case for it (a `Vec<u8>` is a sequence of a million separate `u8`s per
//! MiB, each a call through every layer, on both sides), but in postcard a sequence of `u8` and a byte
//! string are the same bytes: a varint length, then one byte per element. So where the type is known
//! to be exactly that ([`same_type`]), it is written with `serialize_bytes` and read with
//! `deserialize_byte_buf`: one copy each way instead of a call per byte. Writing sees every
//! `Vec<u8>` and `[u8]` (serde hands them to `collect_seq`); reading sees the type only where it is
//! named as a seed (the top-level value, an element, a field, a map value, a variant's field), not
//! inside an `Option` or a newtype struct, whose deserializers ask for a sequence with a visitor this
//! adapter cannot name: those still go byte by byte, correctly.
//!
//! A frame's tail (see `wire.rs`) is decoded here too ([`from_body`]): where a `ByteBlock`, a
//! `Vec<u8>` or any type that asks for an owned byte buffer (`deserialize_byte_buf`) reads exactly
//! the tail, it is handed the tail's own allocation instead of a copy. Anything else reading the tail
//! (a string, a borrowed read, a type that reads it piecemeal) sees the same bytes as if they had
//! stayed in the frame.

use std::any::TypeId;
use std::cell::{Cell, OnceCell, RefCell};
use std::fmt::{self, Display};
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Serialize, Serializer};

thread_local! {
    /// The text of the last custom error handed to postcard (which cannot carry it), until the
    /// adapter above takes it back.
    static PENDING: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Set just before postcard is asked for an owned byte buffer: if the bytes it takes next are
    /// exactly a frame's tail, [`Split`] hands the tail over in [`TAKEN`] instead of lending them.
    static CLAIM: Cell<bool> = const { Cell::new(false) };
    /// A tail handed over for the claim in progress, for [`Owned`] to give the visitor.
    static TAKEN: Cell<Option<Vec<u8>>> = const { Cell::new(None) };
}

/// A serde error with its message.
#[derive(Debug)]
pub(crate) struct Msg(pub(crate) String);

impl Display for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Msg {}

impl ser::Error for Msg {
    fn custom<T: Display>(msg: T) -> Self {
        Msg(msg.to_string())
    }
}

impl de::Error for Msg {
    fn custom<T: Display>(msg: T) -> Self {
        Msg(msg.to_string())
    }
}

/// An error coming back out of postcard: the custom message it dropped, if one is pending, else its
/// own text.
fn lift<E: Display>(e: E) -> Msg {
    match PENDING.with(|p| p.borrow_mut().take()) {
        Some(text) => Msg(text),
        None => Msg(e.to_string()),
    }
}

fn lower_ser<E: ser::Error>(m: Msg) -> E {
    let e = E::custom(&m.0);
    PENDING.with(|p| *p.borrow_mut() = Some(m.0));
    e
}

fn lower_de<E: de::Error>(m: Msg) -> E {
    let e = E::custom(&m.0);
    PENDING.with(|p| *p.borrow_mut() = Some(m.0));
    e
}

/// Runs one top-level encode or decode with empty slots, and leaves them empty.
fn fresh<T>(f: impl FnOnce() -> T) -> T {
    let clear = || {
        PENDING.with(|p| *p.borrow_mut() = None);
        CLAIM.with(|c| c.set(false));
        TAKEN.with(|t| t.set(None));
    };
    clear();
    let out = f();
    clear();
    out
}

/// `postcard::serialize_with_flavor`, keeping a custom error's message.
pub(crate) fn serialize<T, F>(value: &T, flavor: F) -> Result<F::Output, Msg>
where
    T: Serialize + ?Sized,
    F: postcard::ser_flavors::Flavor,
{
    fresh(|| postcard::serialize_with_flavor(&Wrap(value), flavor).map_err(lift))
}

/// `postcard::from_bytes`, keeping a custom error's message.
pub(crate) fn from_bytes<'de, T: de::Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, Msg> {
    fresh(|| top(postcard::Deserializer::from_bytes(bytes)))
}

/// Decodes the payload `head` followed by a frame's `tail` (see the module docs), keeping a custom
/// error's message.
pub(crate) fn from_body<T: de::DeserializeOwned>(head: &[u8], tail: Vec<u8>) -> Result<T, Msg> {
    if tail.is_empty() {
        return from_bytes(head);
    }
    let tail = Tail {
        len: tail.len(),
        whole: Cell::new(Some(tail)),
        lent: OnceCell::new(),
    };
    fresh(|| {
        top(postcard::Deserializer::from_flavor(Split {
            head,
            tail: &tail,
            rest: &[],
        }))
    })
}

/// Deserializes the top-level value.
fn top<'de, T, F>(mut d: postcard::Deserializer<'de, F>) -> Result<T, Msg>
where
    T: de::Deserialize<'de>,
    F: postcard::de_flavors::Flavor<'de>,
{
    // A `Vec<u8>` at the top (a task's argument or result) is read in one block.
    if same_type::<T, Vec<u8>>() {
        return ByteRun
            .deserialize(&mut d)
            .map(from_byte_vec::<T>)
            .map_err(lift);
    }
    T::deserialize(De(&mut d))
}

// ---- a frame's tail -----------------------------------------------------------------------------

/// A frame's tail while its payload is decoded: whole until someone reads it.
struct Tail {
    len: usize,
    /// The tail's allocation, until it is handed over (a claim) or lent.
    whole: Cell<Option<Vec<u8>>>,
    /// Where the tail goes when it is read any other way: its bytes are lent from here (the
    /// allocation moves, no byte is copied), joined to what was left of the head if a read spans
    /// both (a reader that does not match the writer: correct, not fast).
    lent: OnceCell<Vec<u8>>,
}

/// postcard's input: the head, then the tail.
struct Split<'de> {
    head: &'de [u8],
    tail: &'de Tail,
    /// What is left of the lent tail, once reading has moved into it.
    rest: &'de [u8],
}

impl<'de> Split<'de> {
    /// Moves reading into the lent tail (joined to what is left of the head), once.
    fn enter_tail(&mut self) {
        if self.tail.lent.get().is_some() {
            return;
        }
        let whole = self.tail.whole.take().unwrap_or_default();
        let joined = if self.head.is_empty() {
            whole
        } else {
            [self.head, &whole].concat()
        };
        self.head = &[];
        self.rest = self.tail.lent.get_or_init(|| joined);
    }
}

impl<'de> postcard::de_flavors::Flavor<'de> for Split<'de> {
    type Remainder = ();
    type Source = ();

    fn pop(&mut self) -> postcard::Result<u8> {
        if self.head.is_empty() {
            self.enter_tail();
            let (&b, rest) = self
                .rest
                .split_first()
                .ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
            self.rest = rest;
            return Ok(b);
        }
        let (&b, head) = self.head.split_first().expect("not empty");
        self.head = head;
        Ok(b)
    }

    fn try_take_n(&mut self, ct: usize) -> postcard::Result<&'de [u8]> {
        CLAIM.with(|c| c.set(false));
        if ct <= self.head.len() {
            let (taken, head) = self.head.split_at(ct);
            self.head = head;
            return Ok(taken);
        }
        self.enter_tail();
        if ct > self.rest.len() {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let (taken, rest) = self.rest.split_at(ct);
        self.rest = rest;
        Ok(taken)
    }

    fn try_take_n_temp<'a>(&'a mut self, ct: usize) -> postcard::Result<&'a [u8]>
    where
        'de: 'a,
    {
        // The owned byte buffer being claimed is exactly the untouched tail: hand it over.
        if CLAIM.with(|c| c.replace(false)) && self.head.is_empty() && ct == self.tail.len {
            if let Some(whole) = self.tail.whole.take() {
                TAKEN.with(|t| t.set(Some(whole)));
                return Ok(&[]);
            }
        }
        self.try_take_n(ct)
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Asks `d` for an owned byte buffer for `visitor`, claiming a frame's tail if that is what it reads.
fn claim_byte_buf<'de, D, V>(d: D, visitor: V) -> Result<V::Value, D::Error>
where
    D: Deserializer<'de>,
    V: Visitor<'de>,
{
    CLAIM.with(|c| c.set(true));
    let out = d.deserialize_byte_buf(Owned(visitor));
    CLAIM.with(|c| c.set(false));
    TAKEN.with(|t| t.set(None));
    out
}

/// A visitor of an owned byte buffer that gives it the claimed tail (see [`claim_byte_buf`]) when
/// there is one.
struct Owned<V>(V);

impl<'de, V: Visitor<'de>> Visitor<'de> for Owned<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        match TAKEN.with(|t| t.take()) {
            Some(whole) => self.0.visit_byte_buf(whole),
            None => self.0.visit_bytes(v),
        }
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        match TAKEN.with(|t| t.take()) {
            Some(whole) => self.0.visit_byte_buf(whole),
            None => self.0.visit_borrowed_bytes(v),
        }
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
        self.0.visit_byte_buf(v)
    }
}

// ---- the `Vec<u8>` shortcut ----------------------------------------------------------------------

/// The `TypeId` of any type, `'static` or not, with its lifetimes erased (as the `typeid` crate does,
/// which `erased-serde` uses): `&'a [u8]` and `&'static [u8]` get the same id. That is all the
/// shortcut needs: a type is recognised as a byte vector or slice whatever its lifetime.
trait NonStaticAny {
    fn erased_type_id(&self) -> TypeId
    where
        Self: 'static;
}

impl<T: ?Sized> NonStaticAny for PhantomData<T> {
    fn erased_type_id(&self) -> TypeId
    where
        Self: 'static,
    {
        TypeId::of::<T>()
    }
}

fn type_id_of<T: ?Sized>() -> TypeId {
    let phantom = PhantomData::<T>;
    let any: &dyn NonStaticAny = &phantom;
    // SAFETY: only the lifetime bound of the trait object changes; the vtable is `PhantomData<T>`'s,
    // whose `type_id` reads nothing (a `PhantomData` holds no data, and no value of `T` is involved).
    // This is the `typeid` crate's construction.
    #[allow(unsafe_code)]
    let any =
        unsafe { std::mem::transmute::<&dyn NonStaticAny, &(dyn NonStaticAny + 'static)>(any) };
    // Named in full: `dyn NonStaticAny + 'static` is also `Any`, whose `type_id` is the trait
    // object's own, the same for every `T`.
    NonStaticAny::erased_type_id(any)
}

/// Whether `A` and `B` are the same type, up to lifetimes.
fn same_type<A: ?Sized, B: ?Sized>() -> bool {
    type_id_of::<A>() == type_id_of::<B>()
}

/// Moves a value of type `A` into type `B`.
///
/// # Safety
///
/// `A` and `B` must be the same type up to lifetimes (what [`same_type`] checks, and this asserts),
/// and the caller must not use the result beyond any lifetime inside `A`: the check cannot see
/// lifetimes, so `&'a [u8]` into `&'static [u8]` would pass it. An owned `Vec<u8>` has no lifetime,
/// so that cast always keeps the contract.
#[allow(unsafe_code)]
unsafe fn cast_same<A, B>(a: A) -> B {
    assert!(same_type::<A, B>(), "cast_same between different types");
    let a = std::mem::ManuallyDrop::new(a);
    // SAFETY: `A` and `B` are the same type up to lifetimes (checked above; the check is on constants
    // and folds away), and the caller keeps the result within `A`'s lifetimes, so this is a move of
    // the value; `a` is not dropped, so it is not dropped twice.
    unsafe { std::mem::transmute_copy::<A, B>(&a) }
}

/// [`cast_same`] from an owned `Vec<u8>`, which has no lifetime to outlive.
fn from_byte_vec<B>(v: Vec<u8>) -> B {
    // SAFETY: `Vec<u8>` has no lifetime parameter, so the only type `same_type` (asserted inside)
    // finds equal to it is `Vec<u8>` itself, and nothing can be outlived.
    #[allow(unsafe_code)]
    unsafe {
        cast_same::<Vec<u8>, B>(v)
    }
}

/// A `Vec<u8>` read as one block: postcard's byte string, which is the very encoding of a sequence of
/// `u8` (see the module docs).
struct ByteRun;

impl<'de> DeserializeSeed<'de> for ByteRun {
    type Value = Vec<u8>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        claim_byte_buf(d, ByteRun)
    }
}

impl<'de> Visitor<'de> for ByteRun {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of bytes")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// Where a seed is `PhantomData<Vec<u8>>` (what `next_element::<Vec<u8>>()`, a struct's field or a
/// map's value asks for), reads it as one block; otherwise deserializes it through [`Seed`].
fn next_seed<'de, S, R, E>(seed: S, read: impl FnOnce(Either<S>) -> Result<R, E>) -> Result<R, E>
where
    S: DeserializeSeed<'de>,
{
    if same_type::<S, PhantomData<Vec<u8>>>() {
        read(Either::Bytes)
    } else {
        read(Either::Other(Seed(seed)))
    }
}

/// The seed [`next_seed`] hands on: the block reader or the caller's own.
enum Either<S> {
    Bytes,
    Other(Seed<S>),
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Either<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        match self {
            // `S` is `PhantomData<Vec<u8>>`, so `S::Value` is `Vec<u8>`.
            Either::Bytes => ByteRun.deserialize(d).map(from_byte_vec::<S::Value>),
            Either::Other(seed) => seed.deserialize(d),
        }
    }
}

// ---- serializing --------------------------------------------------------------------------------

/// A value to serialize through [`Ser`].
struct Wrap<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Ser(s)).map_err(lower_ser)
    }
}

/// A serializer whose error is [`Msg`], forwarding to `S`.
struct Ser<S>(S);

/// A compound serializer (sequence, map, struct, …) forwarding to `C`.
struct Compound<C>(C);

macro_rules! forward_ser {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method(self, $($arg: $ty),*) -> Result<S::Ok, Msg> {
            self.0.$method($($arg),*).map_err(lift)
        })*
    };
}

impl<S: Serializer> Serializer for Ser<S> {
    type Ok = S::Ok;
    type Error = Msg;
    type SerializeSeq = Compound<S::SerializeSeq>;
    type SerializeTuple = Compound<S::SerializeTuple>;
    type SerializeTupleStruct = Compound<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compound<S::SerializeTupleVariant>;
    type SerializeMap = Compound<S::SerializeMap>;
    type SerializeStruct = Compound<S::SerializeStruct>;
    type SerializeStructVariant = Compound<S::SerializeStructVariant>;

    forward_ser! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<S::Ok, Msg> {
        self.0.serialize_some(&Wrap(v)).map_err(lift)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, Msg> {
        self.0
            .serialize_newtype_struct(name, &Wrap(v))
            .map_err(lift)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, Msg> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Wrap(v))
            .map_err(lift)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, Msg> {
        self.0.serialize_seq(len).map(Compound).map_err(lift)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, Msg> {
        self.0.serialize_tuple(len).map(Compound).map_err(lift)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, Msg> {
        self.0
            .serialize_tuple_struct(name, len)
            .map(Compound)
            .map_err(lift)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, Msg> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Compound)
            .map_err(lift)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Msg> {
        self.0.serialize_map(len).map(Compound).map_err(lift)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Msg> {
        self.0
            .serialize_struct(name, len)
            .map(Compound)
            .map_err(lift)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, Msg> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Compound)
            .map_err(lift)
    }

    fn collect_seq<I>(self, iter: I) -> Result<S::Ok, Msg>
    where
        I: IntoIterator,
        I::Item: Serialize,
    {
        // serde's `Vec<u8>` and `[u8]` (and `Box<[u8]>`, `Cow<[u8]>`, through `[u8]`) get here with a
        // reference to themselves: one block (see the module docs).
        if same_type::<I, &Vec<u8>>() {
            // SAFETY: `I` is `&Vec<u8>` up to lifetimes, and `v` is used only inside this call, while
            // the borrowed vector (which outlives the call) is alive.
            #[allow(unsafe_code)]
            let v: &Vec<u8> = unsafe { cast_same(iter) };
            return self.0.serialize_bytes(v).map_err(lift);
        }
        if same_type::<I, &[u8]>() {
            // SAFETY: as above, for `&[u8]`.
            #[allow(unsafe_code)]
            let v: &[u8] = unsafe { cast_same(iter) };
            return self.0.serialize_bytes(v).map_err(lift);
        }
        // What serde's own `collect_seq` does, element by element.
        let iter = iter.into_iter();
        let len = match iter.size_hint() {
            (lo, Some(hi)) if lo == hi => Some(lo),
            _ => None,
        };
        let mut seq = self.serialize_seq(len)?;
        for item in iter {
            ser::SerializeSeq::serialize_element(&mut seq, &item)?;
        }
        ser::SerializeSeq::end(seq)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! compound {
    ($trait:ident, $($method:ident($($key:ident: $kty:ty),*));*) => {
        impl<C: ser::$trait> ser::$trait for Compound<C> {
            type Ok = C::Ok;
            type Error = Msg;
            $(fn $method<T: Serialize + ?Sized>(&mut self, $($key: $kty,)* v: &T) -> Result<(), Msg> {
                self.0.$method($($key,)* &Wrap(v)).map_err(lift)
            })*
            fn end(self) -> Result<C::Ok, Msg> {
                self.0.end().map_err(lift)
            }
        }
    };
}

compound!(SerializeSeq, serialize_element());
compound!(SerializeTuple, serialize_element());
compound!(SerializeTupleStruct, serialize_field());
compound!(SerializeTupleVariant, serialize_field());
compound!(SerializeStruct, serialize_field(key: &'static str));
compound!(SerializeStructVariant, serialize_field(key: &'static str));

impl<C: ser::SerializeMap> ser::SerializeMap for Compound<C> {
    type Ok = C::Ok;
    type Error = Msg;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Msg> {
        self.0.serialize_key(&Wrap(k)).map_err(lift)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Msg> {
        self.0.serialize_value(&Wrap(v)).map_err(lift)
    }
    fn end(self) -> Result<C::Ok, Msg> {
        self.0.end().map_err(lift)
    }
}

// ---- deserializing ------------------------------------------------------------------------------

/// A deserializer whose error is [`Msg`], forwarding to `D`.
struct De<D>(D);

/// A visitor handing the user's visitor [`Msg`]-erroring accessors.
struct Vis<V>(V);

/// A seed deserializing through [`De`].
struct Seed<S>(S);

/// A sequence, map, enum or variant accessor forwarding to `A`.
struct Access<A>(A);

macro_rules! forward_de {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* v: V) -> Result<V::Value, Msg> {
            self.0.$method($($arg,)* Vis(v)).map_err(lift)
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for De<D> {
    type Error = Msg;

    forward_de! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Msg> {
        claim_byte_buf(self.0, Vis(v)).map_err(lift)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method::<Msg>(v).map_err(lower_de)
        })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Vis<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none::<Msg>().map_err(lower_de)
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit::<Msg>().map_err(lower_de)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(De(d)).map_err(lower_de)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(De(d)).map_err(lower_de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Access(a)).map_err(lower_de)
    }

    fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Access(a)).map_err(lower_de)
    }

    fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Access(a)).map_err(lower_de)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(De(d)).map_err(lower_de)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
    type Error = Msg;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Msg> {
        next_seed(seed, |s| self.0.next_element_seed(s)).map_err(lift)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
    type Error = Msg;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Msg> {
        self.0.next_key_seed(Seed(seed)).map_err(lift)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Msg> {
        next_seed(seed, |s| self.0.next_value_seed(s)).map_err(lift)
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
    type Error = Msg;
    type Variant = Access<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), Msg> {
        self.0
            .variant_seed(Seed(seed))
            .map(|(value, variant)| (value, Access(variant)))
            .map_err(lift)
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<A> {
    type Error = Msg;

    fn unit_variant(self) -> Result<(), Msg> {
        self.0.unit_variant().map_err(lift)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Msg> {
        next_seed(seed, |s| self.0.newtype_variant_seed(s)).map_err(lift)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Msg> {
        self.0.tuple_variant(len, Vis(v)).map_err(lift)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Msg> {
        self.0.struct_variant(fields, Vis(v)).map_err(lift)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// Refuses to serialize, and to deserialize from anything but 7.
    #[derive(Debug, PartialEq)]
    struct Picky(u8);

    impl Serialize for Picky {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 == 0 {
                return Err(ser::Error::custom("my reason: zero"));
            }
            s.serialize_u8(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            match u8::deserialize(d)? {
                7 => Ok(Picky(7)),
                n => Err(de::Error::custom(format!("my reason: {n} is not 7"))),
            }
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        New(Picky),
        Tuple(u8, Picky),
        Struct { a: Vec<Picky>, b: Option<Picky> },
    }

    fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, Msg> {
        serialize(v, postcard::ser_flavors::StdVec::new())
    }

    #[test]
    fn the_wire_is_postcards_own() {
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), (1u64, -2i32, 3.5f64, 'c'));
        let value = (
            vec![Shape::Unit, Shape::New(Picky(7)), Shape::Tuple(1, Picky(7))],
            Shape::Struct {
                a: vec![Picky(7)],
                b: Some(Picky(7)),
            },
            map,
            (),
            Some("text"),
            &b"bytes"[..],
        );
        let ours = encode(&value).unwrap();
        assert_eq!(ours, postcard::to_stdvec(&value).unwrap());
        type Back = (
            Vec<Shape>,
            Shape,
            BTreeMap<String, (u64, i32, f64, char)>,
            (),
            Option<String>,
            crate::ByteBlock,
        );
        let back: Back = from_bytes(&ours).unwrap();
        let plain: Back = postcard::from_bytes(&ours).unwrap();
        assert_eq!(back, plain);
    }

    /// Every place a `Vec<u8>` or `[u8]` can sit: at the top, in a sequence, a tuple, a struct (as a
    /// sequence, postcard's encoding of structs), a map's value, an enum's newtype variant, an option.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Holder {
        Bytes(Vec<u8>),
        Fields {
            a: Vec<u8>,
            b: u16,
            c: Option<Vec<u8>>,
        },
    }

    type Nest = (
        Vec<Vec<u8>>,
        BTreeMap<String, Vec<u8>>,
        Vec<Holder>,
        Box<[u8]>,
        Vec<u16>,
        Vec<i8>,
    );

    fn nest() -> Nest {
        let bytes: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), bytes.clone());
        map.insert("empty".to_string(), Vec::new());
        (
            vec![bytes.clone(), vec![], vec![7]],
            map,
            vec![
                Holder::Bytes(bytes.clone()),
                Holder::Fields {
                    a: bytes[..300].to_vec(),
                    b: 300,
                    c: Some(vec![1, 2, 3]),
                },
            ],
            bytes[..129].to_vec().into_boxed_slice(),
            vec![1, 300, 65535],
            vec![-1, 0, 1],
        )
    }

    #[test]
    fn byte_vectors_keep_postcards_bytes() {
        let value = nest();
        let ours = encode(&value).unwrap();
        assert_eq!(ours, postcard::to_stdvec(&value).unwrap());
        let back: Nest = from_bytes(&ours).unwrap();
        assert_eq!(back, value);
        let top: Vec<u8> = (0..=255).collect();
        let ours = encode(&top).unwrap();
        assert_eq!(ours, postcard::to_stdvec(&top).unwrap());
        assert_eq!(encode(&top[..]).unwrap(), ours);
        assert_eq!(from_bytes::<Vec<u8>>(&ours).unwrap(), top);
        // Cut short anywhere, the shortcut fails as postcard's own decoding does.
        for cut in [0, 1, 2, ours.len() - 1] {
            assert!(from_bytes::<Vec<u8>>(&ours[..cut]).is_err(), "cut at {cut}");
            assert!(postcard::from_bytes::<Vec<u8>>(&ours[..cut]).is_err());
        }
    }

    /// A flavor that counts how the bytes reach it: one push per byte, or blocks.
    #[derive(Default)]
    struct Counting {
        pushes: usize,
        blocks: usize,
    }

    impl postcard::ser_flavors::Flavor for &mut Counting {
        type Output = ();
        fn try_push(&mut self, _: u8) -> postcard::Result<()> {
            self.pushes += 1;
            Ok(())
        }
        fn try_extend(&mut self, _: &[u8]) -> postcard::Result<()> {
            self.blocks += 1;
            Ok(())
        }
        fn finalize(self) -> postcard::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_byte_vector_is_written_as_one_block() {
        let mut count = Counting::default();
        serialize(&vec![5u8; 10_000], &mut count).unwrap();
        // The varint length, then the body in one piece (not 10000 single bytes).
        assert_eq!((count.pushes, count.blocks), (0, 2));
        // Other element types still go one by one.
        let mut count = Counting::default();
        serialize(&vec![5i8; 100], &mut count).unwrap();
        assert!(count.pushes >= 100, "{} pushes", count.pushes);
    }

    #[test]
    fn types_are_told_apart_whatever_their_lifetimes() {
        assert!(same_type::<Vec<u8>, Vec<u8>>());
        assert!(!same_type::<Vec<u8>, Vec<i8>>());
        assert!(!same_type::<Vec<u8>, crate::ByteBlock>());
        let local = [1u8, 2];
        fn slice_of<T: ?Sized>(_: &T) -> bool {
            same_type::<&T, &'static [u8]>()
        }
        assert!(slice_of(&local[..]));
        assert!(!slice_of(&[1u16][..]));
        assert!(!same_type::<&[u8], &Vec<u8>>());
        assert!(!same_type::<PhantomData<Vec<u8>>, PhantomData<Vec<u16>>>());
    }

    #[test]
    fn custom_messages_survive_at_any_depth() {
        for value in [
            Shape::New(Picky(0)),
            Shape::Tuple(1, Picky(0)),
            Shape::Struct {
                a: vec![Picky(7), Picky(0)],
                b: None,
            },
            Shape::Struct {
                a: vec![],
                b: Some(Picky(0)),
            },
        ] {
            let e = encode(&vec![value]).unwrap_err();
            assert_eq!(e.0, "my reason: zero");
        }
        let bytes = postcard::to_stdvec(&Shape::Struct {
            a: vec![],
            b: Some(Picky(7)),
        })
        .unwrap();
        assert!(from_bytes::<Shape>(&bytes).is_ok());
        // The same bytes with 5 where the 7 was.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 5;
        let e = from_bytes::<Shape>(&bad).unwrap_err();
        assert_eq!(e.0, "my reason: 5 is not 7");
        // postcard's own errors keep their text, and nothing is left over for the next call.
        let e = from_bytes::<Shape>(&[]).unwrap_err();
        assert!(!e.0.contains("my reason"), "{e}");
    }

    /// The payload of `v` split as a frame carries it: (head, tail).
    fn split<T: Serialize>(v: &T) -> (Vec<u8>, Vec<u8>) {
        let mut out = Vec::new();
        let tail = crate::process_pool::wire::encode_into(v, &mut out).unwrap();
        let tail_bytes = out.split_off(out.len() - tail);
        (out, tail_bytes)
    }

    #[test]
    fn a_tail_read_as_an_owned_buffer_is_handed_over() {
        let block: Vec<u8> = (0..=255).cycle().take(100_000).collect();
        let (head, tail) = split(&(3u8, crate::ByteBlock::from(block.clone())));
        assert_eq!(tail, block);
        let at = tail.as_ptr();
        let (n, got): (u8, crate::ByteBlock) = from_body(&head, tail).unwrap();
        assert_eq!((n, &got[..]), (3, &block[..]));
        assert_eq!(got.as_ptr(), at);
        // A plain `Vec<u8>`, at the top and as a field.
        let (head, tail) = split(&block);
        let at = tail.as_ptr();
        let got: Vec<u8> = from_body(&head, tail).unwrap();
        assert!(got == block && got.as_ptr() == at);
        let (head, tail) = split(&("x", block.clone()));
        let at = tail.as_ptr();
        let got: (String, Vec<u8>) = from_body(&head, tail).unwrap();
        assert!(got.1 == block && got.1.as_ptr() == at);
    }

    #[test]
    fn a_tail_read_any_other_way_gives_what_the_whole_payload_gives() {
        // The tail only says where bytes go: any reader, matching the writer or not, decodes the
        // split payload exactly as the joined one, to the same value or the same error.
        fn same<T: de::DeserializeOwned + PartialEq + fmt::Debug>(head: &[u8], tail: &[u8]) {
            let whole = [head, tail].concat();
            let joined = from_bytes::<T>(&whole).map_err(|e| e.0);
            let split = from_body::<T>(head, tail.to_vec()).map_err(|e| e.0);
            assert_eq!(split, joined, "{}", std::any::type_name::<T>());
        }
        let block: Vec<u8> = (0..=255).cycle().take(70_000).collect();
        let text = "tail ß ".repeat(10_000);
        let values: Vec<(Vec<u8>, Vec<u8>)> = vec![
            split(&(1u16, crate::ByteBlock::from(block.clone()))),
            split(&block),
            split(&text),
            split(&(9u8, text.clone())),
        ];
        for (head, tail) in &values {
            assert!(tail.len() >= crate::process_pool::wire::TAIL_MIN);
            same::<(u16, crate::ByteBlock)>(head, tail);
            same::<(u16, Vec<u8>)>(head, tail);
            same::<Vec<u8>>(head, tail);
            same::<crate::ByteBlock>(head, tail);
            same::<String>(head, tail);
            same::<(u8, String)>(head, tail);
            same::<Option<Vec<u8>>>(head, tail);
            same::<(u8, u8, u8, crate::ByteBlock)>(head, tail);
            same::<Vec<u16>>(head, tail);
            same::<(u16, [u8; 4], u64)>(head, tail);
            // A tail cut short or left whole but with a head that lies about it.
            same::<(u16, crate::ByteBlock)>(head, &tail[..tail.len() - 1]);
            same::<Vec<u8>>(&head[..head.len().saturating_sub(1)], tail);
        }
    }
}
