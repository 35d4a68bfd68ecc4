"""Finding and loading plugins.

Two mechanisms, two roles:

* **stevedore** picks exactly one driver by name from a role's entry-point group
  (``hegelion.teachers``, ``hegelion.trainers``...). Only the chosen module is
  imported, so torch, mlx or unsloth load only when that backend runs.
* **pluggy** consults every plugin registered in the ``hegelion`` group (hooks in
  `hegelion_core.hookspecs`).

`hegelion run`'s stage kinds (``hegelion.stage_kinds``) and model-reference schemes
(``hegelion.model_schemes``) are stevedore roles too: a stage names its kind, a model
reference its scheme, and exactly one plugin answers each. Core's own formatters, prompt
sources, stage kinds and schemes use the same entry points as third-party plugins.
Environment variables:

``HEGELION_DISABLE_PLUGIN_AUTOLOAD=1``
    use core's own entry points only;
``HEGELION_PLUGINS=dist-a,dist-b``
    use core plus only these distributions.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, overload

import pluggy

from hegelion_core import hookspecs
from hegelion_core.contracts import (
    BASES,
    ROLES,
    Driver,
    Exporter,
    Formatter,
    ModelScheme,
    PromptSource,
    Role,
    StageKind,
    Teacher,
    Trainer,
)
from hegelion_core.errors import DriverLoadError, DriverNotFound

CORE_DIST = "hegelion-core"
HOOK_GROUP = "hegelion"
DISABLE_ENV = "HEGELION_DISABLE_PLUGIN_AUTOLOAD"
ALLOW_ENV = "HEGELION_PLUGINS"

#: First-party drivers and the distribution that provides each, so a missing one
#: gets the exact install command instead of "not found".
KNOWN_DRIVERS: dict[Role, dict[str, str]] = {
    "teachers": {
        "openai": "hegelion-openai",
        "anthropic": "hegelion-anthropic",
        "kimi": "hegelion-kimi",
        "kimi-cli": "hegelion-kimi",
        "llama-cpp": "hegelion-gguf",
        "transformers": "hegelion-trl",
    },
    "prompt_sources": {
        "simplex-context": "hegelion-simplex",
        "simplex-calibration": "hegelion-simplex",
        "simplex-belief-revision": "hegelion-simplex",
    },
    "formatters": {},
    "trainers": {
        "trl": "hegelion-trl",
        "mlx": "hegelion-mlx",
        "mlx-scu": "hegelion-mlx",
        "unsloth": "hegelion-unsloth",
    },
    "exporters": {"gguf": "hegelion-gguf", "merged": "hegelion-gguf"},
    "stage_kinds": {"simplex": "hegelion-simplex"},
    "model_schemes": {"packaged": "hegelion-gguf"},
}


def group(role: Role) -> str:
    return f"hegelion.{role}"


def _canonical(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


def install_hint(dist: str) -> str:
    hint = f"pip install {dist}"
    if dist != CORE_DIST:
        hint += f"  (from a Hegelion checkout: pip install ./plugins/{dist})"
    return hint


def _dist_of(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("unknown", "")
    return (_canonical(dist.metadata["Name"]), dist.version)


def allowed(dist: str) -> bool:
    """Whether plugins from distribution ``dist`` may load under the env settings."""
    if dist == CORE_DIST:
        return True
    if os.environ.get(DISABLE_ENV, "").strip() not in ("", "0", "false"):
        return False
    allow = os.environ.get(ALLOW_ENV, "").strip()
    if not allow:
        return True
    return dist in {_canonical(d.strip()) for d in allow.split(",") if d.strip()}


def iter_entry_points(group_name: str) -> Iterator[EntryPoint]:
    """Entry points of a group whose distribution is allowed; imports nothing."""
    seen: set[tuple[str, str]] = set()
    for ep in entry_points(group=group_name):
        dist, _ = _dist_of(ep)
        # The same dist can appear twice on sys.path (editable + site): keep one.
        if (ep.name, dist) in seen or not allowed(dist):
            continue
        seen.add((ep.name, dist))
        yield ep


# ----- drivers (stevedore) -----------------------------------------------------------


def driver_names(role: Role) -> list[str]:
    return sorted({ep.name for ep in iter_entry_points(group(role))})


# Typed per role: load_driver("trainers", name) is a type[Trainer], and so on.
@overload
def load_driver(role: Literal["teachers"], name: str) -> type[Teacher]: ...
@overload
def load_driver(role: Literal["prompt_sources"], name: str) -> type[PromptSource]: ...
@overload
def load_driver(role: Literal["formatters"], name: str) -> type[Formatter]: ...
@overload
def load_driver(role: Literal["trainers"], name: str) -> type[Trainer]: ...
@overload
def load_driver(role: Literal["exporters"], name: str) -> type[Exporter]: ...
@overload
def load_driver(role: Literal["stage_kinds"], name: str) -> type[StageKind]: ...
@overload
def load_driver(role: Literal["model_schemes"], name: str) -> type[ModelScheme]: ...
@overload
def load_driver(role: Role, name: str) -> type[Driver]: ...
def load_driver(role: Role, name: str) -> type[Driver]:
    """Import and return the one driver class ``name`` for ``role``."""
    from stevedore import DriverManager
    from stevedore.exception import MultipleMatches, NoMatches

    matches = [ep for ep in iter_entry_points(group(role)) if ep.name == name]
    if not matches:
        raise DriverNotFound(_not_found_message(role, name))
    if len({_dist_of(ep)[0] for ep in matches}) > 1:
        dists = ", ".join(sorted(_dist_of(ep)[0] for ep in matches))
        raise DriverLoadError(
            f"{role[:-1]} {name!r} is provided by several distributions ({dists}); "
            f"uninstall one, or choose with {ALLOW_ENV}=<dist>"
        )

    failures: list[BaseException] = []

    def on_failure(_manager: Any, entrypoint: Any, exc: BaseException) -> None:
        failures.append(exc)

    try:
        manager = DriverManager(
            group(role), name, invoke_on_load=False, on_load_failure_callback=on_failure
        )
    except (NoMatches, MultipleMatches, RuntimeError) as exc:
        if failures:
            raise DriverLoadError(
                _broken_message(role, name, _dist_of(matches[0])[0], failures[0])
            ) from failures[0]
        raise DriverNotFound(_not_found_message(role, name)) from exc
    cls = manager.driver
    base = BASES[role]
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise DriverLoadError(
            f"{role[:-1]} {name!r} ({matches[0].value}) is not a subclass of "
            f"hegelion_core.contracts.{base.__name__}"
        )
    return cls


@overload
def make_driver(
    role: Literal["teachers"], name: str, options: dict[str, Any] | None = None
) -> Teacher: ...
@overload
def make_driver(
    role: Literal["prompt_sources"], name: str, options: dict[str, Any] | None = None
) -> PromptSource: ...
@overload
def make_driver(
    role: Literal["formatters"], name: str, options: dict[str, Any] | None = None
) -> Formatter: ...
@overload
def make_driver(
    role: Literal["trainers"], name: str, options: dict[str, Any] | None = None
) -> Trainer: ...
@overload
def make_driver(
    role: Literal["exporters"], name: str, options: dict[str, Any] | None = None
) -> Exporter: ...
@overload
def make_driver(
    role: Literal["stage_kinds"], name: str, options: dict[str, Any] | None = None
) -> StageKind: ...
@overload
def make_driver(
    role: Literal["model_schemes"], name: str, options: dict[str, Any] | None = None
) -> ModelScheme: ...
@overload
def make_driver(role: Role, name: str, options: dict[str, Any] | None = None) -> Driver: ...
def make_driver(role: Role, name: str, options: dict[str, Any] | None = None) -> Driver:
    """Load a driver and construct it from validated options."""
    return load_driver(role, name)(options or {})


def missing_message(role: Role, name: str) -> str | None:
    """Why a first-party or installed driver ``name`` is not available here (not
    installed: its pip command; left out by the env settings: which one), or None when
    no plugin is known to provide it."""
    noun = role[:-1].replace("_", " ")
    hidden = sorted({_dist_of(ep)[0] for ep in entry_points(group=group(role)) if ep.name == name})
    if hidden:  # installed, but left out by the environment's plugin settings
        return (
            f"{noun} {name!r} comes from {', '.join(hidden)}, which is installed but left "
            f"out by {ALLOW_ENV} or {DISABLE_ENV}; add it to {ALLOW_ENV} or unset them"
        )
    known = KNOWN_DRIVERS.get(role, {}).get(name)
    if known:
        return f"{noun} {name!r} is not installed. Install it with: {install_hint(known)}"
    return None


def _not_found_message(role: Role, name: str) -> str:
    if (why := missing_message(role, name)) is not None:
        return why
    noun = role[:-1].replace("_", " ")
    available = ", ".join(driver_names(role)) or "none"
    return f"no {noun} named {name!r}. Available: {available}. See `hegelion plugins`."


def _broken_message(role: Role, name: str, dist: str, exc: BaseException) -> str:
    return (
        f"{role[:-1]} {name!r} from {dist} failed to import: "
        f"{type(exc).__name__}: {exc}\n  fix: {_fix_for(dist, exc)}"
    )


def _fix_for(dist: str, exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        missing = exc.name.split(".")[0]
        return f"pip install {missing}, or reinstall {dist} to pull its dependencies: {install_hint(dist)}"
    return f"reinstall or upgrade {dist}: pip install --upgrade {dist}"


# ----- listing (hegelion plugins) ------------------------------------------------------


@dataclass
class DriverInfo:
    role: str
    name: str
    distribution: str
    version: str
    target: str
    status: str  # "ok" | "broken" | "not installed"
    error: str | None = None
    fix: str | None = None


@dataclass
class HookPluginInfo:
    name: str
    distribution: str
    version: str
    status: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None
    fix: str | None = None


def describe_drivers(*, check_imports: bool = True) -> list[DriverInfo]:
    """Every driver of every role, importing each to report its status.

    Known first-party drivers that are not installed are listed too, with the
    command that installs them.
    """
    infos: list[DriverInfo] = []
    for role in ROLES:
        installed: set[str] = set()
        for ep in iter_entry_points(group(role)):
            dist, version = _dist_of(ep)
            info = DriverInfo(role, ep.name, dist, version, ep.value, "ok")
            installed.add(ep.name)
            if check_imports:
                try:
                    obj = ep.load()
                    if not (isinstance(obj, type) and issubclass(obj, BASES[role])):
                        raise TypeError(f"{ep.value} is not a {BASES[role].__name__} subclass")
                except Exception as exc:  # a broken plugin must never break listing
                    info.status, info.error = "broken", f"{type(exc).__name__}: {exc}"
                    info.fix = _fix_for(dist, exc)
            infos.append(info)
        for name, dist in KNOWN_DRIVERS[role].items():
            if name not in installed:
                infos.append(
                    DriverInfo(role, name, dist, "", "", "not installed", fix=install_hint(dist))
                )
    return infos


def describe_hook_plugins() -> list[HookPluginInfo]:
    pm = get_plugin_manager()
    infos = []
    for ep in iter_entry_points(HOOK_GROUP):
        dist, version = _dist_of(ep)
        plugin = pm.get_plugin(ep.name)
        info = HookPluginInfo(ep.name, dist, version, "ok")
        if plugin is None:
            exc = _hook_failures.get(ep.name)
            info.status, info.error = "broken", f"{type(exc).__name__}: {exc}" if exc else None
            info.fix = _fix_for(dist, exc) if exc else None
        else:
            info.hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
        infos.append(info)
    return infos


def as_dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [asdict(i) for i in items]


# ----- hooks (pluggy) ------------------------------------------------------------------

_hook_failures: dict[str, BaseException] = {}


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every allowed hook plugin loaded.

    A plugin that fails to import is recorded (see `hegelion plugins`) and skipped.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for ep in iter_entry_points(HOOK_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            pm.register(ep.load(), name=ep.name)
            pm.check_pending()  # a misspelled hook name is this plugin's bug, not ours
        except Exception as exc:
            if pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
            _hook_failures[ep.name] = exc
    return pm


def reset_plugin_manager() -> None:
    """Forget loaded hook plugins (tests, or after changing the env variables)."""
    get_plugin_manager.cache_clear()
    _hook_failures.clear()
