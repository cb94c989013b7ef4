"""The drain token, read as the gate and the hook both read it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the variable."""


TOKEN_ENV = "UPGRADE_GATE_TOKEN"  # noqa: S105 (a variable's name, not a token)


def read_token(
    env: Mapping[str, str], name: str = TOKEN_ENV, missing_ok: bool = False
) -> str | None:
    """The drain token: from the file ``$<name>_FILE`` names, else from ``$<name>``.

    A file (a mounted Secret) keeps the token out of the environment, which
    crash dumps, ``/proc/*/environ`` and child processes see. Space around it
    is not the token's: a Secret made with ``--from-file`` keeps the file's
    last newline. A token must travel in an HTTP header as it is: printable
    ASCII, no spaces. ``missing_ok``: a file that is not there means no token
    (the hook's Secret is optional), rather than an error.
    """
    file_name = f"{name}_FILE"
    path = env.get(file_name)
    if path:
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            if missing_ok:
                return None
            raise ConfigError(f"{file_name}: no such file: {path}") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"{file_name}: cannot read {path}: {reason}") from None
        source = f"the file ${file_name} names"
    else:
        raw = env.get(name) or ""
        source = f"${name}"
    token = raw.strip() or None
    if token is not None and not (token.isascii() and token.isprintable() and " " not in token):
        raise ConfigError(
            f"{source} holds characters that cannot travel in an HTTP header "
            "(use printable ASCII without spaces)"
        )
    return token
