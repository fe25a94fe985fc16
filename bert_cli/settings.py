"""Process-wide options set once by the root command (``bert --quiet --cache-dir ...``).

Every global option also reads an environment variable, so cron jobs and CI can set them
without touching the command line:

==================  ===================  =====================================================
option              environment          meaning
==================  ===================  =====================================================
``--quiet``         ``BERT_QUIET=1``     only errors on stderr
``--verbose``       ``BERT_VERBOSE=1``   more detail on stderr
``--no-progress``   ``BERT_NO_PROGRESS`` no progress bars (they are off anyway when stderr is
                                         not a terminal)
``--cache-dir``     ``BERT_CACHE``       where models and datasets live
``--offline``       ``BERT_OFFLINE=1``   resolve only what is cached, never touch the network
(none)              ``NO_COLOR``         no colour on stderr
(none)              ``BERT_DEBUG=1``     print the traceback of an error
==================  ===================  =====================================================
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def env_flag(name: str) -> bool:
    """True when the environment variable is set to something other than '', 0, false, no."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class Settings:
    quiet: bool = False
    verbose: bool = False
    progress: bool = True
    offline: bool = False
    cache_dir: Path | None = None

    @property
    def resolved_cache_dir(self) -> Path:
        """``--cache-dir`` > ``$BERT_CACHE`` > the platform's user cache dir (``.../bert``)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        env = os.environ.get("BERT_CACHE")
        if env:
            return Path(env).expanduser()
        import platformdirs

        return Path(platformdirs.user_cache_dir("bert", appauthor=False))


_current = Settings()


def current() -> Settings:
    return _current


def configure(settings: Settings) -> None:
    global _current
    _current = settings


def from_env(**overrides) -> Settings:
    """Settings from the environment, with explicit (non-None) option values on top."""
    values = dict(
        quiet=env_flag("BERT_QUIET"),
        verbose=env_flag("BERT_VERBOSE"),
        progress=not env_flag("BERT_NO_PROGRESS"),
        offline=env_flag("BERT_OFFLINE"),
        cache_dir=None,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)
