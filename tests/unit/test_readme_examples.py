"""The README's two examples, as written, under real servers on loopback.

Each Python block of README.md's "Adopt it" section is written to a module, with only a
``render_report`` beside it (the adopter's own work: a few seconds here), and served as an
adopter would serve it: the Flask one by gunicorn, the FastAPI one by uvicorn. Then the
contract: work is taken (202), the pod is busy (503), the fence is taken with the token and
new work refused (503 ``draining``), the fence lifted, and the pod idle once the work ends.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from e2e.cluster.base import free_port
from e2e.cluster.wait import eventually
from e2e.loopback import TOKEN

ROOT = Path(__file__).resolve().parents[2]
WORK = "import time\n\n\ndef render_report(*_: object) -> None:\n    time.sleep(3)\n\n\n"


def _examples() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Adopt it in your service") :]
    section = section[: section.index("\n## ", 3)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    found = {("fastapi" if "FastAPI" in b else "flask"): b for b in blocks}
    assert set(found) == {"flask", "fastapi"}, blocks
    return found


def _server(name: str, port: int) -> list[str]:
    """How an adopter serves each: gunicorn with threads, uvicorn."""
    if name == "flask":
        return ["gunicorn", "--threads", "8", "--bind", f"127.0.0.1:{port}", "example:app"]
    return ["uvicorn", "--host", "127.0.0.1", "--port", str(port), "example:app"]


@pytest.fixture(params=["flask", "fastapi"])
def example(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name = request.param
    (tmp_path / "example.py").write_text(WORK + _examples()[name])
    port = free_port()
    command = _server(name, port)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=tmp_path,
            env={"UPGRADE_GATE_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            return requests.get(f"{url}/upgradeable", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        eventually(answers, timeout=30, what=f"the README's {name} example answers")
        yield url
    finally:
        server.terminate()
        server.wait(30)


def test_the_readme_example_keeps_the_contract(example: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    taken = requests.post(f"{example}/reports", timeout=10)
    assert taken.status_code == 202, taken.text
    assert "id" in taken.json()
    busy = requests.get(f"{example}/upgradeable", timeout=10)
    assert busy.status_code == 503, busy.text
    assert busy.json()["running"] == [taken.json()["id"]]

    assert requests.post(f"{example}/drain", json={"ttl": 30}, timeout=10).status_code == 401
    fenced = requests.post(f"{example}/drain", json={"ttl": 30}, headers=auth, timeout=10)
    assert fenced.status_code == 200, fenced.text
    refused = requests.post(f"{example}/reports", timeout=10)
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"] == "draining"

    idle = requests.get(f"{example}/upgradeable?wait=30", timeout=40)
    assert idle.status_code == 200, idle.text
    lifted = requests.delete(f"{example}/drain", headers=auth, timeout=10)
    assert lifted.json()["draining"] is False
    assert requests.post(f"{example}/reports", timeout=10).status_code == 202
