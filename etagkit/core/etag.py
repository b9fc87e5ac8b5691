"""Entity-tags (RFC 9110 §8.8.3): the ETag value object, list parsing, comparison, generation. Pure."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from binascii import b2a_base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from .._errors import ConfigurationError, InvalidETagError, SerializationError
from .headers import OWS, split_list
from .policy import DEFAULT_POLICY, ConditionalPolicy

__all__ = [
    "ETag",
    "ETagList",
    "HashAlgorithm",
    "coerce_etag",
    "etag_from_version",
    "etag_or_none",
    "generate_etag",
    "parse_etags",
]

# etagc = %x21 / %x23-7E / obs-text ; obs-text = %x80-FF   (a header str is latin-1 decoded bytes)
_ETAGC = "\x21\x23-\x7e\x80-\xff"
_OPAQUE = re.compile(f"[{_ETAGC}]*")
# entity-tag = [ weak ] opaque-tag ; weak = %s"W/" ; opaque-tag = DQUOTE *etagc DQUOTE
_ENTITY_TAG = re.compile(f'(W/)?"([{_ETAGC}]*)"')
# permissive reading: case-insensitive weak indicator, and bare (unquoted) 1*etagc tokens
_LENIENT_TAG = re.compile(f'([Ww]/)?(?:"([{_ETAGC}]*)"|([{_ETAGC}]+))')

ETagList = tuple["ETag", ...] | Literal["*"] | None
"""What :func:`parse_etags` returns: None (field absent), ``"*"``, or the valid members."""

HashAlgorithm = Literal["sha256", "sha1", "blake2b", "blake3", "xxh3"]

_DIGEST_BYTES = 16  # tags carry 128 bits: collisions stay negligible for any realistic resource set


@dataclass(frozen=True, slots=True)
class ETag:
    """An entity-tag: the opaque ``tag`` (the text between the quotes) and whether it is ``weak``.

    ``str()`` gives the header form (``"abc"`` / ``W/"abc"``) and :meth:`parse` reads it back. The
    tag may hold only etagc characters (RFC 9110 §8.8.3): anything else raises InvalidETagError.
    """

    tag: str
    weak: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.tag, str) or _OPAQUE.fullmatch(self.tag) is None:
            raise InvalidETagError(f"not an opaque-tag (RFC 9110 §8.8.3 etagc characters): {self.tag!r}")
        if not isinstance(self.weak, bool):
            raise InvalidETagError(f"weak must be a bool, not {self.weak!r}")

    def __str__(self) -> str:
        return f'W/"{self.tag}"' if self.weak else f'"{self.tag}"'

    @staticmethod
    def _checked(tag: str, weak: bool) -> ETag:
        """Build from parts a grammar regex already matched: skips re-validating the etagc run."""
        etag = _new_etag(ETag)
        _set_tag(etag, tag)
        _set_weak(etag, weak)
        return etag

    @classmethod
    def parse(cls, value: str) -> ETag:
        """Read one entity-tag in header form (surrounding OWS allowed); InvalidETagError otherwise."""
        etag = etag_or_none(value)
        if etag is None:
            raise InvalidETagError(f"not an entity-tag (RFC 9110 §8.8.3): {value!r}")
        return etag

    def strong_match(self, other: ETag) -> bool:
        """Strong comparison (§8.8.3.2): both tags strong and their opaque-tags equal."""
        return not self.weak and not other.weak and self.tag == other.tag

    def weak_match(self, other: ETag) -> bool:
        """Weak comparison (§8.8.3.2): the opaque-tags are equal, weakness of either ignored."""
        return self.tag == other.tag


_new_etag = object.__new__
# the slots' own setters: what the frozen dataclass's __init__ reaches through object.__setattr__
_set_tag: Callable[[ETag, str], None] = vars(ETag)["tag"].__set__
_set_weak: Callable[[ETag, bool], None] = vars(ETag)["weak"].__set__


def coerce_etag(etag: ETag | str | None) -> ETag | None:
    """The application's current ETag as a value; a malformed string is the caller's mistake."""
    if etag is None or isinstance(etag, ETag):
        return etag
    if isinstance(etag, str):
        return ETag.parse(etag)
    raise InvalidETagError(f"expected an ETag, its header string or None, not {etag!r}")


def etag_or_none(value: str | None) -> ETag | None:
    """A received ``ETag`` field as a value, or None when absent or not exactly one entity-tag
    (RFC 9110 §8.8.3). Never raises: for fields that come from strangers, which are ignored if bad."""
    match = _ENTITY_TAG.fullmatch(value.strip(OWS)) if isinstance(value, str) else None
    return None if match is None else ETag._checked(match.group(2), match.group(1) is not None)


def _read_member(member: str, permissive: bool) -> ETag | None:
    match = (_LENIENT_TAG if permissive else _ENTITY_TAG).fullmatch(member)
    if match is None:
        return None
    tag = match.group(2)
    return ETag._checked(tag if tag is not None else match.group(3), match.group(1) is not None)


_DEFAULT_POLICY = DEFAULT_POLICY


_MEMO_MAX_LENGTH = 256  # short field values repeat (clients revalidate the same tags): memoize them


def parse_etags(header: str | None, *, policy: ConditionalPolicy = _DEFAULT_POLICY) -> ETagList:
    """Read an If-Match / If-None-Match field value (RFC 9110 §13.1.1, §13.1.2). Never raises.

    Returns None when the field is absent or has no members at all (empty, or only commas), ``"*"``
    when ``*`` is the whole value, else the tuple of valid members in order. OWS and empty members
    are tolerated, commas inside quotes belong to the tag, ``W/`` is case-sensitive, and a malformed
    member (a bare token, ``*`` inside a list, ``w/"x"``) is ignored: it never matches. With
    ``policy.strict_field`` one malformed member voids the whole list (an empty tuple: nothing
    matches); ``policy.permissive`` accepts bare tokens and ``w/``. Work is linear in the input and
    capped by ``policy.max_field_length`` and ``policy.max_members``.
    """
    if header is None:
        return None
    if len(header) <= _MEMO_MAX_LENGTH and isinstance(header, str):
        if policy is _DEFAULT_POLICY:  # skips hashing the policy on the hot path
            return _parse_default(header)
        return _parse_short(header, policy)
    return _parse(header, policy)


def _parse_default_uncached(header: str) -> ETagList:
    return _parse(header, _DEFAULT_POLICY)


def _parse_short_uncached(header: str, policy: ConditionalPolicy) -> ETagList:
    return _parse(header, policy)


# wrapped, not decorated: mutmut does not mutate decorated functions (see [tool.mutmut] in pyproject)
_parse_default = functools.lru_cache(maxsize=2048)(_parse_default_uncached)
_parse_short = functools.lru_cache(maxsize=512)(_parse_short_uncached)


def _parse(header: str, policy: ConditionalPolicy) -> ETagList:
    value = header
    truncated = len(value) > policy.max_field_length
    if truncated:  # consider only the whole members inside the cap
        value = value[: policy.max_field_length]
        value = value[: max(value.rfind(","), 0)]
    if value.strip(OWS) == "*":
        return "*"
    tags: list[ETag] = []
    malformed = False
    for member in split_list(value, limit=policy.max_members):
        tag = _read_member(member, policy.permissive)
        if tag is None:
            malformed = True
        else:
            tags.append(tag)
    if malformed and policy.strict_field:
        return ()
    if not tags and not malformed and not truncated:
        return None
    return tuple(tags)


def _blake2b(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=_DIGEST_BYTES).digest()


def _blake3(data: bytes) -> bytes:
    try:
        from blake3 import blake3
    except ImportError:
        raise ImportError(
            "algorithm='blake3' needs the blake3 package: pip install 'etagkit[fast]'"
        ) from None
    _DIGESTS["blake3"] = lambda data: blake3(data).digest(_DIGEST_BYTES)  # imported once, not per call
    return _DIGESTS["blake3"](data)


def _xxh3(data: bytes) -> bytes:
    try:
        from xxhash import xxh3_128_digest
    except ImportError:
        raise ImportError("algorithm='xxh3' needs the xxhash package: pip install 'etagkit[fast]'") from None
    _DIGESTS["xxh3"] = xxh3_128_digest  # imported once: later calls go straight to the hash
    digest: bytes = xxh3_128_digest(data)
    return digest


_sha256 = hashlib.sha256
_sha1 = hashlib.sha1

# Each returns at least _DIGEST_BYTES bytes; the optional ones replace themselves once imported.
_LOADERS: dict[str, Callable[[bytes], bytes]] = {"blake3": _blake3, "xxh3": _xxh3}
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "sha256": lambda data: _sha256(data).digest(),
    "sha1": lambda data: _sha1(data).digest(),
    "blake2b": _blake2b,
    **_LOADERS,
}
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_TAG_CHARS = -(-_DIGEST_BYTES * 4 // 3)  # unpadded base64 length of the digest: 22


def _canonical_json(value: object) -> bytes:
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot derive an ETag from {type(value).__name__}: {exc}") from exc
    return text.encode("utf-8")


def generate_etag(body: object, *, weak: bool = False, algorithm: HashAlgorithm = "sha256") -> ETag:
    """The ETag of a representation's **identity** bytes (before any content-coding, §8.8.3).

    ``bytes``/``bytearray``/``memoryview`` are hashed as given, ``str`` as UTF-8, anything else
    through canonical JSON (sorted keys, ``,``/``:`` separators, UTF-8) so equal data gives an equal
    tag. The tag text is the first 128 bits of the digest in unpadded base64url (22 characters).
    ``sha256`` is the default: cryptographic, in hashlib, and as fast as sha1 on this hardware (SHA
    extensions); ``blake3`` is faster on large bodies and ``xxh3`` (not cryptographic: trusted content
    only) faster still; both need ``pip install 'etagkit[fast]'`` and raise ImportError naming it.
    """
    if type(body) is bytes:  # the common case first: a WSGI/ASGI body
        data = body
    elif isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, bytes | bytearray | memoryview):
        data = bytes(body)  # a snapshot: a buffer mutated later cannot change what was hashed
    else:
        data = _canonical_json(body)
    # sha256 (the default) is called inline: this fixed cost is paid per response (issue 15)
    if algorithm == "sha256":
        raw = _sha256(data).digest()
    else:
        digest = _DIGESTS.get(algorithm) if isinstance(algorithm, str) else None
        if digest is None:
            raise ConfigurationError(f"unknown algorithm {algorithm!r}; choose one of {sorted(_DIGESTS)}")
        raw = digest(data)
    # the tag: the first 128 bits in unpadded base64url (RFC 4648 §5), 22 etagc characters
    tag = b2a_base64(raw[:_DIGEST_BYTES])[:_TAG_CHARS].translate(_URLSAFE).decode()
    etag = _new_etag(ETag)  # base64url text is etagc: no re-validation (ETag._checked, inlined)
    _set_tag(etag, tag)
    _set_weak(etag, weak if weak.__class__ is bool else bool(weak))
    return etag


def _version_part(part: object) -> list[str]:
    if isinstance(part, bool):
        return ["bool", str(part)]
    if isinstance(part, int):
        return ["int", str(part)]
    if isinstance(part, str):
        return ["str", part]
    if isinstance(part, datetime):  # aware: the instant in UTC; naive: as given (still stable)
        if part.utcoffset() is None:
            return ["naive", part.isoformat()]
        return ["utc", part.astimezone(UTC).replace(tzinfo=None).isoformat()]
    if isinstance(part, date):
        return ["date", part.isoformat()]
    if isinstance(part, bytes):
        return ["bytes", part.hex()]
    raise ConfigurationError(
        f"version parts are int, str, bytes, date or datetime, not {type(part).__name__}"
    )


def etag_from_version(*parts: int | str | bytes | date | datetime, weak: bool = False) -> ETag:
    """An ETag from what identifies a version (``updated_at``, a row version, a counter) without a body.

    Equal parts give an equal tag in every process (no ``hash()`` salt, no repr): the parts are
    type-tagged, encoded as canonical JSON and hashed with sha256. Aware datetimes that denote the
    same instant give the same tag whatever their zone. The tag is strong unless ``weak``: make it
    weak if one version can be served as different bytes (e.g. several encodings of one record).
    """
    if not parts:
        raise ConfigurationError("etag_from_version needs at least one version part")
    encoded = [_version_part(part) for part in parts]
    return generate_etag(["etagkit.version", encoded], weak=weak)  # canonical JSON, sha256


def version_etag(value: object) -> ETag | None:
    """The ETag of what an application's ``etag=`` callable returned: an ``ETag`` as is, a header
    string parsed (any other string is a version), a tuple of version parts or one part hashed with
    :func:`etag_from_version`; None stays None (no current representation)."""
    if value is None or isinstance(value, ETag):
        return value
    if isinstance(value, str):
        try:
            return ETag.parse(value)
        except InvalidETagError:
            return etag_from_version(value)
    if isinstance(value, tuple):
        return etag_from_version(*value)
    return etag_from_version(value)  # type: ignore[arg-type]
