"""``robot-meta export RUN_DIR -o BUNDLE_DIR``: compile a trained run into a verified ONNX bundle."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export", help="compile a trained run's policy and context encoder into an ONNX bundle",
        description="Export the policy and context encoder(s) of a run to single-file ONNX models "
                    "with the observation normalizer and action clipping baked in, check them "
                    "(onnx.checker, torch vs onnxruntime parity <= 1e-5 on random and recorded sim "
                    "inputs) and write BUNDLE_DIR with manifest.json (SHA-256 of every file).")
    p.add_argument("run_dir", nargs="?", help="a run directory made by `robot-meta train`")
    p.add_argument("-o", "--out", help="the bundle directory to write")
    p.add_argument("--force", action="store_true", help="replace an existing bundle directory")
    p.add_argument("--sign", metavar="KEY", help="sign the bundle with this ed25519 private key")
    p.add_argument("--keygen", metavar="KEY",
                   help="create a new signing key pair at KEY and KEY.pub, print the public key "
                        "(list it under trusted_keys in robot.toml) and exit")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from robot_meta.errors import UserError

    if args.keygen:
        from robot_meta.export.signing import generate_key

        if Path(args.keygen).exists():
            raise UserError(f"{args.keygen} exists; choose a new path for the key")
        print(generate_key(args.keygen))
        return 0
    if not args.run_dir or not args.out:
        raise UserError("give a run directory and -o BUNDLE_DIR (or --keygen KEY)")

    from robot_meta.export.exporter import ExportInfo, export_bundle
    from robot_meta.learn.evaluate import load_run

    cfg, algo = load_run(args.run_dir)
    modules = algo.deployment_modules()
    fields = algo.export_fields()
    from robot_meta.robot_registry import robot_name

    # the bundle records the robot's name (a folder robot given by path is registered under it)
    info = ExportInfo(robot=robot_name(cfg.run.robot), method=cfg.run.algorithm, task=cfg.run.task or "",
                      family=str(cfg.run.family), latent_dim=int(fields["latent_dim"]),
                      history_length=int(fields["history_length"]), seed=cfg.run.seed,
                      config_text=cfg.to_toml(), run_dir=str(Path(args.run_dir).resolve()),
                      extra=dict(fields["extra"]))
    manifest = export_bundle(modules, info, args.out, overwrite=args.force, seed=cfg.run.seed)
    signer = None
    if args.sign:
        from robot_meta.export.signing import sign_bundle

        signer = sign_bundle(args.out, args.sign)
    if args.json:
        print(manifest.to_json())
    else:
        files = ", ".join(f"{n} ({e.role}{', float64 inside' if e.precision != 'float32' else ''})"
                          for n, e in manifest.files.items())
        print(f"bundle {args.out}: {manifest.robot} {manifest.method}, {files}; parity <= 1e-5 "
              f"verified{'; signed by ' + signer[:16] + '...' if signer else ''}")
    return 0
