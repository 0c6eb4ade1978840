"""Tab completion for `airush` (`eval "$(airush -sc install=bash)"`): subcommands, then Hydra's own answer.

Hydra composes the whole config to answer (~0.5 s), so its answers are cached by what they depend on.
"""

from __future__ import annotations

import os
import sys


def answer_completion(args: list[str], subcommands, hydra_main) -> bool:
    """Answer the TAB query of the bash/zsh completion Hydra installs (`eval "$(airush -sc install=bash)"`
    runs `airush -sc query=bash` with COMP_LINE): subcommands as the first word, nothing after one (the shell
    completes file names), Hydra's answer otherwise. Hydra composes the config for that (~0.5 s), so its
    answer for the word's stem (`model.` for `model.fa`, `` for `ta`) is cached until airush, its configs or
    the installed Hydra plugins change, and filtered here by the word; False when `args` is no such query."""
    if (
        len(args) != 2
        or args[0] not in ("-sc", "--shell-completion")
        or args[1] not in ("query=bash", "query=zsh")
    ):
        return False
    line = os.environ.get("COMP_LINE", "")
    words = line.split()[1:]
    if not line or line[-1].isspace():
        words.append("")
    *before, word = words or [""]
    if before and before[0] in subcommands:
        print("")
        return True
    first = not before and not word.startswith(("-", "+", "~")) and "=" not in word
    commands = [c for c in subcommands if first and c.startswith(word)]
    if "=" in word:  # `model=`, `model=a`, `seed=4`: asked as typed
        stem = word
    else:  # a key or a group: the answer for its stem (`model.`, `hydra/`, `+`, ``) holds the answer for it
        cut = max(word.rfind("."), word.rfind("/"))
        stem = word[: cut + 1] if cut >= 0 else word[:1] if word[:1] in "+~" else ""
    value = word.partition("=")[2]
    config_options = (
        "--config-dir",
        "-cd",
        "--config-path",
        "-cp",
        "--config-name",
        "-cn",
        "hydra.searchpath",
    )
    cached = not value.startswith((".", "/", "\\")) and not any(w.startswith(config_options) for w in before)
    # file names change; other config trees are not hashed
    answer = hydra_completion([*before, stem], cached, hydra_main)
    found = sorted({*commands, *(a for a in answer if a.startswith(word))})
    print(" ".join(found))
    return True


def hydra_completion(words: list[str], cached: bool, hydra_main) -> list[str]:
    """Hydra's bash completion answer for `airush <words>`, from the cache when `cached` and it is there."""
    import contextlib
    import hashlib
    import io
    import json
    from pathlib import Path

    path = None
    if cached:
        key = json.dumps([words, os.getcwd() if words[-1].endswith("=") else "", *completion_sources()])
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "airush" / "completion"
        path = cache / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.txt"
        with contextlib.suppress(OSError):
            return path.read_text().split()
    os.environ["COMP_LINE"] = " ".join(["airush", *words])  # Hydra reads the line from here
    sys.argv[1:] = ["-sc", "query=bash"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        hydra_main()
    answer = out.getvalue().split()
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_text(" ".join(answer))
            partial.replace(path)
    return answer


def completion_sources() -> list:
    """What Hydra's completion answer depends on besides the line: airush and its packaged configs (file
    stats), the installed `hydra_plugins` (sweepers, launchers, search paths), this interpreter, and the
    environment the configs read."""
    import importlib.util
    from pathlib import Path

    import airush

    spec = importlib.util.find_spec("airush.conf")
    conf = Path(spec.origin).parent if spec and spec.origin else Path()
    stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(conf.rglob("*.yaml"))]
    plugins = [
        (str(p), p.stat().st_mtime_ns) for e in sys.path if (p := Path(e or ".") / "hydra_plugins").is_dir()
    ]
    return [airush.__version__, sys.executable, stats, plugins, os.environ.get("MLFLOW_TRACKING_URI")]
