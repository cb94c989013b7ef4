"""The workflows as the rehearsal reads them: jobs, matrix cells, the actions they pin, and the
Python and Go versions they ask `setup-python` and `setup-go` for.

Read with ruamel.yaml (YAML 1.2, so `on:` stays a key), never changed. A job that calls
another workflow of the repository (`uses: ./.github/workflows/x.yml`) brings that workflow's
actions and versions along, since act runs it too.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

# `uses: owner/repo[/path]@<40 hex> # vX.Y.Z`: the pin and the version its comment names.
PINNED_USES = re.compile(
    r"uses:\s*(?P<repo>[\w.-]+/[\w.-]+)(?P<path>/[^@\s]*)?@(?P<sha>[0-9a-f]{40})"
    r"(?:\s*#\s*(?P<version>v\S+))?"
)
EXPRESSION = re.compile(r"\$\{\{\s*matrix\.([\w-]+)\s*\}\}")

Cell = dict[str, str]


class WorkflowError(RuntimeError):
    """A workflow the rehearsal cannot read or run as asked; the message says which."""


@dataclass(frozen=True)
class Pin:
    """One `uses:` of a public action, pinned to a commit."""

    repo: str  # owner/name
    sha: str
    version: str  # what the comment beside the pin names, e.g. v7.0.1

    @property
    def ref(self) -> str:
        return f"{self.repo}@{self.sha}"


@dataclass(frozen=True)
class Workflow:
    path: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Workflow:
        try:
            data = YAML(typ="safe").load(path.read_text())
        except (OSError, ValueError) as exc:
            raise WorkflowError(f"{path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
            raise WorkflowError(f"{path}: not a workflow (no jobs)")
        return cls(path, data)

    @property
    def name(self) -> str:
        """The file's stem: ci, e2e, release."""
        return self.path.name.removesuffix(".yml").removesuffix(".yaml")

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        jobs: dict[str, dict[str, Any]] = self.data["jobs"]
        return jobs

    def job(self, job_id: str) -> dict[str, Any]:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise WorkflowError(
                f"{self.path.name} has no job {job_id!r}; its jobs: {', '.join(self.jobs)}"
            ) from None

    def called(self, job_id: str) -> Workflow | None:
        """The repository's workflow a job calls (`uses: ./.github/workflows/x.yml`), if any."""
        uses = self.job(job_id).get("uses")
        if not isinstance(uses, str) or not uses.startswith("./"):
            return None
        root = self.path.parent.parent.parent  # .github/workflows/x.yml -> the repository
        return Workflow.load(root / uses.removeprefix("./"))

    def last_jobs(self) -> list[str]:
        """The jobs no other job needs: act runs each with all it needs."""
        needed: set[str] = set()
        for job in self.jobs.values():
            needs = job.get("needs", [])
            needed.update([needs] if isinstance(needs, str) else needs)
        return [job_id for job_id in self.jobs if job_id not in needed]

    def needed(self, job_id: str) -> list[str]:
        """The job and every job it needs, the needed first (what act runs for `-j job`)."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            needs = self.job(name).get("needs", [])
            for need in [needs] if isinstance(needs, str) else needs:
                visit(need)
            order.append(name)

        visit(job_id)
        return order

    def cells(self, job_id: str) -> list[Cell]:
        """The job's matrix cells, as GitHub expands them (one empty cell without a matrix)."""
        strategy = self.job(job_id).get("strategy") or {}
        return expand_matrix(strategy.get("matrix") or {})

    def matrix_keys(self, job_id: str) -> list[str]:
        """The keys `--matrix` filters on: the matrix's own lists, not what `include` adds."""
        matrix = (self.job(job_id).get("strategy") or {}).get("matrix") or {}
        return [
            k for k, v in matrix.items() if k not in ("include", "exclude") and isinstance(v, list)
        ]

    def text(self) -> str:
        return self.path.read_text()

    def pins(self) -> list[Pin]:
        """Every pinned action this workflow uses, with the workflows it calls."""
        found: dict[str, Pin] = {}
        for workflow in self._with_called():
            for match in PINNED_USES.finditer(workflow.text()):
                pin = Pin(match["repo"], match["sha"], match["version"] or "(no version comment)")
                found.setdefault(pin.ref, pin)
        return sorted(found.values(), key=lambda p: p.repo)

    def unpinned(self) -> list[str]:
        """`uses:` of a public action that are not pinned to a commit (act cannot map them)."""
        loose = []
        for workflow in self._with_called():
            for line in workflow.text().splitlines():
                words = line.strip().removeprefix("- ").split()
                if words[:1] == ["uses:"] and len(words) > 1:
                    target = words[1]
                    if not target.startswith("./") and not PINNED_USES.search(line):
                        loose.append(f"{workflow.path.name}: {target}")
        return loose

    def asked_versions(self, action: str, key: str) -> set[str]:
        """What every step using `action` (e.g. actions/setup-python) asks for in `key`,
        `${{ matrix.x }}` resolved over the job's cells."""
        asked: set[str] = set()
        for workflow in self._with_called():
            for job_id, job in workflow.jobs.items():
                for step in job.get("steps", []):
                    uses = str(step.get("uses", ""))
                    value = (step.get("with") or {}).get(key)
                    if not uses.startswith(action + "@") or value is None:
                        continue
                    asked.update(resolve(str(value), workflow.cells(job_id)))
        return asked

    def _with_called(self) -> Iterator[Workflow]:
        yield self
        for job_id in self.jobs:
            called = self.called(job_id)
            if called is not None:
                yield from called._with_called()


def resolve(value: str, cells: list[Cell]) -> set[str]:
    """`value` with `${{ matrix.x }}` put in for each cell (itself when it names none)."""
    if not EXPRESSION.search(value):
        return {value}
    return {_put_in(value, cell) for cell in cells}


def _put_in(value: str, cell: Cell) -> str:
    return EXPRESSION.sub(lambda m: str(cell.get(m[1], "")), value)


def expand_matrix(matrix: object) -> list[Cell]:
    """GitHub's expansion: the product of the lists, less `exclude`; then each `include`
    entry extends every cell whose original values it does not contradict, or is a cell of
    its own where it extends none."""
    if not isinstance(matrix, dict):
        raise WorkflowError(f"a matrix from an expression cannot be expanded here: {matrix}")
    keys = [k for k, v in matrix.items() if k not in ("include", "exclude")]
    for key in keys:
        if not isinstance(matrix[key], list):
            raise WorkflowError(f"matrix {key}: not a list: {matrix[key]!r}")
    cells: list[Cell] = [
        {k: _value(v) for k, v in zip(keys, values, strict=True)}
        for values in itertools.product(*(matrix[k] for k in keys))
    ]
    if not keys:
        cells = [] if matrix.get("include") else [{}]
    for exclude in matrix.get("exclude", []):
        cells = [c for c in cells if any(c.get(k) != _value(v) for k, v in exclude.items())]
    # Only the product's cells are extended; a cell an include made is never extended again.
    originals = [dict(c) for c in cells]
    product = list(cells)
    for include in matrix.get("include", []):
        entry = {k: _value(v) for k, v in include.items()}
        extended = False
        for cell, original in zip(product, originals, strict=True):
            if all(original.get(k, v) == v for k, v in entry.items() if k in keys):
                for k, v in entry.items():
                    if k not in original:
                        cell[k] = v
                extended = True
        if not extended:
            cells.append(entry)
    return cells


def _value(value: object) -> str:
    """A matrix value as act and GitHub write it in an expression: true, not True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def label(cell: Cell, keys: list[str]) -> str:
    """A cell as `kubernetes=1.35 helm=helm3` (its original keys), or `(no matrix)`."""
    shown = [f"{k}={cell[k]}" for k in keys if k in cell]
    return " ".join(shown) or "(no matrix)"
