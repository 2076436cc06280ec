"""Every sentence the configuration checks can say is a catalogued template, so the admin
console says it in the admin's language (``Problem.localized``) while the command line keeps
the English (``Problem.message``).

A static guard over the modules that produce configuration problems: each call that makes a
problem or a refusal passes a template marked with ``N_`` (or a variable holding one), never
an f-string or a plain literal, and no plain ``ValueError`` carries a sentence there.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULES = [*sorted((ROOT / "core/configuration").glob("*.py")), ROOT / "core/sla/calendar.py"]
# Calls whose first argument is a sentence: Checker.add, Lines.problem, Problem.of, and the
# exceptions that carry a template.
SENTENCE_CALLS = {"add", "problem", "of", "Invalid", "CalendarError", "InputError", "Phrase"}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _is_template(node: ast.expr) -> bool:
    if isinstance(node, ast.Call) and _name(node) == "N_":
        return True
    return isinstance(node, ast.Name | ast.Attribute | ast.Subscript)


def test_every_configuration_sentence_is_a_template() -> None:
    wrong: list[str] = []
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = _name(node)
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name in SENTENCE_CALLS:
                # check.add(loc, message), lines.problem(loc, message) and Problem.of(line,
                # source, path, message) are methods; a set's add(x) has one argument.
                position = {"add": 1, "problem": 1, "of": 3}.get(name, 0)
                if len(node.args) <= position:
                    continue
                arg = node.args[position]
                if not _is_template(arg):
                    wrong.append(f"{where}: {name}(...) with {ast.unparse(arg)[:70]}")
            elif name == "ValueError" and path.name != "errors.py":
                wrong.append(
                    f"{where}: ValueError({ast.unparse(node.args[0])[:70]}); raise Invalid"
                )
    assert not wrong, "\n".join(wrong)
