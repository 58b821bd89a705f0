"""FACS Action Unit codes as the ME annotation sheets write them, parsed and normalised.

AU strings (:func:`parse_aus`): terms are joined by ``+``, ``,`` or ``;`` (full-width forms are folded by Unicode
NFKC first). A code is ``[prefix][AU]number[intensity]``, case-insensitive:

- prefix ``L``/``R`` = unilateral left/right, ``A`` = asymmetric (both sides, one stronger: the SAMM key),
  ``T``/``B`` = top/bottom lip (FACS, SAMM writes ``T18``, ``B18``); stored in :attr:`AUCode.side`;
- intensity suffix ``A`` (trace) .. ``E`` (maximum), so ``A9E`` is asymmetric AU9 at intensity E;
- ``ref(10)`` (SAMM) is kept as AU10 with ``ref=True``: it counts as an AU of the clip (the MEGC ground truth of
  SAMM 018_3_1 ``A9E+ref(10)`` is AU9+10);
- alternatives ``4 or 7``, ``(R6 or R12)``, ``A/L12`` (SAMM: "/" = or), ``10A/B`` (a bare letter borrows the number
  of its neighbour): the FIRST alternative is the code, the others are kept in :attr:`AUCode.alternatives` and
  :attr:`AUCode.uncertain` is true. "or" binds tighter than "+": ``(R6 or R12)+R15`` is two AUs, the first uncertain.
- anything else (``soft focus``, ``M60``) goes to an ``unparsed`` list and into the clip's ``problems``.

Normalised AU string (:func:`format_aus`, the ``aus`` column): codes sorted by AU number then prefix, written as in
FACS without an ``AU`` prefix and joined by ``+``: ``4+7+L10``, ``7C+A12B``, ``A9E+ref(10)``, ``(R6 or R12)+R15``.
The sheet's own text stays in ``aus_raw``.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

MISSING_CELLS = {"", "/", "-", "--", "\u2013", "\u2014", "?", "n/a", "na", "none"}


def cell_text(value) -> str:
    """A cell as text: full-width characters folded (NFKC), whole floats without '.0', None as ''."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


@dataclass(frozen=True)
class AUCode:
    number: int
    side: str | None = None  # 'L', 'R' unilateral; 'A' asymmetric; 'T', 'B' top/bottom lip
    intensity: str | None = None  # FACS 'A'..'E'
    ref: bool = False  # SAMM ref(N)
    alternatives: tuple[AUCode, ...] = ()  # the other readings of an "or"; this code is the first one

    @property
    def uncertain(self) -> bool:
        return bool(self.alternatives)

    def single(self) -> str:
        """This code alone, without its alternatives: 'L10', '12B', 'ref(10)'."""
        text = f"{self.side or ''}{self.number}{self.intensity or ''}"
        return f"ref({text})" if self.ref else text

    def __str__(self) -> str:
        if not self.alternatives:
            return self.single()
        return "(" + " or ".join([self.single()] + [alt.single() for alt in self.alternatives]) + ")"


_CODE_RE = re.compile(r"(?:AU\s*)?(?P<side>[LRATB])?\s*(?:AU\s*)?(?P<number>[0-9]{1,3})\s*(?P<intensity>[A-E])?")
_REF_RE = re.compile(r"REF\s*\((?P<inner>.*)\)")
_TERM_SEPARATORS = re.compile(r"[+,;\u3001]")  # NFKC leaves the ideographic comma alone
_OR_SEPARATORS = re.compile(r"\s+or\s+|/", re.IGNORECASE)


def parse_aus(value) -> tuple[list[AUCode], list[str]]:
    """AU codes of one sheet cell, in sheet order, and the tokens that are not AU codes."""
    text = cell_text(value)
    if text.lower() in MISSING_CELLS:
        return [], []
    codes, unparsed = [], []
    for term in _split_outside_parens(text, _TERM_SEPARATORS):
        term = term.strip()
        if not term:  # '12+' or '4++7': nothing lost
            continue
        found = _parse_term(term)
        if found is None:
            unparsed.append(term)
        else:
            codes.extend(found)
    return codes, unparsed


def format_aus(codes: list[AUCode]) -> str:
    """Canonical AU string: sorted by AU number then prefix, '+'-joined (see the module docstring)."""
    return "+".join(str(c) for c in sorted(codes, key=lambda c: (c.number, c.side or "", c.ref)))


def _parse_term(term: str) -> list[AUCode] | None:
    """One '+'-term: a code, a group of alternatives, or (fallback) space-separated codes like 'AU4 AU7'."""
    body = _strip_outer_parens(term)
    options = _parse_alternatives([p.strip() for p in _split_outside_parens(body, _OR_SEPARATORS)])
    if options:
        return [replace(options[0], alternatives=tuple(options[1:]))]
    words = body.split()
    if len(words) > 1:
        single = [_parse_code(w) for w in words]
        if all(single):
            return single
    return None


def _parse_alternatives(pieces: list[str]) -> list[AUCode] | None:
    """Codes for 'or'-pieces. A bare letter borrows its neighbour's number: 'A/L12' -> A12|L12, '10A/B' -> 10A|10B."""
    codes = [_parse_code(p) for p in pieces]
    for i, piece in enumerate(pieces):
        letter = piece.upper()
        if codes[i] is not None or len(letter) != 1:
            continue
        before = next((c for c in reversed(codes[:i]) if c is not None), None)
        after = next((c for c in codes[i + 1:] if c is not None), None)
        if before is not None and letter in "ABCDE":  # a trailing letter is an intensity
            codes[i] = replace(before, intensity=letter)
        elif after is not None and letter in "LRATB":  # a leading letter is a prefix
            codes[i] = replace(after, side=letter)
    return codes if codes and all(c is not None for c in codes) else None


def _parse_code(piece: str) -> AUCode | None:
    text = piece.strip().upper()
    ref = _REF_RE.fullmatch(text)
    if ref:
        inner = _parse_code(ref.group("inner"))
        return replace(inner, ref=True) if inner else None
    match = _CODE_RE.fullmatch(text)
    if not match:
        return None
    return AUCode(int(match.group("number")), match.group("side"), match.group("intensity"))


def _split_outside_parens(text: str, separators: re.Pattern) -> list[str]:
    """Split at separators that are not inside parentheses, so 'ref(7B)' and '(R6 or R12)' stay whole."""
    parts, start = [], 0
    for match in separators.finditer(text):
        depth = text.count("(", 0, match.start()) - text.count(")", 0, match.start())
        if depth == 0:
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return parts


def _strip_outer_parens(text: str) -> str:
    """'(R6 or R12)' -> 'R6 or R12', but 'ref(10)' and '(4)+(7)' are left alone."""
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _closing_paren(text) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _closing_paren(text: str) -> int:
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return i
    return -1


