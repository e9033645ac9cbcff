"""Which robots exist: name -> robot folder.

A robot is one folder holding ``robot.toml`` (see :mod:`robot_meta.robot_toml`), ``model.xml``,
``twin.urdf``, ``families.toml`` and ``tasks.py``. Robots come from three places, looked up in
this order:

1. the folders bundled under ``robot_meta/sim/robots/`` (every sub-folder with a ``robot.toml``);
2. installed packages, through the entry-point group ``robot_meta.robots``: the entry point's
   name is the robot's name, its value a module (the folder is the module's directory) or a
   callable returning the folder path, for example in the package's ``pyproject.toml``::

       [project.entry-points."robot_meta.robots"]
       mybot = "mybot_robot"                 # the folder of package mybot_robot
       yourbot = "yourbot.robots:folder"     # a function returning a path

3. :func:`register_robot` at run time, and any folder path given where a robot is asked for
   (``get_robot("./my_robot")`` registers the folder under its ``robot.toml`` name, so later
   lookups by name in the same process, such as a bundle's recorded robot, find it).

Plain data (standard library only): the robot computer resolves robots too.
"""

from __future__ import annotations

import importlib.metadata
import os
import tomllib
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

from robot_meta.errors import UserError

BUILTIN_DIR = Path(__file__).resolve().parent / "sim" / "robots"
ROBOT_FILE = "robot.toml"
ENTRY_POINT_GROUP = "robot_meta.robots"

_registered: dict[str, Path] = {}
_entry_points: dict[str, Path] | None = None


class UnknownRobotError(UserError, ValueError):
    """A robot name is not registered, or a folder is not a robot folder."""


def _folder_name(folder: Path) -> str:
    """The ``name`` in a folder's robot.toml (the folder's name when the file does not say)."""
    try:
        data = tomllib.loads((folder / ROBOT_FILE).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UnknownRobotError(f"{folder / ROBOT_FILE}: cannot read the robot's name ({e})") from e
    name = data.get("name", folder.name)
    if not isinstance(name, str) or not name:
        raise UnknownRobotError(f"{folder / ROBOT_FILE}: name must be a non-empty string")
    return name


def builtin_robots() -> dict[str, Path]:
    """The robots bundled with the package, by name (sorted by folder name)."""
    return {p.name: p for p in sorted(BUILTIN_DIR.iterdir()) if (p / ROBOT_FILE).is_file()}


def _to_folder(value: Any, where: str) -> Path:
    """An entry point's loaded value -> a folder: a module's directory, a callable's result, a
    path."""
    if callable(value) and not isinstance(value, ModuleType):
        value = value()
    if isinstance(value, ModuleType):
        if not getattr(value, "__file__", None):
            raise UnknownRobotError(f"{where}: module {value.__name__} has no file")
        return Path(str(value.__file__)).resolve().parent
    if isinstance(value, str | os.PathLike):
        return Path(value).resolve()
    raise UnknownRobotError(f"{where}: expected a module, a path or a callable returning a path, "
                            f"got {type(value).__name__}")


def entry_point_robots() -> dict[str, Path]:
    """Robots that installed packages declare in the ``robot_meta.robots`` entry-point group
    (loaded once per process)."""
    global _entry_points
    if _entry_points is None:
        found: dict[str, Path] = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            where = f"entry point {ep.name} = {ep.value!r} ({ENTRY_POINT_GROUP})"
            try:
                found[ep.name] = _to_folder(ep.load(), where)
            except (ImportError, AttributeError, UnknownRobotError) as e:
                # one broken installed package must not hide every other robot
                warnings.warn(f"{where}: skipped ({e})", stacklevel=2)
        _entry_points = found
    return _entry_points


def registered_robots() -> dict[str, Path]:
    """Every known robot: bundled, then installed (entry points), then registered at run time."""
    return {**builtin_robots(), **entry_point_robots(), **_registered}


def robot_names() -> tuple[str, ...]:
    """The names of every known robot."""
    return tuple(registered_robots())


def register_robot(name_or_def: Any, folder: str | Path | None = None) -> str:
    """Register a robot folder. ``register_robot("mybot", "path/to/mybot")``, or
    ``register_robot(robot_def)`` (a RobotDef: its name and folder), or
    ``register_robot("path/to/mybot")`` (the name is the folder's robot.toml ``name``).
    Returns the name. A bundled or installed robot's name cannot be given to another folder."""
    if folder is None and not isinstance(name_or_def, str | os.PathLike):
        name, path = str(name_or_def.name), Path(name_or_def.folder).resolve()
    elif folder is None:
        path = Path(name_or_def).resolve()
        if not (path / ROBOT_FILE).is_file():
            raise UnknownRobotError(f"{name_or_def}: not a robot folder (no {ROBOT_FILE} in it)")
        name = _folder_name(path)
    else:
        name, path = str(name_or_def), Path(folder).resolve()
    if not (path / ROBOT_FILE).is_file():
        raise UnknownRobotError(f"{path}: not a robot folder (no {ROBOT_FILE} in it)")
    # A bundled or installed robot's name cannot be taken by another folder; a folder registered
    # at run time is replaced by the latest one given.
    known = {**builtin_robots(), **entry_point_robots()}.get(name)
    if known is not None and known.resolve() != path:
        raise UnknownRobotError(f"{path}: robot name {name!r} is already taken by {known}; give the "
                                f"robot another `name` in its {ROBOT_FILE}")
    _registered[name] = path
    return name


def unregister_robot(name: str) -> None:
    """Forget a robot registered at run time (tests)."""
    _registered.pop(name, None)


def looks_like_path(text: str) -> bool:
    """Whether a robot argument is meant as a folder path rather than a name."""
    return os.sep in text or "/" in text or text.startswith(".") or text.startswith("~")


def robot_folder(name_or_path: str | Path, base: str | Path | None = None) -> Path:
    """The folder of a robot given by registered name or by folder path (relative paths are
    resolved against ``base``, default the working directory). A folder given by path is
    registered under its name. Unknown names raise :class:`UnknownRobotError` listing the known
    robots."""
    text = str(name_or_path)
    known = registered_robots()
    if text in known and not isinstance(name_or_path, Path):
        return known[text]
    p = Path(text).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    if (p / ROBOT_FILE).is_file():
        folder = p.resolve()
        register_robot(_folder_name(folder), folder)
        return folder
    if looks_like_path(text) or p.exists():
        raise UnknownRobotError(f"{p}: not a robot folder (no {ROBOT_FILE} in it); "
                                "`robot-meta robot new NAME --from <robot>` makes one")
    raise UnknownRobotError(f"unknown robot {text!r}; known robots: {', '.join(known)} "
                            f"(or give the path of a robot folder holding {ROBOT_FILE})")


def robot_name(name_or_path: str | Path, base: str | Path | None = None) -> str:
    """The registered name of a robot given by name or folder path."""
    folder = robot_folder(name_or_path, base)
    return _folder_name(folder)


def robot_ref(name_or_path: str | Path, base: str | Path | None = None) -> str:
    """How to record a robot in a config: its name when it is bundled or installed, else the
    absolute folder path (so the record stays resolvable in another process)."""
    folder = robot_folder(name_or_path, base)
    name = _folder_name(folder)
    static = {**builtin_robots(), **entry_point_robots()}
    return name if static.get(name) == folder else str(folder)


def default_robot(flag: str) -> str:
    """The first known robot whose robot.toml sets ``flag = true`` (e.g. ``demo``)."""
    for name, folder in registered_robots().items():
        try:
            if tomllib.loads((folder / ROBOT_FILE).read_text()).get(flag) is True:
                return name
        except (OSError, tomllib.TOMLDecodeError):
            continue
    raise UnknownRobotError(f"no robot sets `{flag} = true` in its {ROBOT_FILE}; give one with --robot")
