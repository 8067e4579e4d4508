"""Text that is safe to put in XML and HTML, whatever a backend or a spec put in it."""

from __future__ import annotations

import re

# Characters XML 1.0 forbids (C0 controls other than tab, newline and carriage return; U+FFFE,
# U+FFFF), lone surrogates (which no UTF-8 encoder accepts), and DEL and the C1 controls, which
# XML allows but which print as nothing.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with every character that XML forbids or a terminal hides written as ``\\xNN``/``\\uNNNN``.

    The escapes are plain ASCII, so the result encodes as UTF-8 and parses as XML, and a reader
    still sees which character was there (an ESC from a colourised message, a NUL, a lone surrogate).
    """
    return _UNSAFE.sub(_escape, text)
