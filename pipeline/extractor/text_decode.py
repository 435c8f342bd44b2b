"""Bytes to text for fetched pages, and the cheap test that they are HTML at all.

A fetched body's declared charset is often wrong (a page saying ISO-8859-1 that
is really UTF-8 is common), while bytes that decode as strict UTF-8 almost never
are anything else. So the order is: byte-order mark, strict UTF-8, the charset the
page declares, a statistical guess, and finally UTF-8 with replacement characters:
decoding never fails, it can only get worse.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from pipeline.errors import ExtractionRejected

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_DECLARED = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([\w.:-]{1,40})"""
    rb"""|<\?xml[^>]{0,100}?encoding\s*=\s*["']([\w.:-]{1,40})""",
    re.IGNORECASE,
)
# Browsers read these labels as windows-1252 (WHATWG Encoding), a superset that
# also decodes the curly quotes such pages nearly always contain.
_AS_WINDOWS_1252 = frozenset({"ascii", "latin-1", "iso8859-1"})
_PRESCAN_BYTES = 8192
_GUESS_BYTES = 20_000
_BINARY_MAGIC = (b"%PDF-", b"\x1f\x8b", b"PK\x03\x04", b"\x89PNG", b"GIF8", b"\xff\xd8\xff")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f]")
_MARKUP = re.compile(r"<\s*(?:!doctype|html|head|body|meta|title|div|p|article|main)\b", re.I)


def decode_html(data: bytes) -> str:
    """The page as text; raises only for bytes that are plainly not a document."""
    if data.startswith(_BINARY_MAGIC):
        raise ExtractionRejected("binary content (known file signature)", reason="not_html")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return _decode_declared(data) or _decode_guessed(data) or data.decode("utf-8", "replace")


def _decode_declared(data: bytes) -> str | None:
    """The charset of a <meta> or XML declaration, if Python knows it and it fits the bytes."""
    match = _DECLARED.search(data[:_PRESCAN_BYTES])
    if match is None:
        return None
    label = (match.group(1) or match.group(2)).decode("ascii", "replace")
    try:
        encoding = codecs.lookup(label).name
    except LookupError:
        return None
    if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
        return None  # an ASCII-compatible page cannot really be UTF-16 (WHATWG rule)
    encoding = "cp1252" if encoding in _AS_WINDOWS_1252 else encoding
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _decode_guessed(data: bytes) -> str | None:
    best = from_bytes(data[:_GUESS_BYTES]).best()
    if best is None or best.encoding is None:
        return None
    return data.decode(best.encoding, errors="replace")


def check_markup(text: str) -> None:
    """Reject text that is binary or carries no HTML markup, before a parser guesses at it."""
    head = text[:4096]
    if len(_CONTROL.findall(head)) > len(head) // 100:
        raise ExtractionRejected("binary content (control characters)", reason="not_html")
    if _MARKUP.search(text) is None:
        raise ExtractionRejected("no HTML markup", reason="not_html")
