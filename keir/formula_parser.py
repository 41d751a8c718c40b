"""KeOps' formula language, parsed for real (a tokenizer and a recursive-descent parser; no eval).

    "Exp(-SqDist(x, y) * g) * b"   with aliases  ["x = Vi(3)", "y = Vj(3)", "g = Pm(1)", "b = Vj(1)"]
    "Exp(-SqDist(Vi(0,3), Vj(1,3))) * Vj(2,1)"          variables spelled inline
    "Var(0,3,0)"  category 0 = i, 1 = j, 2 = parameter;  IntCst(2), Pow(x, 2), (x | y) the scalar product

Grammar (lowest precedence first):
    expr    := term (('+' | '-') term)*
    term    := unary (('*' | '/' | '|') unary)*
    unary   := '-' unary | power
    power   := atom ('**' signed_number)?
    atom    := number | name | name '(' args ')' | '(' expr ')' | list
    list    := '[' (signed_number (',' signed_number)*)? ']'     shapes and axes: Kron(x, y, [2, 3], [2, 2])
An error names the problem and points at the offending token:
    FormulaSyntaxError: unknown function 'Exq' at column 1
      Exq(-SqDist(x, y))
      ^^^
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keir.dialect.catalogue import KEOPS_NAMES
from keir.dialect.ops import OPS

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)"
                    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/|(),=\[\]]))")
CATEGORIES = {"Vi": "i", "Vj": "j", "Pm": "p", 0: "i", 1: "j", 2: "p"}


class FormulaSyntaxError(ValueError):
    """A formula string that cannot be parsed; the message shows where."""

    def __init__(self, message: str, text: str, start: int, end: int):
        self.position = start
        caret = " " * start + "^" * max(1, end - start)
        super().__init__(f"{message} at column {start + 1}\n  {text}\n  {caret}")


@dataclass(frozen=True)
class Token:
    kind: str  # number, name, op, end
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    tokens, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            tokens.append(Token("end", "", position, position + 1))
            return tokens
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FormulaSyntaxError(f"unexpected character {text[position]!r}", text, position, position + 1)
        kind = match.lastgroup
        tokens.append(Token(kind, match.group(kind), match.start(kind), match.end()))
        position = match.end()


@dataclass(frozen=True)
class VariableSpec:
    """A variable of a formula: its position in the argument list, category ("i", "j", "p") and dimension."""

    index: int
    category: str
    dim: int


_NON_FINITE = {"inf": math.inf, "nan": math.nan}


class _Parser:
    """Parses one formula; `functions` maps KeOps names to builders, `lookup` resolves names and variables."""

    def __init__(self, text: str, functions: dict[str, Callable[..., Any]], names: dict[str, Any],
                 variable: Callable[[VariableSpec], Any], number: Callable[[float], Any]):
        self.text, self.tokens, self.at = text, tokenize(text), 0
        self.functions, self.names, self.variable, self.number = functions, names, variable, number

    def error(self, message: str, token: Token | None = None) -> FormulaSyntaxError:
        token = token or self.tokens[self.at]
        return FormulaSyntaxError(message, self.text, token.start, token.end)

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        token = self.token
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            wanted = repr(text) if text else f"a {kind}"
            found = "the end of the formula" if token.kind == "end" else repr(token.text)
            raise self.error(f"expected {wanted}, found {found}")
        self.at += 1
        return token

    def parse(self) -> Any:
        value = self.expr()
        if self.token.kind != "end":
            raise self.error(f"unexpected {self.token.text!r} after a complete formula")
        return value

    def expr(self) -> Any:
        value = self.term()
        while self.token.text in ("+", "-"):
            op = self.take().text
            right = self.term()
            value = value + right if op == "+" else value - right
        return value

    def term(self) -> Any:
        value = self.unary()
        while self.token.text in ("*", "/", "|"):
            op = self.take().text
            right = self.unary()
            value = value * right if op == "*" else value / right if op == "/" else value | right
        return value

    def unary(self) -> Any:
        if self.token.text == "-":
            self.take()
            return -self.unary()
        if self.token.text == "+":
            self.take()
            return self.unary()
        return self.power()

    def power(self) -> Any:
        value = self.atom()
        if self.token.text == "**":
            self.take()
            sign = -1 if self.token.text == "-" and self.take() else 1
            token = self.take(kind="number")
            value = value ** (sign * _number(token.text))
        return value

    def atom(self) -> Any:
        token = self.token
        if token.kind == "number":
            self.take()
            return self.number(_number(token.text))
        if token.text == "(":
            self.take()
            value = self.expr()
            self.take(")")
            return value
        if token.text == "[":
            return self.number_list()
        if token.kind != "name":
            found = "the end of the formula" if token.kind == "end" else repr(token.text)
            raise self.error(f"expected a number, a name or '(', found {found}")
        self.take()
        if self.token.text != "(":
            if token.text in self.names:
                return self.names[token.text]
            if token.text in _NON_FINITE:  # how str() writes them (no alias of that name)
                return self.number(_NON_FINITE[token.text])
            raise self.error(f"unknown name {token.text!r} (not an alias)", token)
        if token.text in ("Vi", "Vj", "Pm", "Var"):
            return self.variable(self.variable_spec(token))
        if token.text == "IntCst":
            self.take("(")
            value = self.integer()
            self.take(")")
            return self.number(float(value))
        function = self.functions.get(token.text)
        if function is None:
            raise self.error(f"unknown function {token.text!r}", token)
        self.take("(")
        args = []
        if self.token.text != ")":
            args.append(self.expr())
            while self.token.text == ",":
                self.take()
                args.append(self.expr())
        self.take(")")
        try:
            return function(*args)
        except TypeError as err:
            raise FormulaSyntaxError(f"{token.text}: {err}", self.text, token.start, token.end) from None

    def number_list(self) -> list:
        """[2, 3]: a list of numbers (shapes and axes of Kron, TensorDot), possibly empty."""
        self.take("[")
        values = []
        while self.token.text != "]":
            if values:
                self.take(",")
            sign = -1 if self.token.text == "-" and self.take() else 1
            values.append(sign * _number(self.take(kind="number").text))
        self.take("]")
        return values

    def integer(self) -> int:
        sign = -1 if self.token.text == "-" and self.take() else 1
        token = self.take(kind="number")
        if not re.fullmatch(r"\d+", token.text):
            raise self.error(f"expected an integer, found {token.text!r}", token)
        return sign * int(token.text)

    def variable_spec(self, head: Token, default_index: int | None = None) -> VariableSpec:
        """Vi(dim) (with a default index), Vi(index, dim), Var(index, dim, category)."""
        self.take("(")
        numbers = [self.integer()]
        while self.token.text == ",":
            self.take()
            numbers.append(self.integer())
        closing = self.take(")")
        if head.text == "Var":
            if len(numbers) != 3 or numbers[2] not in (0, 1, 2):
                raise FormulaSyntaxError("Var takes (index, dim, category 0|1|2)", self.text, head.start, closing.end)
            index, dim, category = numbers[0], numbers[1], CATEGORIES[numbers[2]]
        elif len(numbers) == 2:
            (index, dim), category = numbers, CATEGORIES[head.text]
        elif len(numbers) == 1 and default_index is not None:
            index, dim, category = default_index, numbers[0], CATEGORIES[head.text]
        else:
            raise FormulaSyntaxError(f"{head.text} takes (index, dim)", self.text, head.start, closing.end)
        if index < 0 or dim < 1:
            raise FormulaSyntaxError("a variable needs index >= 0 and dim >= 1", self.text, head.start, closing.end)
        return VariableSpec(index, category, dim)


def _number(text: str) -> float | int:
    return int(text) if re.fullmatch(r"\d+", text) else float(text)


def parse_alias(text: str, position: int) -> tuple[str, VariableSpec]:
    """'x = Vi(3)' (index = position in the alias list) or 'x = Vi(0, 3)' or 'x = Var(0, 3, 0)'."""
    parser = _Parser(text, {}, {}, lambda spec: spec, float)
    name = parser.take(kind="name").text
    parser.take("=")
    head = parser.take(kind="name")
    if head.text not in ("Vi", "Vj", "Pm", "Var"):
        raise parser.error(f"an alias is Vi(...), Vj(...), Pm(...) or Var(...), not {head.text!r}", head)
    spec = parser.variable_spec(head, default_index=position)
    parser.take(kind="end")
    return name, spec


def parse_formula(text: str, functions: dict[str, Callable[..., Any]], names: dict[str, Any],
                  variable: Callable[[VariableSpec], Any], number: Callable[[float], Any]) -> Any:
    return _Parser(text, functions, names, variable, number).parse()


_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "dot": "|"}


# Formulas that keir builds out of several ops for one KeOps op (BSpline, SoftDTW_SqDist, ...): node ->
# (KeOps name, arguments: nodes or numbers). format_formula writes such a node as the call, which reads back
# to the same node, instead of its expansion (whose text, written as a tree, can grow exponentially with a
# DAG's depth: soft-DTW's recursion). Weak keys: an entry lives as long as its formula.
COMPOSITES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def name_composite(node: Any, name: str, *args: Any) -> Any:
    """Remember that `node` is the KeOps call name(*args); returns node."""
    COMPOSITES[node] = (name, args)
    return node


def carry_composite_names(root: Any, transform: Callable[[Any], Any]) -> None:
    """After a formula is rebuilt by `transform` (a substitution of its variables: renumbering, i <-> j), name
    the images of the composite calls inside it as the originals were named."""
    if not COMPOSITES:
        return
    from keir.dialect.node import Node, topological

    for node in topological(root):
        entry = COMPOSITES.get(node)
        if entry is not None:
            image = transform(node)
            if image is not node and image not in COMPOSITES:
                name, args = entry
                COMPOSITES[image] = (name, tuple(transform(a) if isinstance(a, Node) else a for a in args))


def format_formula(node: Any) -> str:
    """A formula node in KeOps' syntax, e.g. Exp(-SqDist(Vi(0,3), Vj(1,3))) * Vj(2,1)."""
    if COMPOSITES:
        entry = COMPOSITES.get(node)
        if entry is not None:
            name, args = entry
            return f"{name}({', '.join(format_formula(a) if hasattr(a, 'op') else str(a) for a in args)})"
    if node.op == "var":
        head = {"i": "Vi", "j": "Vj", "p": "Pm"}[node.attr("category")]
        return f"{head}({node.attr('index')},{node.dim})"
    if node.op == "constant":
        value = float(node.attr("value"))
        if value.is_integer() and abs(value) < 2.0**53 and math.copysign(1.0, value) > 0:
            return repr(int(value))  # 2, not 2.0 (as KeOps writes integers); -0.0 keeps its sign
        return repr(value)  # the shortest decimal that reads back to the same double
    args = [format_formula(a) for a in node.args]
    if node.op in _INFIX:
        return f"({args[0]} {_INFIX[node.op]} {args[1]})"
    if node.op == "neg":
        return f"-{args[0]}"
    spec = OPS[node.op]  # attributes in the op's declared order (KeOps': Extract(x, start, length))
    given = dict(node.attrs)
    attrs = [str(given[key]) for key in (*spec.attrs, *spec.optional_attrs) if key in given]
    return f"{KEOPS_NAMES.get(node.op, node.op)}({', '.join(args + attrs)})"
