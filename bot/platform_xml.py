"""Platform XML (PROTOCOLS.md A.5): small UTF-8 documents that never carry a DTD.

Parsed with the standard library's C-accelerated expat parser (``xml.etree``) after the
raw bytes are refused if they contain ``<!DOCTYPE`` or ``<!ENTITY`` in any case (STYLE.md):
without a DTD there is nothing to expand, so no XXE and no billion laughs. The text is
decoded as strict UTF-8 and handed to the parser as ``str``, which makes expat read it as
UTF-8 whatever its declaration says (no other encoding can hide a declaration from the
check). ``check_expat`` refuses to start on an expat older than 2.4.1.
"""

from __future__ import annotations

import pyexpat
import re
from xml.etree.ElementTree import Element, fromstring

MIN_EXPAT = (2, 4, 1)  # billion-laughs protection and the fixes of CVE-2021-45960 onwards
_DECLARATION = re.compile(rb"<!\s*(?:doctype|entity)", re.IGNORECASE)


class RefusedXML(ValueError):
    """Not acceptable platform XML: a DTD or entity declaration, not UTF-8, or not well-formed."""


def parse(body: bytes) -> Element:
    """The root element of ``body``.

    Raises:
        RefusedXML: a DOCTYPE or ENTITY declaration (refused before any parsing), text that
            is not UTF-8, or XML that is not well-formed.
    """
    if _DECLARATION.search(body):
        raise RefusedXML("DTD or entity declaration")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RefusedXML("not UTF-8") from None
    try:
        return fromstring(text)
    except Exception:  # ParseError, and anything else expat may raise on hostile input
        raise RefusedXML("not well-formed XML") from None


def check_expat() -> None:
    """Raises RuntimeError if the linked expat is older than ``MIN_EXPAT``."""
    if tuple(pyexpat.version_info) < MIN_EXPAT:
        raise RuntimeError(f"expat {pyexpat.EXPAT_VERSION} is too old to parse platform XML: "
                           f"need {'.'.join(map(str, MIN_EXPAT))} or later (upgrade Python or libexpat)")
