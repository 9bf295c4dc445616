"""The subset of the Cloud Logging query language that a log sink filter needs, evaluated on LogEntry dicts.

Cloud Logging has no emulator, so the local audit-log bridge decides itself which
entries a sink routes. It must decide exactly as Logging would for the filters
Baton synthesizes, so the language rules follow the public reference:

- `NOT` (or a leading `-`) binds tightest, then `OR`, then `AND`; juxtaposition
  is an implicit `AND`. So `a OR b AND c` is `(a OR b) AND c`, unlike SQL.
- Boolean operators must be uppercase; everything else is case-insensitive,
  including string comparisons (regular expressions excepted).
- `field:value` is "has" (substring), `field:*` tests presence; a bare value is a
  global restriction (any field has it).
- A comparison on a missing field is false (so is `!=`); `NOT` of it is true.
- Repeated fields match when any element matches.

Parse once with `parse_filter`; evaluate with `LogFilter.matches(entry)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["And", "Comparison", "FilterSyntaxError", "GlobalRestriction", "LogFilter", "Node", "Not", "Or", "parse_filter"]

COMPARISON_OPERATORS = ("=", "!=", ">", "<", ">=", "<=", ":", "=~", "!~")
_SEVERITY_RANK = {
    "DEFAULT": 0,
    "DEBUG": 100,
    "INFO": 200,
    "NOTICE": 300,
    "WARNING": 400,
    "ERROR": 500,
    "CRITICAL": 600,
    "ALERT": 700,
    "EMERGENCY": 800,
}
_MISSING = object()


class FilterSyntaxError(ValueError):
    """The filter text is not valid in the supported subset; `position` is the 0-based offset of the problem."""

    def __init__(self, message: str, text: str, position: int) -> None:
        pointer = f"{text}\n{' ' * position}^"
        super().__init__(f"{message} at position {position}:\n{pointer}")
        self.position = position
        self.reason = message


# --- AST ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    path: tuple[str, ...]
    op: str
    value: str

    def evaluate(self, entry: Mapping[str, Any]) -> bool:
        return any(_compare(leaf, self.op, self.value, self.path) for leaf in _resolve(entry, self.path))


@dataclass(frozen=True)
class GlobalRestriction:
    """A bare value: true when any field of the entry has it."""

    value: str

    def evaluate(self, entry: Mapping[str, Any]) -> bool:
        return any(_compare(leaf, ":", self.value, ()) for leaf in _leaves(entry))


@dataclass(frozen=True)
class Not:
    operand: Node

    def evaluate(self, entry: Mapping[str, Any]) -> bool:
        return not self.operand.evaluate(entry)


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]

    def evaluate(self, entry: Mapping[str, Any]) -> bool:
        return all(operand.evaluate(entry) for operand in self.operands)


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]

    def evaluate(self, entry: Mapping[str, Any]) -> bool:
        return any(operand.evaluate(entry) for operand in self.operands)


Node = Comparison | GlobalRestriction | Not | And | Or


@dataclass(frozen=True)
class LogFilter:
    """A parsed filter. An empty filter matches everything, as an empty sink filter does."""

    text: str
    root: Node | None

    def matches(self, entry: Mapping[str, Any]) -> bool:
        return True if self.root is None else self.root.evaluate(entry)


def parse_filter(text: str) -> LogFilter:
    tokens = _tokenize(text)
    parser = _Parser(text, tokens)
    root = parser.parse()
    return LogFilter(text=text, root=root)


# --- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    kind: str  # WORD, STRING, OP, LPAREN, RPAREN, AND, OR, NOT, MINUS, EOF
    text: str
    start: int
    end: int


_OPERATOR_CHARS = "=!<>:~"
_WORD_STOP = set(' \t\r\n()"' + _OPERATOR_CHARS)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            tokens.append(_Token("LPAREN", ch, i, i + 1))
            i += 1
        elif ch == ")":
            tokens.append(_Token("RPAREN", ch, i, i + 1))
            i += 1
        elif ch == '"':
            value, end = _read_string(text, i)
            tokens.append(_Token("STRING", value, i, end))
            i = end
        elif ch in _OPERATOR_CHARS:
            two = text[i : i + 2]
            if two in (">=", "<=", "!=", "=~", "!~"):
                tokens.append(_Token("OP", two, i, i + 2))
                i += 2
            elif ch in "=<>:":
                tokens.append(_Token("OP", ch, i, i + 1))
                i += 1
            else:
                raise FilterSyntaxError(f"unexpected character {ch!r}", text, i)
        elif ch == "-" and i + 1 < n and not text[i + 1].isspace() and _at_term_start(tokens):
            tokens.append(_Token("MINUS", ch, i, i + 1))
            i += 1
        else:
            start = i
            while i < n and text[i] not in _WORD_STOP:
                i += 1
            word = text[start:i]
            kind = word if word in ("AND", "OR", "NOT") else "WORD"
            tokens.append(_Token(kind, word, start, i))
    tokens.append(_Token("EOF", "", n, n))
    return tokens


def _at_term_start(tokens: Sequence[_Token]) -> bool:
    """A '-' negates only where a new term begins, so `-5` after an operator stays a value."""
    return not tokens or tokens[-1].kind in ("LPAREN", "AND", "OR", "NOT", "MINUS", "WORD", "STRING", "RPAREN")


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


def _read_string(text: str, start: int) -> tuple[str, int]:
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))  # unknown escapes stay literal, e.g. regex `\d`
            i += 2
        elif ch == '"':
            return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise FilterSyntaxError("unterminated string", text, start)


# --- parser -------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent: conjunction (AND, implicit) < disjunction (OR) < NOT < primary."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> _Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, message: str, token: _Token | None = None) -> FilterSyntaxError:
        token = token or self.peek()
        return FilterSyntaxError(message, self.text, token.start)

    def parse(self) -> Node | None:
        if self.peek().kind == "EOF":
            return None
        node = self.conjunction()
        token = self.peek()
        if token.kind != "EOF":
            raise self.error("unexpected ')'" if token.kind == "RPAREN" else f"unexpected {token.text!r}")
        return node

    def conjunction(self) -> Node:
        operands = [self.disjunction()]
        while True:
            token = self.peek()
            if token.kind == "AND":
                self.take()
                if self.peek().kind in ("EOF", "RPAREN", "AND", "OR"):
                    raise self.error("expected a term after AND")
                operands.append(self.disjunction())
            elif token.kind in ("WORD", "STRING", "LPAREN", "NOT", "MINUS"):
                operands.append(self.disjunction())  # juxtaposition is an implicit AND
            else:
                break
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def disjunction(self) -> Node:
        operands = [self.unary()]
        while self.peek().kind == "OR":
            self.take()
            if self.peek().kind in ("EOF", "RPAREN", "AND", "OR"):
                raise self.error("expected a term after OR")
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def unary(self) -> Node:
        if self.peek().kind in ("NOT", "MINUS"):
            self.take()
            if self.peek().kind in ("EOF", "RPAREN", "AND", "OR"):
                raise self.error("expected a term after NOT")
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "LPAREN":
            self.take()
            if self.peek().kind == "RPAREN":
                raise self.error("empty parentheses")
            node = self.conjunction()
            if self.peek().kind != "RPAREN":
                raise self.error("expected ')'")
            self.take()
            return node
        if token.kind in ("WORD", "STRING"):
            path, raw = self.path()
            if self.peek().kind == "OP":
                op = self.take()
                return self.comparison_value(path, op)
            return GlobalRestriction(raw)
        if token.kind == "EOF":
            raise self.error("unexpected end of filter")
        if token.kind == "OP":
            raise self.error(f"operator {token.text!r} without a field")
        raise self.error(f"unexpected {token.text!r}")

    def path(self) -> tuple[tuple[str, ...], str]:
        """A field path: dotted words and quoted parts written without spaces, e.g. a.b."@type".c."""
        first = self.take()
        pieces = [first]
        while True:
            nxt = self.peek()
            prev = pieces[-1]
            adjacent = nxt.start == prev.end and nxt.kind in ("WORD", "STRING")
            joined = (prev.kind == "WORD" and prev.text.endswith(".")) or (nxt.kind == "WORD" and nxt.text.startswith("."))
            if not (adjacent and joined):
                break
            pieces.append(self.take())
        parts: list[str] = []
        for k, piece in enumerate(pieces):
            if piece.kind == "STRING":
                parts.append(piece.text)
                continue
            segments = piece.text.split(".")
            for index, segment in enumerate(segments):
                if segment:
                    parts.append(segment)
                    continue
                joins_previous = index == 0 and k > 0
                joins_next = index == len(segments) - 1 and k < len(pieces) - 1
                if not (joins_previous or joins_next):
                    raise self.error("empty field name in path", piece)
        raw = self.text[first.start : pieces[-1].end] if len(pieces) > 1 or first.kind == "WORD" else first.text
        return tuple(parts), raw

    def comparison_value(self, path: tuple[str, ...], op: _Token) -> Node:
        token = self.peek()
        if token.kind in ("WORD", "STRING"):
            self.take()
            if op.text in ("=~", "!~"):
                try:
                    re.compile(token.text)
                except re.error as exc:
                    raise self.error(f"invalid regular expression: {exc}", token) from exc
            return Comparison(path, op.text, token.text)
        if token.kind == "LPAREN":
            # `field = ("a" OR "b")` is shorthand for the comparison against each value.
            self.take()
            node = self.value_list(path, op)
            if self.peek().kind != "RPAREN":
                raise self.error("expected ')'")
            self.take()
            return node
        raise self.error(f"expected a value after {op.text!r}")

    def value_list(self, path: tuple[str, ...], op: _Token) -> Node:
        groups: list[list[Node]] = [[]]
        while True:
            token = self.peek()
            if token.kind not in ("WORD", "STRING", "LPAREN"):
                raise self.error("expected a value")
            groups[-1].append(self.comparison_value(path, op))
            if self.peek().kind == "OR":
                self.take()
            elif self.peek().kind == "AND":
                self.take()
                groups.append([])
            elif self.peek().kind in ("WORD", "STRING", "LPAREN"):
                groups.append([])
            else:
                break
        conjuncts = [group[0] if len(group) == 1 else Or(tuple(group)) for group in groups]
        return conjuncts[0] if len(conjuncts) == 1 else And(tuple(conjuncts))


# --- evaluation ---------------------------------------------------------------------------------


def _resolve(value: Any, path: Sequence[str]) -> Iterator[Any]:
    """Every value at `path`; lists fan out (a repeated field matches if any element does)."""
    if isinstance(value, list):
        for item in value:
            yield from _resolve(item, path)
        return
    if not path:
        if value is not None:
            yield value
        return
    if isinstance(value, Mapping):
        child = value.get(path[0], _MISSING)
        if child is not _MISSING:
            yield from _resolve(child, path[1:])


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for child in value.values():
            yield from _leaves(child)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield value


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(leaf: Any, op: str, expected: str, path: Sequence[str]) -> bool:
    if isinstance(leaf, Mapping | list):
        # Only "has" looks inside a structure (any field of it has the value).
        return op == ":" and any(_compare(inner, ":", expected, ()) for inner in _leaves(leaf))
    if op == ":":
        return expected == "*" or expected.casefold() in _as_text(leaf).casefold()
    if op in ("=~", "!~"):
        found = re.search(expected, _as_text(leaf)) is not None
        return found if op == "=~" else not found
    order = _order(_as_text(leaf), expected, path)
    return {
        "=": order == 0,
        "!=": order != 0,
        "<": order < 0,
        "<=": order <= 0,
        ">": order > 0,
        ">=": order >= 0,
    }[op]


def _order(actual: str, expected: str, path: Sequence[str]) -> int:
    """-1/0/1 comparing a field value with a filter value: severity by rank, numbers numerically, else text."""
    if path and path[-1] == "severity":
        left = _SEVERITY_RANK.get(actual.upper(), _as_number(actual))
        right = _SEVERITY_RANK.get(expected.upper(), _as_number(expected))
        if left is not None and right is not None:
            return (left > right) - (left < right)
    left_number, right_number = _as_number(actual), _as_number(expected)
    if left_number is not None and right_number is not None:
        return (left_number > right_number) - (left_number < right_number)
    left_text, right_text = actual.casefold(), expected.casefold()
    return (left_text > right_text) - (left_text < right_text)
