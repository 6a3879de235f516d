"""Hostile input for the fuzz tests (``tests/fuzz/``): hypothesis strategies for
bodies, headers and query strings, XML bombs, mutations of genuine deliveries, a raw
HTTP/1.1 client that sends exactly the bytes it is given, and a cheap fingerprint of
the database to prove that a refused request wrote nothing."""

from __future__ import annotations

import asyncio
import json
import re
import time

from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (every table registered in the metadata)

# ----- the database, before and after ---------------------------------------------------------------------------------


def _count_query() -> str:
    tables = [t.name for t in SQLModel.metadata.sorted_tables]
    return "SELECT " + ", ".join(f'(SELECT count(*) FROM "{name}") AS "{name}"' for name in tables)


COUNT_ALL = _count_query()


def row_counts(engine: Engine) -> dict[str, int]:
    """The number of rows in every table, in one round trip."""
    with engine.connect() as connection:
        return dict(connection.execute(text(COUNT_ALL)).mappings().one())


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Tables whose row count changed, and by how much."""
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


# ----- a raw HTTP/1.1 client ------------------------------------------------------------------------------------------


class RawResponse:
    def __init__(self, status: int, head: bytes, body: bytes) -> None:
        self.status, self.head, self.body = status, head, body

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:200]!r}>"


async def raw_request(
    client, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]] = (), body: bytes = b"", *,
    chunks: list[bytes] | None = None, content_length: bool = True, timeout: float = 10.0,
) -> RawResponse:
    """Send exactly this request (target, header bytes and all) to the test server and
    read the answer; ``chunks`` sends the body chunked, without a Content-Length.

    Raises:
        AssertionError: the server did not answer within ``timeout`` (a hang).
    """
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        head = [method + b" " + target + b" HTTP/1.1", b"Host: fuzz.test", b"Connection: close"]
        head += [name + b": " + value for name, value in headers]
        if chunks is not None:
            head.append(b"Transfer-Encoding: chunked")
            payload = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks if chunk) + b"0\r\n\r\n"
        else:
            if content_length:
                head.append(b"Content-Length: %d" % len(body))
            payload = body
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + payload)
        try:
            async with asyncio.timeout(timeout):
                try:
                    await writer.drain()
                except ConnectionError:  # refused unread: the answer may still be there to read
                    pass
                return await _read_answer(reader, method)
        except TimeoutError:
            raise AssertionError(f"no answer within {timeout} s to {method!r} {target[:200]!r}") from None
    finally:
        writer.close()


async def _read_answer(reader: asyncio.StreamReader, method: bytes) -> RawResponse:
    """The first final answer, read as far as its length says (the server may linger
    before closing a connection whose request body it did not read)."""
    buffer = b""

    async def more() -> bytes:
        try:
            return await reader.read(65536)
        except ConnectionError:  # closed after answering, with our body unread
            return b""

    while True:
        while b"\r\n\r\n" not in buffer:
            chunk = await more()
            assert chunk, f"the connection closed before an answer: {buffer[:200]!r}"
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        match = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        assert match, f"not an HTTP answer: {buffer[:200]!r}"
        status = int(match.group(1))
        if not 100 <= status < 200:
            break
        buffer = rest  # an interim answer (100 Continue): the real one follows
    length = re.search(rb"(?im)^content-length:[ \t]*(\d+)", head)
    if method == b"HEAD" or status in (204, 304):
        return RawResponse(status, head, b"")
    while True:
        if length and len(rest) >= int(length.group(1)):
            break
        if not length and re.search(rb"(?im)^transfer-encoding:[ \t]*chunked", head) and rest.endswith(b"0\r\n\r\n"):
            break
        chunk = await more()
        if not chunk:
            break
        rest += chunk
    return RawResponse(status, head, rest)


# ----- text and JSON --------------------------------------------------------------------------------------------------

#: Text a person (or an attacker) might type: all of Unicode but surrogates, with the
#: characters that matter to the parsers and the databases made more likely.
SPECIAL = ["\x00", "\u3000", "\ufeff", "\u200b", "\r", "\n", "\t", "=", "＝", '"', "“", "”", "「", "」", "/", "／",
           "@", "\\", "%", "_", "|", ":", ";", "；", ",", "，", "、", "(", "（", "<", ">", "&", "'", "²", "٣", "𝟗",
           "\U0001f600", "\u0301", "\u202e"]
hostile_text = st.text(st.characters(exclude_categories=("Cs",)) | st.sampled_from(SPECIAL), max_size=40)


json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**300])
    | st.floats() | hostile_text
)


def json_values(max_leaves: int = 12):
    """Any JSON value: scalars, lists and objects nested a few levels."""
    return st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(hostile_text, inner, max_size=4), max_leaves=max_leaves)


def dumps(value) -> bytes:
    """JSON as a platform would send it (NaN and Infinity are what Python's json makes of them)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


#: Bodies that are not JSON (or not UTF-8, or JSON spelling what no database column takes).
broken_json = st.sampled_from([
    b"", b" ", b"{", b"}", b"[", b"null", b"true", b"0", b"-1e999", b'"x"', b"[]", b"{}", b"{,}", b'{"a":}',
    b"\xff\xfe{\x00}\x00", b"\xef\xbb\xbf{}", b'{"a": "\xff"}', b'{"a": "\xc3\x28"}', b'{"a": "\xed\xa0\x80"}',
    b'{"msgId": "\\ud800"}', b'{"msgId": "\\udfff\\ud800"}', b'{"encrypt": "\\ud83d"}', b'{"a": 1e400}',
    b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1, "a": 2}', b'{"a": "\\u0000"}',
    b"[" * 200 + b"]" * 200, b'{"a":' * 200 + b"1" + b"}" * 200,
    b"9" * 4000, b"-" + b"9" * 5000, b'{"a": ' + b"9" * 5000 + b"}",
])


# ----- mutations of genuine bytes -------------------------------------------------------------------------------------


@st.composite
def mutated(draw, original: bytes, alphabet: bytes | None = None) -> bytes:
    """``original`` with a few bytes flipped, inserted, deleted, duplicated, or truncated.
    ``alphabet`` limits inserted bytes (e.g. to base64 characters)."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate", "replace"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        byte = draw(st.sampled_from(list(alphabet)) if alphabet else st.integers(0, 255))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "insert":
            data.insert(at, byte)
        elif how == "delete" and data:
            del data[at]
        elif how == "truncate":
            del data[at:]
        elif how == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 16))]
        elif how == "replace" and data:
            data[at] = byte
    return bytes(data)


BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

# ----- XML ------------------------------------------------------------------------------------------------------------


def _laughs(depth: int = 9) -> str:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, depth + 1)]
    return f'<?xml version="1.0"?><!DOCTYPE xml [{"".join(entities)}]>'


def hostile_xml(inner: str) -> list[bytes]:
    """``inner`` (the children of ``<xml>``, with ``&e;`` where an entity may go) in every
    shape that an XML parser must not expand or fetch."""
    body = inner.replace("&e;", "&lol9;")
    return [
        (_laughs() + f"<xml>{body}</xml>").encode(),  # billion laughs
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "' + "x" * 5000 + '"><!ENTITY b "'
         + "&a;" * 1000 + '">]>' + f"<xml>{inner.replace('&e;', '&b;')}</xml>").encode(),  # quadratic blowup
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
         f"<xml>{inner}</xml>").encode(),  # external entity
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e SYSTEM "http://127.0.0.1:9/x">]>'
         f"<xml>{inner}</xml>").encode(),  # server-side request
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
         f"<xml>{inner.replace('&e;', '')}</xml>").encode(),  # parameter entity
        ('<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd">'
         f"<xml>{inner.replace('&e;', '')}</xml>").encode(),  # external DTD
        ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "internal">]>'
         f"<xml>{inner}</xml>").encode(),  # a harmless-looking internal entity
        ('<xml xmlns:xi="http://www.w3.org/2001/XInclude">'
         + inner.replace("&e;", '<xi:include href="file:///etc/passwd" parse="text"/>') + "</xml>").encode(),
    ]


XML_NAMES = ["ToUserName", "FromUserName", "CreateTime", "MsgType", "Content", "MsgId", "AgentID", "MediaId",
             "FileName", "PicUrl", "Event", "EventKey", "TaskId", "CardType", "ResponseCode", "SelectedItems",
             "SelectedItem", "QuestionKey", "OptionIds", "OptionId", "Encrypt", "xml"]


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def xml_text(draw) -> str:
    """An element's text: escaped, in CDATA, or raw (perhaps not XML at all)."""
    value = draw(hostile_text | st.sampled_from(["", " ", "text", "event", "template_card_event", "click", "image",
                                                 "-1", "99999999999999999999999", "1700000000", "confirm:1"]))
    how = draw(st.sampled_from(["escaped", "cdata", "raw"]))
    if how == "cdata":
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return _escape(value) if how == "escaped" else value


def xml_elements(max_leaves: int = 10):
    """Children of ``<xml>``: known WeCom element names and others, nested a little."""
    names = st.sampled_from(XML_NAMES) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True)
    leaf = st.builds(lambda name, value: f"<{name}>{value}</{name}>", names, xml_text())
    tree = st.recursive(leaf, lambda inner: st.builds(lambda name, children: f"<{name}>{''.join(children)}</{name}>",
                                                      names, st.lists(inner, max_size=3)), max_leaves=max_leaves)
    return st.lists(tree, max_size=8).map("".join)


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@st.composite
def app_plaintexts(draw) -> bytes:
    """What an app callback decrypts to: WeCom-shaped XML (each field as WeCom sends it or
    hostile, present or not), random XML, XML bombs and external entities, invalid UTF-8,
    or nothing like XML at all."""
    def either(good, bad=hostile_text):
        value = draw(good if draw(st.integers(0, 3)) else bad)
        return _XML_ILLEGAL.sub("", value) if draw(st.integers(0, 4)) else value  # mostly legal XML

    fields = {
        "ToUserName": either(st.just("wwfakecorp")),
        "FromUserName": either(st.sampled_from(["admin1", "insp01", "stranger", "ADMIN1"])),
        "CreateTime": either(st.builds(lambda: str(int(time.time()))),
                             st.sampled_from(["", "-1", "9" * 30, "1e9", "0x10", "١٧٠٠"]) | hostile_text),
        "MsgType": either(st.sampled_from(["text", "text", "image", "video", "voice", "file", "event"]),
                          st.sampled_from(["location", "link", "TEXT", ""]) | hostile_text),
        "Content": either(st.sampled_from(["帮助", "进度", "抽取 批次=x", "确认 任务=1", "@双随 帮助",
                                           "新建抽查 名称=x"]),
                          hostile_text | st.text(max_size=3000)),
        "MsgId": either(st.integers(1, 2**63).map(str), st.sampled_from(["", " "]) | hostile_text),
        "MediaId": either(st.just("M1")),
        "FileName": either(st.just("photo.jpg")),
        "Event": either(st.sampled_from(["template_card_event", "click", "enter_agent", "view"])),
        "EventKey": either(st.sampled_from(["confirm:1", "recuse:1", "result:1:unsigned", "帮助", ":", "confirm"])),
        "TaskId": either(st.just("ss-t1-a1")),
        "ResponseCode": either(st.just("RC1")),
    }
    chosen = [name for name in fields if draw(st.integers(0, 6))]
    how = draw(st.sampled_from(["shaped"] * 5 + ["random", "hostile", "bytes"]))
    if how == "bytes":
        return draw(st.binary(max_size=300) | st.sampled_from([b"", b"\xff\xfe<\x00x\x00", b"<xml>\xc3\x28</xml>",
                                                               b"<xml><Content>\xed\xa0\x80</Content></xml>"]))
    if how == "random":
        return ("<xml>" + draw(xml_elements()) + "</xml>").encode("utf-8", "surrogatepass")
    inner = "".join(f"<{name}>{_wrap(draw, fields[name])}</{name}>" for name in chosen)
    selections = draw(st.sampled_from(["", "<SelectedItems><SelectedItem><QuestionKey>category</QuestionKey>"
                                           "<OptionIds><OptionId>5</OptionId><OptionId/></OptionIds></SelectedItem>"
                                           "<SelectedItem/></SelectedItems>"]))
    if how == "hostile":
        return draw(st.sampled_from(hostile_xml(inner + "<Content>&e;</Content>" + selections)))
    return f"<xml>{inner}{selections}</xml>".encode()


def _wrap(draw, value: str) -> str:
    if draw(st.booleans()):
        return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"
    return _escape(value)


# ----- query strings and headers --------------------------------------------------------------------------------------

#: Bytes of a request target or header value: everything but CR and LF (which would
#: change the request's framing, fuzzed on purpose elsewhere) and NUL on PostgreSQL.
query_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b" ", b"+"))
percent_soup = st.lists(st.sampled_from([b"%", b"%2", b"%zz", b"%ff", b"%C2%B2", b"%ED%A0%80", b"%00", b"%2F", b"%2f",
                                         b"%25", b"+", b"&", b"=", b";", b"#", b"?", b"..", b"/", b"%E4%B8%AD",
                                         b"\xe4\xb8\xad", b"\xff", b"1", b"a"]), max_size=8).map(b"".join)


@st.composite
def timestamps(draw, *, unit: int = 1) -> str:
    """A timestamp parameter (``unit`` 1000: milliseconds): fresh, stale, far future,
    negative, huge, not a number. "Now" is when the example runs."""
    fresh = int(time.time() * unit)
    window = 3600 * unit
    return draw(st.sampled_from([
        str(fresh), str(fresh - window - 30 * unit), str(fresh + window + 30 * unit), "0", "-1", "",
        " " + str(fresh), str(fresh) + " ", "+" + str(fresh), str(fresh) + ".0", "1e9", "0x1", "NaN",
        "9" * 20, "9" * 400, "-" + "9" * 400, "9" * 5000, "１７００", "١٧٠٠", "1_700_000_000",
    ]) | st.integers(-(10**30), 10**30).map(str) | hostile_text)


def header_safe(value: str) -> bytes:
    """A header value as UTF-8 without the bytes that would end the header (CR, LF)."""
    return value.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")


def without_nul(value: str) -> str:
    return value.replace("\x00", "")


def unicode_digits(value: str) -> bool:
    """Digits ``str.isdigit`` takes and ``int`` refuses (²): see the fuzz tests' test_bug_* tests."""
    return value.isdigit() and not value.isdecimal()
