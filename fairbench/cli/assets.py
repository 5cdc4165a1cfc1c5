"""`fairbench assets list | fetch | verify | import`: the downloadable files, their state, and getting them."""

from __future__ import annotations

import dataclasses
import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairbench import assets as store
from fairbench.cli.common import err, progress_bar, user_errors
from fairbench.errors import FairbenchError

assets_app = typer.Typer(
    no_args_is_help=True,
    help="List, download and verify the files fairbench downloads (feature networks, IQA weights).",
)

_STYLE = {
    store.AssetState.VERIFIED: "green",
    store.AssetState.UNVERIFIED: "yellow",
    store.AssetState.MISSING: "yellow",
    store.AssetState.CORRUPT: "bold red",
    store.AssetState.USER_SUPPLIED_MISSING: "dim",
}


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _selected(manifest: dict[str, store.Asset], ids: list[str] | None) -> list[store.Asset]:
    if not ids:
        return list(manifest.values())
    return [store.get_asset(i, manifest) for i in ids]


@assets_app.command("list")
@user_errors
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """Every asset in the manifest: size, licence, whether it is here, and where it lives."""
    from fairbench.task_registry import list_tasks

    manifest = store.load_manifest()
    needed = store.assets_needed_by_tasks(manifest=manifest, tasks=list_tasks())
    rows = []
    for asset in manifest.values():
        st = store.status(asset)
        size = asset.size_bytes
        if size is None and st.path.is_file():
            size = st.path.stat().st_size
        rows.append((asset, st, size))
    if as_json:
        out = [
            {
                "id": a.id, "state": st.state.value, "path": str(st.path), "size_bytes": size, "licence": a.licence,
                "sha256": a.sha256, "url": a.url, "user_supplied": a.user_supplied, "used_by": list(a.used_by),
                "needed": a.id in needed,
                "imported": dataclasses.asdict(st.imported) if st.imported is not None else None,
            }
            for a, st, size in rows
        ]
        typer.echo(json.dumps(out, indent=2))
        return
    # Ids and sizes are what users type and compare: never wrapped. Paths are shown under the root in the title.
    root = store.assets_root()
    console = Console()
    table = Table(title="fairbench assets")
    table.add_column("id", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("licence", overflow="fold", max_width=12)
    table.add_column("state", min_width=14, overflow="fold")
    id_width = max(len(a.id) for a, _, _ in rows)
    # rich does not shrink a folding column below its longest word: give the path what the others leave
    table.add_column("path", overflow="fold", max_width=max(10, console.width - id_width - 7 - 12 - 14 - 16 - 1))
    for a, st, size in rows:
        state = f"[{_STYLE[st.state]}]{escape(st.label)}[/]"
        shown = st.path.relative_to(root) if st.path.is_relative_to(root) else st.path
        table.add_row(a.id, _size(size), escape(a.licence.split(" (")[0]), state, escape(str(shown)))
    console.print(f"paths under {escape(str(root))}", soft_wrap=True, highlight=False)
    console.print(table)


@assets_app.command("fetch")
@user_errors
def fetch_cmd(
    ids: list[str] | None = typer.Argument(None, help="Asset ids (see `fairbench assets list`)."),
    all_assets: bool = typer.Option(False, "--all", help="Every downloadable asset."),
) -> None:
    """Download assets into the fairbench home, each checked against its sha256 before it is kept."""
    manifest = store.load_manifest()
    if not ids and not all_assets:
        raise FairbenchError("name the assets to fetch (see `fairbench assets list`) or pass --all")
    targets = list(manifest.values()) if all_assets else _selected(manifest, ids)
    with progress_bar() as bar:
        for asset in targets:
            if asset.user_supplied:
                if not all_assets:
                    raise FairbenchError(f"asset {asset.id!r} is user-supplied: {store.placement_hint(asset)}")
                st = store.status(asset)
                if not st.usable:
                    err.print(f"skipped {asset.id}: user-supplied, not present ({escape(str(st.path))})")
                continue
            st = store.status(asset)
            if st.imported is not None:  # fetch would keep it as verified: say so rather than imply a download
                err.print(f"kept {asset.id}: {st.label}; delete {escape(str(st.path))} to download the published file")
                continue
            handle = bar.add_task(asset.id, total=asset.size_bytes, info="")

            def progress(done: int, total: int | None, handle=handle) -> None:
                info = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f} MB" if total else " MB")
                bar.update(handle, completed=done, total=total, info=info)

            path = store.fetch(asset, progress, manifest=manifest)
            bar.update(handle, info="verified")
            typer.echo(f"{asset.id}: {path}")


@assets_app.command("verify")
@user_errors
def verify_cmd(ids: list[str] | None = typer.Argument(None, help="Asset ids; default: all.")) -> None:
    """Re-check the local files; exit 1 if an asset the tasks use (or one named here) is missing or corrupt.

    Other missing assets, and user-supplied ones that no task needs, are listed only."""
    from fairbench.task_registry import list_tasks

    manifest = store.load_manifest()
    selected = _selected(manifest, ids)
    needed = store.assets_needed_by_tasks(manifest=manifest, tasks=list_tasks()) | set(ids or ())
    failed = []
    for asset in selected:
        st = store.status(asset)
        mark = "needed" if asset.id in needed else "optional"
        typer.echo(f"{asset.id}\t{st.label}\t{mark}\t{st.path}")
        if asset.id in needed and not st.usable:
            failed.append(st)
    for st in failed:
        err.print(f"[bold red]error:[/] {escape(store.problem_message(st))}", soft_wrap=True, highlight=False)
    if failed:
        raise typer.Exit(1)


@assets_app.command("import")
@user_errors
def import_cmd(
    asset_id: str = typer.Argument(..., help="Asset id (see `fairbench assets list`)."),
    path: str = typer.Argument(..., help="Your own copy: the published file, or a copy the manifest lists."),
    substitute: bool = typer.Option(
        False, "--substitute",
        help="Accept a file that is neither the published one nor a listed copy; results then carry its sha256.",
    ),
    fmt: str = typer.Option(
        "copy", "--format", help="For --substitute: copy, or libsvm-brisque to convert a libsvm text model.",
    ),
) -> None:
    """Put a local copy of an asset in place, checked by sha256; converted or substitute files get their own."""
    from fairbench.metrics.iqa_weights import import_weights

    result = import_weights(asset_id, path, substitute=substitute, substitute_format=fmt)
    if result.kind == "published":
        typer.echo(f"{result.asset.id}: the published file (sha256 {result.sha256}), now at {result.path}")
    elif result.kind == "converted":
        typer.echo(
            f"{result.asset.id}: converted {result.local_copy.name if result.local_copy else path} "
            f"(sha256 {result.source_sha256}) into {result.path}, sha256 {result.sha256}: the published "
            f"parameters in a file of its own; results record that sha256"
        )
    else:
        typer.echo(
            f"{result.asset.id}: substitute {path} (sha256 {result.source_sha256}) at {result.path}, sha256 "
            f"{result.sha256}: NOT the published parameters; results that use it record that sha256"
        )
