"""EDN (extensible data notation, Clojure's configuration format) in conftest's shape.

Read by edn_format, then shaped as conftest's parser/edn does: maps become objects
whose keys are the text of each key (`:db` for the keyword `:db`), vectors and lists
become arrays, strings stay strings, and every other value becomes its text as Go's
`fmt` prints it: `true`, `5432`, `1.5`, `:debug`, `<nil>` for nil, a set as
`map[:a:true :b:true]`, an `#inst` as `2032-01-01 12:20:50.52 +0000 UTC`, any other
tagged value as `{tag value}`. A policy therefore compares `input[":env"] == ":production"`.
"""

from __future__ import annotations

import datetime
import math
import re
import uuid
from decimal import Decimal
from typing import Any

from cd_checks.parsers import ParseError

# A tag is `#` and a symbol: `#inst`, `#duration`, `#my.app/thing` (not `#{`, `#_`, `#:`).
_TAG = re.compile(r"#([A-Za-z][\w.*+!?$%&=<>/-]*)")
_BUILTIN_TAGS = frozenset({"inst", "uuid"})


class _Tagged:
    """A value under a tag edn_format has no reader for (conftest: edn.Tag)."""

    def __init__(self, tag: str, value: Any) -> None:
        self.tag, self.value = tag, value


def parse(text: str) -> list[Any]:
    import edn_format

    tags = sorted({t for t in _TAG.findall(text) if t not in _BUILTIN_TAGS})
    # edn_format refuses a tag without a reader; conftest's reader keeps it as a
    # {tag value} pair. Readers are registered for this text's tags only, and removed.
    for tag in tags:
        edn_format.add_tag(tag, lambda value, tag=tag: _Tagged(tag, value))
    try:
        value = edn_format.loads(text, write_ply_tables=False)
    except edn_format.EDNDecodeError as exc:
        message, line = _reason(str(exc), text)
        raise ParseError(f"edn: {message}", line) from None
    # edn_format's errors for a bad #inst, #uuid or number, and for a tag the scan above
    # did not register (it raises NotImplementedError for a tag it has no reader for).
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ParseError(f"edn: {' '.join(str(exc).split())}") from None
    finally:
        for tag in tags:
            edn_format.remove_tag(tag)
    return [_shaped(value)]


def _reason(said: str, text: str) -> tuple[str, int | None]:
    """edn_format's complaint in a few words, and its line (from the offset it names)."""
    token = re.fullmatch(r"LexToken\((\w+),'(.*)',\d+,(\d+)\)", said, re.DOTALL)
    if token:
        return f"unexpected {token.group(2)!r}", _line(text, int(token.group(3)))
    illegal = re.match(r"Illegal character '(.*)' with lexpos (\d+)", said, re.DOTALL)
    if illegal:
        return f"illegal character {illegal.group(1)!r}", _line(text, int(illegal.group(2)))
    if said == "EOF Reached":
        return "unexpected end of input (an unclosed map, vector, list or set)", None
    if said.startswith("Even number of terms"):
        return "a map needs a value for every key", None
    return " ".join(said.split()), None


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _shaped(value: Any) -> Any:
    """conftest's cleanupMapValue: maps and sequences kept, strings as they are, the rest text."""
    import edn_format

    if isinstance(value, str) and not isinstance(value, edn_format.Char):
        return value
    if isinstance(value, edn_format.ImmutableDict | dict):
        return {_go(key): _shaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple | edn_format.ImmutableList):
        return [_shaped(item) for item in value]
    return _go(value)


def _go(value: Any) -> str:
    """`fmt.Sprintf("%v", value)` for what olympos.io/encoding/edn decodes."""
    import edn_format

    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, edn_format.Keyword):
        return f":{value.name}"
    if isinstance(value, edn_format.Symbol):
        return str(value.name)
    if isinstance(value, edn_format.Char):
        return str(ord(value))  # a rune: Go prints its code point
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Decimal):
        return _go_float(float(value))
    if isinstance(value, frozenset | set):  # a set: map[any]bool
        return "map[" + " ".join(sorted(f"{_go(item)}:true" for item in value)) + "]"
    if isinstance(value, edn_format.ImmutableDict | dict):
        pairs = sorted(f"{_go(k)}:{_go(v)}" for k, v in value.items())
        return "map[" + " ".join(pairs) + "]"
    if isinstance(value, list | tuple | edn_format.ImmutableList):
        return "[" + " ".join(_go(item) for item in value) + "]"
    if isinstance(value, datetime.datetime):
        return _go_time(value)
    if isinstance(value, uuid.UUID):
        return f"{{uuid {value}}}"
    if isinstance(value, _Tagged):
        return f"{{{value.tag} {_go(value.value)}}}"
    return str(value)


def _go_float(value: float) -> str:
    """Go's %v of a float64: the shortest digits, an exponent below 1e-4 or from 1e21."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    number = Decimal(repr(value))
    exponent = number.adjusted()
    if -4 <= exponent < 21:
        text = format(number, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    digits = str(abs(number).scaleb(-exponent).normalize())
    sign = "-" if value < 0 else ""
    return f"{sign}{digits}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def _go_time(value: datetime.datetime) -> str:
    """time.Time's String(): `2006-01-02 15:04:05.999999999 -0700 MST`."""
    stamp = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        stamp += f".{value.microsecond:06d}".rstrip("0")
    offset = value.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    zone = f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    name = "UTC" if minutes == 0 else zone
    return f"{stamp} {zone} {name}"
