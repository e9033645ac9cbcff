"""``robot-meta robot``: make and check robot folders.

    robot-meta robot new mybot --from arm2 [--dir DIR]   # a renamed copy in DIR/mybot
    robot-meta robot check mybot [--json]                 # is the folder consistent?

A robot is one folder (robot.toml, model.xml, twin.urdf, families.toml, tasks.py, optional
reset.py / randomize.py, launch/*.toml); see :mod:`robot_meta.robot_toml`.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
# What a scaffold copies: the robot's files, its launch files and its demo's hidden robot.
COPIED = ("robot.toml", "model.xml", "twin.urdf", "families.toml", "*.py", "*.toml", "launch/*.toml")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("robot", help="scaffold a new robot folder, or check one",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ss = p.add_subparsers(dest="robot_cmd", required=True)
    n = ss.add_parser("new", help="copy a robot folder under a new name (trains out of the box)")
    n.add_argument("name", help="the new robot's name (lower case letters, digits, _)")
    n.add_argument("--from", dest="source", required=True,
                   help="the robot to copy: a registered name or a robot folder")
    n.add_argument("--dir", default=".", help="where to create the folder NAME (default .)")
    c = ss.add_parser("check", help="check a robot folder: MJCF, URDF, names, families, twin")
    c.add_argument("path", help="a robot folder (or a registered robot name)")
    c.add_argument("--json", action="store_true",
                   help="print a JSON list of {check, ok, detail}")
    p.set_defaults(func=run)


def _word(name: str) -> re.Pattern[str]:
    """``name`` as a whole word (letters and digits around it end the match; _ and - do not)."""
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])")


def new_robot(name: str, source: str, directory: str | Path = ".") -> Path:
    """Copy robot ``source`` into ``directory/name`` under the new name: robot.toml's ``name``,
    families.toml's ``robot``, the MJCF model and URDF robot names, and the launch files (renamed
    ``<name>-<family>-<method>.toml``, with ``robot = ".."``: the folder above them)."""
    from robot_meta.errors import UserError
    from robot_meta.robot_registry import robot_folder, robot_name, robot_names

    if not NAME_RE.match(name):
        raise UserError(f"robot name {name!r}: use lower case letters, digits and _, starting "
                        "with a letter")
    if name in robot_names():
        raise UserError(f"a robot named {name!r} already exists; pick another name")
    src = robot_folder(source)
    old = robot_name(src)
    dest = Path(directory) / name
    if dest.exists():
        raise UserError(f"{dest} already exists; remove it or pick another --dir")
    files = sorted({p for pattern in COPIED for p in src.glob(pattern) if p.is_file()})
    files = [p for p in files if p.name != "__init__.py"]
    tmp = dest.with_name(f".{name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    word = _word(old)
    for f in files:
        rel = f.relative_to(src)
        if rel.parts[0] == "launch":
            rel = Path("launch", word.sub(name, rel.name, count=1))
        out = tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        text = f.read_text()
        if f.name == "robot.toml":
            text = re.sub(r'^name\s*=\s*"[^"]*"', f'name = "{name}"', text, count=1, flags=re.M)
            text = re.sub(r"^demo\s*=.*\n", "", text, flags=re.M)  # the bundled demo robot stays
        elif f.name in ("families.toml", "demo_hidden.toml"):
            text = re.sub(r'^robot\s*=\s*"[^"]*"', 'robot = "."' if f.name == "demo_hidden.toml"
                          else f'robot = "{name}"', text, count=1, flags=re.M)
        elif f.suffix in (".xml", ".urdf"):
            text = re.sub(r'(<(?:mujoco model|robot name)=")' + re.escape(old) + '"',
                          rf'\g<1>{name}"', text, count=1)
        elif rel.parts[0] == "launch":
            text = word.sub(name, text)
            text = re.sub(r'^robot\s*=\s*"[^"]*"', 'robot = ".."', text, count=1, flags=re.M)
        out.write_text(text)
    tmp.rename(dest)  # the folder appears whole or not at all
    return dest


def run(args: argparse.Namespace) -> int:
    if args.robot_cmd == "new":
        dest = new_robot(args.name, args.source, args.dir)
        import tomllib

        head = tomllib.loads((dest / "families.toml").read_text()).get("headline", "")
        launch = sorted((dest / "launch").glob("*.toml"),
                        key=lambda p: (p.stem != f"{args.name}-{head}-ppo", p.name))
        print(f"created robot {args.name!r} in {dest} (a copy of {args.source}). Next:")
        print(f"  edit {dest}/robot.toml, model.xml, twin.urdf, families.toml, tasks.py")
        print(f"  robot-meta robot check {dest}")
        if launch:
            print(f"  robot-meta train {launch[0]}")
        return 0
    from robot_meta.sim.robot_check import check_robot

    results = check_robot(args.path)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.check}: {r.detail}")
        bad = [r.check for r in results if not r.ok]
        print(f"{len(results) - len(bad)}/{len(results)} checks passed"
              + (f"; failed: {', '.join(bad)}" if bad else ""))
    return 0 if all(r.ok for r in results) else 1
