"""Platform XML is parsed by expat only after a DTD or entity declaration is refused on the raw bytes."""

from __future__ import annotations

from unittest import mock

import pytest

from bot import platform_xml
from bot.platform_xml import RefusedXML, check_expat, parse

HOSTILE = [
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml>&e;</xml>',
    b'<!doctype xml><xml/>',
    b'<!DoCtYpE xml><xml/>',
    b'   \n\t<!DOCTYPE xml><xml/>',
    b'\xef\xbb\xbf<!DOCTYPE xml><xml/>',
    b'<xml><a>1</a><!ENTITY e "x"></xml>',
    b'<xml><!eNtItY e "x"></xml>',
    b'<xml><a>1</a></xml><!DOCTYPE x>',
    b'<! DOCTYPE xml><xml/>',
]


@pytest.mark.parametrize("body", HOSTILE)
def test_a_declaration_anywhere_is_refused_before_the_parser(body: bytes) -> None:
    with mock.patch.object(platform_xml, "fromstring", side_effect=AssertionError("parsed")) as parser:
        with pytest.raises(RefusedXML):
            parse(body)
    parser.assert_not_called()


def test_another_encoding_cannot_hide_a_declaration() -> None:
    body = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x><xml/>'.encode("utf-16")
    with pytest.raises(RefusedXML):
        parse(body)
    with pytest.raises(RefusedXML):  # declared cp037, but read as UTF-8: not well-formed
        parse(b'<?xml version="1.0" encoding="cp037"?>' + "<xml/>".encode("cp037"))


def test_plain_documents_parse() -> None:
    root = parse('<xml><Content><![CDATA[帮助 <b>&amp;]]></Content></xml>'.encode())
    assert root.findtext("Content") == "帮助 <b>&amp;"
    assert parse(b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?><xml><a>1</a></xml>").findtext("a") == "1"
    with pytest.raises(RefusedXML):
        parse(b"<xml><a></xml>")


def test_an_old_expat_refuses_to_start() -> None:
    check_expat()
    with mock.patch.object(platform_xml.pyexpat, "version_info", (2, 4, 0)):
        with pytest.raises(RuntimeError, match="2.4.1"):
            check_expat()
