#!/usr/bin/env python3
"""Drives real Helm (the `helm-sdkpy` package, which bundles Helm's own library) for the
chart tests and for deploy/generate.sh.

  helm_tool.py lint CHART
  helm_tool.py install --kubeconfig K --namespace NS --release R [--values JSON] CHART
  helm_tool.py render  --kubeconfig K --namespace NS --release R [--values JSON] CHART

`install` installs (without waiting for pods: the test bed has no kubelet) and prints
the release as JSON. `render` prints the manifest Helm applied: a fresh install of the
release (an earlier one of the same name is uninstalled first), because helm-sdkpy has
no `template` action.
"""

import argparse
import asyncio
import json
import sys

import helm_sdkpy as helm


def config(args):
    return helm.Configuration(namespace=args.namespace, kubeconfig=args.kubeconfig)


async def lint(args):
    result = await helm.Lint(helm.Configuration()).run(args.chart)
    print(json.dumps(result, indent=2))
    # Helm's severities: 1 info, 2 warning, 4 error.
    messages = result.get("Messages") or []
    errors = [m for m in messages if int(m.get("Severity", 0)) >= 2]
    if errors or result.get("Errors"):
        sys.exit("helm lint: the chart has warnings or errors")


async def install(args, quiet=False):
    values = json.loads(args.values) if args.values else None
    release = await helm.Install(config(args)).run(
        args.release,
        args.chart,
        values=values,
        create_namespace=True,
        wait=False,
        timeout=120,
    )
    if not quiet:
        print(json.dumps(release, indent=2, default=str))
    return release


async def render(args):
    try:
        await helm.Uninstall(config(args)).run(args.release, wait=False)
    except helm.HelmError:
        pass
    release = await install(args, quiet=True)
    manifest = release.get("manifest")
    if not manifest:
        sys.exit(f"no manifest in the release: {sorted(release)}")
    sys.stdout.write(manifest if manifest.endswith("\n") else manifest + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("lint")
    p.add_argument("chart")
    for name in ("install", "render"):
        p = sub.add_parser(name)
        p.add_argument("--kubeconfig", required=True)
        p.add_argument("--namespace", required=True)
        p.add_argument("--release", required=True)
        p.add_argument("--values", default="")
        p.add_argument("chart")
    args = parser.parse_args()
    try:
        asyncio.run({"lint": lint, "install": install, "render": render}[args.command](args))
    except helm.HelmError as e:
        sys.exit(f"helm {args.command}: {e}")


if __name__ == "__main__":
    main()
