"""A small evaluator of the CEL subset the platform's admission policies use, so tests run the policy's own text
against objects (no CEL library is installed). Semantics follow the CEL spec for what it accepts: `&&`, `||`,
`!`, `? :`, `==`, `!=`, `in` (list membership, map key), field selection and `[...]` on maps, `has(a.b)`,
`size()`, the macros `all` and `exists`, string/int/list literals and the empty map `{}`; anything else is a
SyntaxError. A missing key is an error (CEL's no_such_key), which an admission policy with failurePolicy Fail
turns into a refusal: `admits` returns False then."""

from __future__ import annotations

import re
from typing import Any, Callable

Env = dict[str, Any]
Node = Callable[[Env], Any]

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<int>\d+)|(?P<id>[A-Za-z_]\w*)'
                    r'|(?P<op>&&|\|\||==|!=|[!?:.,()\[\]{}]))')


class CelError(Exception):
    """An evaluation error (missing key, wrong type)."""


def _tokens(text: str) -> list[tuple[str, str]]:
    found, at = [], 0
    while at < len(text.rstrip()):
        match = _TOKEN.match(text, at)
        if not match:
            raise SyntaxError(f"unsupported CEL at {text[at:at + 20]!r}")
        kind = match.lastgroup
        found.append((kind, match.group(kind)))
        at = match.end()
    return found + [("end", "")]


class _Parser:
    def __init__(self, text: str):
        self.tokens, self.at = _tokens(text), 0

    def peek(self) -> str:
        return self.tokens[self.at][1]

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise SyntaxError(f"expected {expected!r}, got {token[1]!r}")
        self.at += 1
        return token

    def expression(self) -> Node:
        condition = self.binary(0)
        if self.peek() != "?":
            return condition
        self.take("?")
        yes = self.expression()
        self.take(":")
        no = self.expression()
        return lambda env: yes(env) if _bool(condition(env)) else no(env)

    _LEVELS = (("||",), ("&&",), ("==", "!=", "in"))

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self._LEVELS[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = _combine(op, left, right)
            if level == 2:
                break  # relations do not chain
        return left

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            inner = self.unary()
            return lambda env: not _bool(inner(env))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while self.peek() in (".", "["):
            if self.take()[1] == "[":
                key = self.expression()
                self.take("]")
                node = (lambda target, key: lambda env: _index(target(env), key(env)))(node, key)
                continue
            name = self.take()[1]
            if self.peek() != "(":
                node = (lambda target, name: lambda env: _index(target(env), name))(node, name)
                continue
            node = self.method(node, name)
        return node

    def method(self, target: Node, name: str) -> Node:
        self.take("(")
        if name == "size":
            self.take(")")
            return lambda env: len(target(env))
        if name not in ("all", "exists"):
            raise SyntaxError(f"unsupported CEL function {name}")
        var = self.take()[1]
        self.take(",")
        body = self.expression()
        self.take(")")
        test = all if name == "all" else any
        return lambda env: test(_bool(body({**env, var: item})) for item in _items(target(env)))

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "str":
            value = text[1:-1].encode().decode("unicode_escape")
            return lambda env: value
        if kind == "int":
            return lambda env: int(text)
        if text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if text == "[":
            items = []
            while self.peek() != "]":
                items.append(self.expression())
                if self.peek() == ",":
                    self.take()
            self.take("]")
            return lambda env: [item(env) for item in items]
        if text == "{":
            self.take("}")
            return lambda env: {}
        if text == "has":
            return self.has()
        if kind == "id":
            return lambda env: _variable(env, text)
        raise SyntaxError(f"unexpected {text!r}")

    def has(self) -> Node:
        self.take("(")
        start = self.at
        self.postfix(self.primary())
        end = self.at
        self.take(")")
        if self.tokens[end - 2][1] != ".":
            raise SyntaxError("has() needs a field selection")
        field = self.tokens[end - 1][1]
        target = _Parser.__new__(_Parser)
        target.tokens, target.at = self.tokens[start:end - 2] + [("end", "")], 0
        node = target.postfix(target.primary())
        return lambda env: isinstance(value := node(env), dict) and field in value


def _variable(env: Env, name: str) -> Any:
    if name not in env:
        raise CelError(f"undeclared reference {name}")
    return env[name]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise CelError(f"no matching overload: {value!r} is not a bool")
    return value


def _index(target: Any, key: Any) -> Any:
    if isinstance(target, dict):
        if key not in target:
            raise CelError(f"no such key: {key}")
        return target[key]
    if isinstance(target, list) and isinstance(key, int):
        return target[key]
    raise CelError(f"cannot index {type(target).__name__}")


def _items(target: Any) -> list:
    if isinstance(target, (dict, list)):
        return list(target)
    raise CelError(f"cannot iterate {type(target).__name__}")


def _combine(op: str, left: Node, right: Node) -> Node:
    if op == "&&":
        return lambda env: _bool(left(env)) and _bool(right(env))
    if op == "||":
        return lambda env: _bool(left(env)) or _bool(right(env))
    if op == "==":
        return lambda env: left(env) == right(env)
    if op == "!=":
        return lambda env: left(env) != right(env)
    return lambda env: left(env) in _items(right(env))  # `in`: list element or map key


def evaluate(expression: str, env: Env) -> Any:
    parser = _Parser(expression)
    node = parser.expression()
    if parser.peek() != "":
        raise SyntaxError(f"trailing CEL: {parser.peek()!r}")
    return node(env)


def admits(policy_spec: dict, request: dict, obj: dict, old: dict) -> bool:
    """Whether a ValidatingAdmissionPolicy (failurePolicy Fail) admits the request: True when a match condition
    does not hold (the policy does not apply), else every validation must be true; errors refuse."""
    env: Env = {"request": request, "object": obj, "oldObject": old}
    try:
        if not all(evaluate(c["expression"], env) for c in policy_spec.get("matchConditions", [])):
            return True
        env["variables"] = {v["name"]: evaluate(v["expression"], env) for v in policy_spec.get("variables", [])}
        return all(evaluate(v["expression"], env) is True for v in policy_spec["validations"])
    except CelError:
        return policy_spec.get("failurePolicy") != "Fail"
