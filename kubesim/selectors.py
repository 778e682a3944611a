"""Label and field selectors with the grammar of k8s.io/apimachinery/pkg/{labels,fields}.

Label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`,
joined by commas. `!=` and `notin` also match objects that lack the key, as in the real server.
Field selectors: `f=v`, `f==v`, `f!=v` joined by commas, over a per-resource set of fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import bad_request

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

Requirement = tuple[str, str, tuple[str, ...]]  # key, operator, values


def label_key_error(key: str) -> str | None:
    """Why `key` is not a valid label key (prefix/name), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and not prefix:
        return "prefix part must be non-empty"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return (
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
            "alphanumeric characters, '-' or '.'"
        )
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not _QUALIFIED_NAME.match(name):
        return (
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
            "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return None


def label_value_error(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return (
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return None


class _Lexer:
    """Tokens of the label selector language, as labels.Lexer produces them."""

    TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = self.TOKEN.match(text, pos)
            if not m:  # pragma: no cover - the pattern matches any non-space character
                raise bad_request(f"unable to parse requirement: unexpected {text[pos:]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def next(self) -> str | None:
        tok = self.peek()
        self.i += 1
        return tok


_OPERATORS = {"=", "==", "!=", "in", "notin", ">", "<"}
_SPECIAL = {"=", "==", "!=", "!", "(", ")", ",", ">", "<"}


def _ident(tok: str | None, expected: str) -> str:
    if tok is None or tok in _SPECIAL:
        shown = "end of string" if tok is None else tok
        raise bad_request(f"unable to parse requirement: found '{shown}', expected: {expected}")
    return tok


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse a labelSelector query value; raises ApiError 400 like the real server."""
    lex = _Lexer(text)
    reqs: list[Requirement] = []
    if lex.peek() is None:
        return reqs
    while True:
        tok = lex.peek()
        if tok == "!":
            lex.next()
            key = _ident(lex.next(), "identifier")
            reqs.append((key, "!", ()))
        else:
            key = _ident(lex.next(), "identifier")
            op = lex.peek()
            if op is None or op == ",":
                reqs.append((key, "exists", ()))
            elif op in _OPERATORS:
                lex.next()
                if op in ("in", "notin"):
                    if lex.next() != "(":
                        raise bad_request("unable to parse requirement: found '', expected: '('")
                    values: list[str] = []
                    while True:
                        v = lex.peek()
                        if v == ")":
                            lex.next()
                            break
                        if v == ",":
                            lex.next()
                            continue
                        values.append(_ident(lex.next(), "',', ')' or identifier"))
                    reqs.append((key, op, tuple(values)))
                else:
                    nxt = lex.peek()
                    value = "" if nxt in (None, ",") else _ident(lex.next(), "identifier")
                    if op in (">", "<"):
                        try:
                            int(value)
                        except ValueError:
                            raise bad_request(
                                "unable to parse requirement: for 'Gt', 'Lt' operators, "
                                f"the value must be an integer: {value}"
                            ) from None
                    reqs.append((key, "=" if op == "==" else op, (value,)))
            else:
                raise bad_request(
                    f"unable to parse requirement: found '{op}', "
                    "expected: in, notin, =, ==, !=, gt, lt"
                )
        err = label_key_error(key)
        if err:
            raise bad_request(
                f'unable to parse requirement: values[0][{key}]: Invalid value: "{key}": {err}'
            )
        for v in reqs[-1][2]:
            verr = label_value_error(v)
            if verr:
                raise bad_request(f'unable to parse requirement: Invalid value: "{v}": {verr}')
        sep = lex.next()
        if sep is None:
            return reqs
        if sep != ",":
            raise bad_request(f"found '{sep}', expected: ',' or 'end of string'")


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    """Whether a label map satisfies every requirement."""
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "exists":
            ok = present
        elif op == "!":
            ok = not present
        elif op == "=":
            ok = present and value == values[0]
        elif op == "!=":
            ok = not present or value != values[0]
        elif op == "in":
            ok = present and value in values
        elif op == "notin":
            ok = not present or value not in values
        else:  # > and <
            try:
                have = int(value) if present else None
            except (TypeError, ValueError):
                have = None
            if have is None:
                ok = False
            else:
                ok = have > int(values[0]) if op == ">" else have < int(values[0])
        if not ok:
            return False
    return True


def selector_from_label_selector(sel: dict[str, Any] | None) -> list[Requirement]:
    """Requirements from a `metav1.LabelSelector` (matchLabels + matchExpressions)."""
    if not sel:
        return []
    reqs: list[Requirement] = [
        (k, "=", (v,)) for k, v in sorted((sel.get("matchLabels") or {}).items())
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append((expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ())))
    return reqs


def format_label_selector(sel: dict[str, Any] | None) -> str:
    """The string form of a LabelSelector, as in Scale.status.selector (`app=pg`)."""
    parts: list[str] = []
    for key, op, values in selector_from_label_selector(sel):
        if op == "=":
            parts.append(f"{key}={values[0]}")
        elif op == "exists":
            parts.append(key)
        elif op == "!":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {op} ({','.join(sorted(values))})")
    return ",".join(sorted(parts))


# --- field selectors -----------------------------------------------------------------

FieldReq = tuple[str, str, str]  # field, op ("=" or "!="), value


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str, supported: Callable[[str], bool]) -> list[FieldReq]:
    """Parse a fieldSelector query value; unknown fields are a 400 as on the real server."""
    reqs: list[FieldReq] = []
    if not text.strip():
        return reqs
    for term in _split_unescaped(text, ","):
        if not term:
            continue
        for op in ("!=", "==", "="):
            idx = term.find(op)
            if idx > 0:
                field, value = term[:idx].strip(), term[idx + len(op) :]
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if not supported(field):
            raise bad_request(f"field label not supported: {field}")
        reqs.append((field, "!=" if op == "!=" else "=", _unescape(value)))
    return reqs


def _field_value(obj: dict[str, Any], field: str) -> str:
    cur: Any = obj
    for part in field.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs: list[FieldReq], obj: dict[str, Any]) -> bool:
    """Whether an object satisfies every field requirement."""
    for field, op, value in reqs:
        have = _field_value(obj, field)
        if (have == value) != (op == "="):
            return False
    return True


__all__ = [
    "fields_match",
    "format_label_selector",
    "label_key_error",
    "label_value_error",
    "labels_match",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_label_selector",
]
