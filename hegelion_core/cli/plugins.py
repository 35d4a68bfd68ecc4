"""``hegelion plugins``: every role's drivers and the hook plugins, with their status."""

from __future__ import annotations

import json

import click


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """List drivers for every role and the hook plugins, with their status."""
    from hegelion_core.plugins import as_dicts, describe_drivers, describe_hook_plugins

    drivers, hook_plugins = describe_drivers(), describe_hook_plugins()
    if as_json:
        click.echo(
            json.dumps({"drivers": as_dicts(drivers), "hooks": as_dicts(hook_plugins)}, indent=2)
        )
        return
    role = None
    for d in drivers:
        if d.role != role:
            role = d.role
            click.secho(f"{role}:", bold=True)
        origin = f"{d.distribution} {d.version}".strip()
        line = f"  {d.name:<14} {d.status:<14} {origin}"
        click.echo(line)
        if d.error:
            click.echo(f"      error: {d.error}")
        if d.fix:
            click.echo(f"      fix:   {d.fix}")
    click.secho("hooks:", bold=True)
    if not hook_plugins:
        click.echo("  (no hook plugins installed)")
    for h in hook_plugins:
        click.echo(f"  {h.name:<14} {h.status:<14} {h.distribution} {h.version}")
        if h.hooks:
            click.echo(f"      implements: {', '.join(h.hooks)}")
        if h.error:
            click.echo(f"      error: {h.error}")
            click.echo(f"      fix:   {h.fix}")
