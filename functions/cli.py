"""The `cozyplane` command: render claims, serve the function, generate manifests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# structlog (through the SDK) renders with rich when it can import it, and rich is here
# only as a dependency of cel's REPL: keeping it out saves 150 ms and 8 MiB at startup.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]

import click  # noqa: E402
import yaml  # noqa: E402
from crossplane.function import cli as sdkcli  # noqa: E402

# Each command imports what it needs: `serve` should start fast and stay small.


@click.group()
def main() -> None:
    """cozyplane: Cozystack-style tenant services on Crossplane."""


@main.command("render")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--observed",
    type=click.Path(exists=True, path_type=Path),
    help="File or folder of observed composed resources (keyed by their "
    "crossplane.io/composition-resource-name annotation), to preview an update.",
)
@click.option(
    "--required",
    type=click.Path(exists=True, path_type=Path),
    help="File or folder of objects the function may require, such as tenant Namespaces.",
)
@click.option(
    "--composition",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Composition whose step input to use instead of the default one.",
)
@click.option(
    "-n",
    "--namespace",
    help="Namespace of a claim that has none, as a GitOps tool's target namespace sets it.",
)
@click.option("--include-xr", is_flag=True, help="Print the composite with its status first.")
@click.option("-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml")
def render_command(
    file: Path,
    observed: Path | None,
    required: Path | None,
    composition: Path | None,
    namespace: str | None,
    include_xr: bool,
    output: str,
) -> None:
    """Render the claim or composite in FILE to the objects Crossplane would compose."""
    from functions.render import RenderError, load, render  # noqa: PLC0415

    try:
        docs = load(file)
        if len(docs) != 1:
            raise RenderError(f"{file} must hold exactly one claim or composite, not {len(docs)}")
        document = docs[0]
        if namespace:
            meta = document.setdefault("metadata", {})
            if meta.setdefault("namespace", namespace) != namespace:
                raise RenderError(f"{file} is in namespace {meta['namespace']}, not {namespace}")
        result = render(
            document,
            observed=load(observed) if observed else (),
            required=load(required) if required else (),
            composition_doc=load(composition)[0] if composition else None,
        )
    except RenderError as err:
        click.echo(f"cozyplane render: {err}", err=True)
        sys.exit(1)
    for severity, message in result.results:
        click.echo(f"{severity}: {message}", err=True)
    objects: list[dict[str, Any]] = ([result.composite] if include_xr else []) + result.resources
    if output == "json":
        click.echo(json.dumps(objects, indent=2, sort_keys=True))
    else:
        click.echo(yaml.safe_dump_all(objects, sort_keys=True, explicit_start=True), nl=False)


@main.command()
@sdkcli.standard_options
def serve(**options: Any) -> None:
    """Serve function-cozyplane over gRPC (mTLS unless --insecure)."""
    from functions import serving  # noqa: PLC0415
    from functions.runner import FunctionRunner  # noqa: PLC0415

    serving.run(FunctionRunner(), **options)


def _write(files: dict[Path, str], check: bool) -> None:
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    if check:
        for path in stale:
            click.echo(f"out of date: {path}", err=True)
        if stale:
            sys.exit(1)
        return
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        click.echo(f"wrote {path}")


ROOT_HELP = "Repository root to write into."


@main.command()
@click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=Path(), help=ROOT_HELP
)
@click.option("--check", is_flag=True, help="Fail if a file differs instead of writing it.")
def xrds(root: Path, check: bool) -> None:
    """Generate xrds/*.yaml from the API models."""
    from functions.generate import generated  # noqa: PLC0415

    files = generated(root)
    _write({p: t for p, t in files.items() if p.parent.name == "xrds"}, check)


@main.command()
@click.option(
    "--root", type=click.Path(file_okay=False, path_type=Path), default=Path(), help=ROOT_HELP
)
@click.option("--check", is_flag=True, help="Fail if a file differs instead of writing it.")
def generate(root: Path, check: bool) -> None:
    """Generate every derived manifest: XRDs, Compositions, the input CRD, RBAC."""
    from functions.generate import generated  # noqa: PLC0415

    _write(generated(root), check)
