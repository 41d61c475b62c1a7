"""The ``wmkit`` command line. Imports torch, datasets and transformers only inside commands."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from wmkit import __version__
from wmkit.errors import WmkitError, reports_errors


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr)


def _host():
    from wmkit.plugins import get_host

    return get_host()


def _warn_plugin_errors(host) -> None:
    for record in host.errors():
        click.echo(f"warning: plugin {record.name!r} failed to load: {record.error} "
                   f"(`wmkit plugins` lists it; WMKIT_DISABLE_PLUGINS={record.name} hides it)", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wmkit")
@click.option("--strict-plugins", is_flag=True, envvar="WMKIT_STRICT_PLUGINS",
              help="Fail when any plugin fails to load (for CI).")
@click.pass_context
def cli(ctx, strict_plugins):
    """Train and audit tiny JEPA world models of transitions."""
    if strict_plugins:
        from wmkit.plugins import PluginHost, reset_host

        try:
            reset_host(PluginHost(strict=True))
        except WmkitError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)


# ---------------------------------------------------------------------------------------------
# plugins and recipes
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@reports_errors
def plugins(as_json):
    """List installed domains and components, and plugins that failed to load."""
    host = _host()
    host.check_components()  # imports lazy targets: an import failure or abstract gap shows here
    rows = host.listing()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="wmkit plugins")
    for col in ("kind", "name", "plugin", "version", "status", "description / error"):
        table.add_column(col)
    for row in rows:
        status = "[green]ok[/]" if row["status"] == "ok" else f"[red]{escape(row['status'])}[/]"
        table.add_row(*(escape(str(x)) for x in (row["kind"], row["name"], row["plugin"], row["version"] or "")),
                      status, escape(row["error"] or row["description"] or ""))
    _console().print(table)


@cli.command()
@reports_errors
def recipes():
    """List the shipped recipes."""
    from rich.table import Table

    from wmkit.recipe import describe_recipe, shipped_recipes

    from rich.markup import escape

    table = Table(title="shipped recipes (wmkit train NAME or a path)")
    table.add_column("recipe")
    table.add_column("description")
    for name, path in sorted(shipped_recipes().items()):
        table.add_row(escape(name), escape(describe_recipe(path)))
    _console().print(table)
    _warn_plugin_errors(_host())


@cli.group()
def recipe():
    """Inspect recipes."""


def recipe_options(fn):
    fn = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                      help="Override a recipe key (repeatable), e.g. --set model.encoder.loops=4.")(fn)
    fn = click.option("--domain", default=None, help="Domain plugin to use (sets data.domain).")(fn)
    return fn


def _load_recipe(source, overrides, domain):
    from wmkit.recipe import load_recipe

    host = _host()
    if domain is not None:
        host.get("domain", domain)  # unknown domain -> error listing the available ones
    loaded = load_recipe(source, overrides=list(overrides), domain=domain, host=host)
    from rich.markup import escape

    for note in loaded.notes:  # deprecated keys: say so, on stderr (stdout may be a recipe being written)
        _console(stderr=True).print(f"[yellow]note[/]: {escape(note)}")
    return loaded


@recipe.command("show")
@click.argument("recipe_name", metavar="RECIPE", required=False)
@recipe_options
@reports_errors
def recipe_show(recipe_name, overrides, domain):
    """Print the fully resolved RECIPE (name or path) as TOML."""
    resolved = _load_recipe(recipe_name, overrides, domain)
    click.echo(f"# resolved from {resolved.origin}" + (f" with {', '.join(resolved.overrides)}" if resolved.overrides else ""))
    for var, value in resolved.env.items():
        click.echo(f"# environment: {var}={value}")
    click.echo(resolved.to_toml(), nl=False)


@recipe.command("keys")
@click.argument("recipe_name", metavar="RECIPE", required=False)
@recipe_options
@click.option("--markdown", is_flag=True, help="Print Markdown tables (docs/recipes.md is made with this).")
@reports_errors
def recipe_keys(recipe_name, overrides, domain, markdown):
    """Every key RECIPE accepts (core and its plugins' options): type, default, help; and the WM_* table."""
    from wmkit.recipe import ENV_VARS, build_schema
    from wmkit.schema import Field

    resolved = _load_recipe(recipe_name, overrides, domain)
    schema = build_schema(resolved.values, _host())
    rows = []

    def walk(node, prefix=""):
        for key, spec in node.items():
            if isinstance(spec, Field):
                choices = f" (one of {', '.join(map(str, spec.choices))})" if spec.choices else ""
                rows.append((f"{prefix}{key}", spec.type_name, json.dumps(spec.default), spec.help + choices))
            else:
                walk(spec, f"{prefix}{key}.")

    walk(schema)
    env_rows = [(var, key, note) for var, (key, _c, note) in ENV_VARS.items()]
    if markdown:
        click.echo("| key | type | default | meaning |\n|---|---|---|---|")
        for row in rows:
            click.echo("| `" + "` | ".join(row[:1]) + "` | " + " | ".join(r.replace("|", "\\|") for r in row[1:]) + " |")
        click.echo("\n| variable | recipe key | note |\n|---|---|---|")
        for var, key, note in env_rows:
            click.echo(f"| `{var}` | `{key}` | {note} |")
        return
    from rich.markup import escape
    from rich.table import Table

    # help texts hold brackets (hf:ID[/CONFIG]) that rich would read as markup
    table = Table(title=escape(f"keys of {resolved.options.meta.name}"))
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    env_table = Table(title="paper environment variables (recipe < environment < --set)")
    for col in ("variable", "recipe key", "note"):
        env_table.add_column(col)
    for row in env_rows:
        env_table.add_row(*(escape(cell) for cell in row))
    _console().print(table)
    _console().print(env_table)


@cli.command("model")
@click.argument("recipe_name", metavar="RECIPE", required=False)
@recipe_options
@reports_errors
def model_info(recipe_name, overrides, domain):
    """Print the parameter breakdown of the model a RECIPE builds."""
    from rich.table import Table

    from wmkit.model import build_world_model
    from wmkit.runtime import make_domain

    resolved = _load_recipe(recipe_name, overrides, domain)
    dom = make_domain(resolved, _host())
    model = build_world_model(resolved.values, vocab_size=dom.vocab.size, pad_id=dom.vocab.pad_id,
                              action_dim=dom.action_dim, resolve=_host().constructor)
    table = Table(title=f"{resolved.options.meta.name} on {dom.name} (vocab {dom.vocab.size}, "
                        f"action {dom.action_dim}-D)")
    table.add_column("part")
    table.add_column("parameters", justify="right")
    for name, count in model.parameter_breakdown():
        table.add_row(name, f"{count:,}")
    _console().print(table)


# ---------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------


def complete_recipe(ctx, param, incomplete: str):
    """Shell completion of a RECIPE argument: the shipped recipe names, then TOML files."""
    from click.shell_completion import CompletionItem

    from wmkit.recipe import shipped_recipes

    names = [CompletionItem(name) for name in sorted(shipped_recipes()) if name.startswith(incomplete)]
    return names + [CompletionItem(incomplete, type="file")]


@cli.command()
@click.argument("recipe_name", metavar="[RECIPE]", required=False, shell_complete=complete_recipe)
@recipe_options
@click.option("--data", "data_source", default=None, metavar="SOURCE",
              help="Data source: jsonl:PATH, parquet:PATH, hf:ID[/CONFIG][@REV], git:PATH[@REV] (overrides data.source).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run directory (default under runs/).")
@click.option("--resume", type=click.Path(path_type=Path), default=None, metavar="RUN_DIR",
              help="Continue RUN_DIR exactly from its latest checkpoint.")
@click.option("--force", is_flag=True, help="Replace an existing run in --out (once the new one has validated).")
@click.option("--checkpoint", "checkpoint_name", default=None, metavar="step-N",
              help="With --resume: continue from this checkpoint instead of the latest.")
@click.option("--early-stop", type=click.IntRange(min=1), default=None, metavar="N",
              help="Stop at step N, keeping the full recipe's learning-rate schedule.")
@click.option("--live/--no-live", default=None, help="Rich live view (default: on a terminal).")
@click.option("--logger", "loggers", multiple=True, metavar="NAME",
              help="Experiment logger (repeatable; sets train.loggers), e.g. --logger tensorboard. "
                   "metrics.jsonl is always written.")
@reports_errors
def train(recipe_name, overrides, domain, data_source, out, resume, force, checkpoint_name, early_stop, live, loggers):
    """Train a world model from RECIPE (default: the domain's default recipe)."""
    from wmkit.errors import RunError
    from wmkit.train import train as run_training

    if data_source is not None:
        overrides = (*overrides, f"data.source={json.dumps(data_source)}")
    if loggers:
        overrides = (*overrides, f"train.loggers={json.dumps(list(loggers))}")
    if checkpoint_name is not None and resume is None:
        raise RunError(f"--checkpoint {checkpoint_name}: only meaningful with --resume RUN_DIR")
    if resume is not None:
        if force:
            raise RunError(f"--resume {resume} --force: --resume continues the run and --force replaces it; "
                           f"pass only one")
        if out is not None and Path(out) != Path(resume):
            raise click.UsageError("--out and --resume name different directories")
        out = resume
        if recipe_name is None:
            # the run's own recipe, plus WM_* and --set: any difference is named (and refused) by train
            resolved = _recipe_of_run(resume, overrides, domain)
        else:
            resolved = _load_recipe(recipe_name, overrides, domain)
    else:
        resolved = _load_recipe(recipe_name, overrides, domain)
    _warn_plugin_errors(_host())
    result = run_training(resolved, out=out, resume=resume is not None, force=force, early_stop=early_stop,
                          host=_host(), console=_console(stderr=True), live=live, checkpoint=checkpoint_name)
    from wmkit.distributed import from_environment

    if from_environment().is_main:  # under torchrun, rank 0 speaks for the job
        _print_summary(result)
        if resolved.options.eval.final_audit:
            _print_final_audit(result)


def _recipe_of_run(run_dir: Path, overrides=(), domain=None):
    from wmkit.recipe import recipe_over_run
    from wmkit.train import _run_config

    body = _run_config(Path(run_dir))
    extra = [*overrides, *([f"data.domain={json.dumps(domain)}"] if domain is not None else [])]
    recipe = recipe_over_run(body["recipe"], overrides=extra, host=_host(),
                             origin=str(body.get("origin") or Path(run_dir) / "config.json"))
    # keep what the run recorded about where its recipe came from (config.json is rewritten on a restart)
    recorded_overrides = body.get("overrides") if isinstance(body.get("overrides"), list) else []
    recipe.overrides = [*recorded_overrides, *recipe.overrides]
    return recipe


def _print_summary(result) -> None:
    console = _console()
    ev = result.last_eval
    how = "stopped early" if result.stopped_early else "finished"
    console.print(f"[bold green]{how}[/] at step {result.step}: run in {result.run_dir}")
    if ev:
        console.print(f"  val probe (gallery N={ev['gallery_size']}): KNN@1 {ev['knn_at_1']:.3f} vs copy "
                      f"{ev['copy_knn_at_1']:.3f} and random {ev['random_knn_at_1']:.3f}; KNN@5 {ev['knn_at_5']:.3f} "
                      f"vs copy {ev['copy_knn_at_5']:.3f} and random {ev['random_knn_at_5']:.3f}; closer than copy "
                      f"on {100 * ev['beats_copy']:.1f}% of pairs")
        console.print(f"  cos {ev['cos']:.3f}, delta cos {ev['delta_cos']:.3f}, lift {ev['lift']:+.3f} over copy_cos "
                      f"{ev['copy_cos']:.3f}; erank online/target/pred "
                      f"{ev['erank_online']:.1f}/{ev['erank_target']:.1f}/{ev['erank_pred']:.1f}")
    console.print(f"  best checkpoint: {result.best}; next: wmkit audit {result.run_dir} --full-val")
    for w in result.warnings:
        console.print(f"  [yellow]warning[/] step {w['step']}: {w['kind']}: {w['message']}")


def _print_final_audit(result) -> None:
    """``eval.final_audit``: the audit's headline beside its baselines, then the commands to go on with."""
    from wmkit.audit import run_audit
    from wmkit.audit.report import pct, verdict_line

    console = _console()
    say = functools.partial(console.print, soft_wrap=True)  # paths and commands stay copyable: never wrapped
    audit = run_audit(result.run_dir, full_val=True, progress=False)
    n = audit.get("gallery_size")
    say(f"[bold]audit[/] of {audit.get('checkpoint_name')} on all {n} validation pairs "
        f"({audit.get('timing', {}).get('total_s', 0):.0f}s):")
    say(verdict_line(audit))
    copy, linear = audit.get("copy_knn_at_k") or {}, audit.get("linear_edit_knn_at_k") or {}
    for k in (1, 5):
        say(f"  KNN@{k}: model {pct(audit.get(f'knn_at_{k}'))} | copy {pct(copy.get(str(k)))} | linear edit "
            f"{pct(linear.get(str(k)))} | random {pct(audit.get(f'random_knn_at_{k}'))}")
    centred = audit.get("erank_centred") or {}
    ranks = "/".join(f"{(centred.get(part) or {}).get('erank', float('nan')):.1f}" for part in ("online", "target", "pred"))
    beats = (audit.get("beats_copy") or {}).get("rate")
    say(f"  effective rank (centred) online/target/pred {ranks} of {audit.get('embedding_dim')}; closer than "
        f"copy on {pct(beats)} of pairs")
    run = result.run_dir
    say("next:")
    say(f"  wmkit audit {run} --geometry          the full report (saved to {audit.get('saved_to', run)})")
    say(f"  wmkit audit {run} --html audit.html   the same as an HTML page")
    say(f"  wmkit sweep {_recipe_hint(run)} --grid optim.lr=1e-4,3e-4 --seeds 1,2   a small sweep, each run audited")


def _recipe_hint(run_dir) -> str:
    try:
        origin = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8")).get("origin")
    except (OSError, ValueError):
        origin = None
    return str(origin or "RECIPE")


# ---------------------------------------------------------------------------------------------
# audit and compare
# ---------------------------------------------------------------------------------------------


@cli.command()
@click.argument("checkpoint", metavar="CKPT", type=click.Path(path_type=Path))
@click.option("--full-val", is_flag=True, help="Audit over N = 5,000 validation pairs (or the whole split if smaller).")
@click.option("--val-size", type=click.IntRange(min=2), default=None, metavar="N", help="Audit over N validation pairs.")
@click.option("--geometry", is_flag=True, help="Add the geometry probes (paper Appendix C).")
@click.option("--data", default=None, metavar="SOURCE", help="Data source (default: the one the checkpoint recorded).")
@click.option("--split", type=click.Choice(["val", "holdout"]), default="val", show_default=True,
              help="Audit the validation split, or the repositories the recipe held out (data.holdout_repos).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the results as JSON.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None,
              help="Write a self-contained HTML report with plots.")
@reports_errors
def audit(checkpoint, full_val, val_size, geometry, data, split, json_out, html_out):
    """Audit CKPT (a run directory: its best checkpoint, else latest; one checkpoint directory; or an export)."""
    from wmkit.audit import render_report, run_audit, save_result, write_html

    for flag, target in (("--json", json_out), ("--html", html_out)):
        if target is not None:
            _check_writable(flag, target)  # before the audit runs, not after
    result = run_audit(checkpoint, full_val=full_val, val_size=val_size, geometry=geometry, data=data,
                       host=_host(), console=_console(stderr=True), split=split)
    render_report(result, _console())
    try:
        if json_out:
            save_result(result, json_out)
        if html_out:
            write_html(result, html_out)
    except OSError as exc:
        raise WmkitError(f"cannot write {exc.filename or json_out or html_out} ({exc.strerror}); "
                         f"choose another path") from None


@cli.command("export")
@click.argument("source", metavar="RUN_OR_CHECKPOINT", type=click.Path(path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace OUT if it holds a wmkit export (written beside it, then swapped in).")
@click.option("--no-audit", "no_audit", is_flag=True,
              help="Export a checkpoint that was never audited (the model card says so).")
@click.option("--push", default=None, metavar="REPO_ID", help="Also upload OUT to this Hugging Face Hub model repository.")
@reports_errors
def export_cmd(source, out, force, no_audit, push):
    """Export a run's best checkpoint (or one checkpoint) to OUT: model.safetensors, config.json, README.md model card."""
    from wmkit.export import export

    export(source, out, force=force, no_audit=no_audit, push=push, host=_host())
    click.echo(f"exported {source} to {out}" + (f" and pushed it to {push}" if push else "")
               + f"; load it with wmkit.load({str(out)!r}) or audit it with `wmkit audit {out}`")


def _check_writable(flag: str, path: Path) -> None:
    """Refuse an output path that is a directory or cannot be created, before any work is done."""
    import tempfile

    if path.is_dir():
        raise WmkitError(f"{flag} {path}: is a directory; name a file, e.g. {path / ('audit' + path.suffix)}")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the folders to create: probe the nearest one that exists
    try:
        if not parent.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(parent))
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".wmkit-probe-"):
            pass
    except OSError as exc:
        raise WmkitError(f"{flag} {path}: cannot write there ({exc.strerror or type(exc).__name__}); "
                         f"choose another path") from None


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--val-size", type=click.IntRange(min=2), default=None, metavar="N",
              help="Gallery size when an audit must be run (default: full validation).")
@click.option("--data", default=None, metavar="SOURCE", help="Data source for audits that must be run.")
@click.option("--rerun", is_flag=True, help="Audit again even where a matching audit.json exists.")
@click.option("--by-seed", is_flag=True, help="Group runs that differ only in their seed; mean ± sd per group.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write one record per run as JSON ('-': print it instead of the table).")
@click.option("--csv", "csv_out", type=click.Path(path_type=Path), default=None,
              help="Also write one row per run as CSV ('-': print it instead of the table).")
@reports_errors
def compare(runs, val_size, data, rerun, by_seed, json_out, csv_out):
    """Put the audits of several runs side by side (KNN over random, ranks, gaps, warnings)."""
    from wmkit.audit.core import to_jsonable
    from wmkit.compare import comparison_records, comparison_table, compare_results, records_csv, seed_grouped_table

    named = compare_results(runs, val_size=val_size, data=data, rerun=rerun)
    records = to_jsonable(comparison_records(named))
    for target, text in ((json_out, lambda: json.dumps(records, indent=2) + "\n"), (csv_out, lambda: records_csv(records))):
        if target is None:
            continue
        if str(target) == "-":
            click.echo(text(), nl=False)
        else:
            Path(target).write_text(text(), encoding="utf-8")
    if "-" not in (str(json_out), str(csv_out)):
        _console().print(seed_grouped_table(named) if by_seed else comparison_table(named))


# ---------------------------------------------------------------------------------------------
# sweeps
# ---------------------------------------------------------------------------------------------


class _SweepGroup(click.Group):
    """``wmkit sweep RECIPE …`` runs a sweep (the ``run`` subcommand); ``wmkit sweep report DIR`` reports one."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=_SweepGroup)
def sweep():
    """Sweeps: a grid of recipe overrides x seeds, each run audited; the ablation log and cross-seed matrix."""


@sweep.command("run")
@click.argument("recipe_name", metavar="RECIPE")
@recipe_options
@click.option("--grid", "grid", multiple=True, metavar="KEY=V1,V2",
              help="A grid axis (repeatable); values use the --set grammar, e.g. --grid loss.aux.weight=0.1,0.3.")
@click.option("--seeds", default=None, metavar="S1,S2", help="Seeds of every grid point (default: the recipe's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="train.steps of every run.")
@click.option("--audit-at", default=None, metavar="N,M,best",
              help="Checkpoints to audit: step numbers, best, last (default: last).")
@click.option("--data", "data_source", default=None, metavar="SOURCE", help="Data source of every run.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Sweep directory (default under sweeps/).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Runs at a time (local executor).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", default=None, metavar="HOST:PORT", help="Ray cluster to join (default: a local Ray instance).")
@click.option("--gpus-per-run", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="GPUs each Ray task asks for.")
@click.option("--val-size", type=click.IntRange(min=2), default=None, metavar="N", help="Audit gallery size.")
@click.option("--full-val", is_flag=True, help="Audit over N = 5,000 validation pairs (or the whole split).")
@click.option("--tier", default=None, help="Tier name in the ablation log (default: from the steps).")
@click.option("--live/--no-live", default=None, help="Rich live table (default: on a terminal).")
@reports_errors
def sweep_run(recipe_name, overrides, domain, grid, seeds, steps, audit_at, data_source, out, jobs, executor,
              address, gpus_per_run, val_size, full_val, tier, live):
    """Run (or resume) a sweep of RECIPE (a recipe, or a TOML file with a [sweep] table)."""
    from wmkit.api import sweep as run_sweep
    from wmkit.sweep.report import rich_tables

    if address and executor != "ray":
        raise click.UsageError("--address is for --executor ray")
    done = run_sweep(recipe_name, grid=grid, seeds=seeds, steps=steps, audit_at=audit_at, overrides=overrides,
                     data=data_source, domain=domain, out=out, jobs=jobs, executor=executor, address=address,
                     gpus_per_run=gpus_per_run, val_size=val_size, full_val=full_val, tier=tier,
                     console=_console(stderr=True), live=live)
    _print_wide(rich_tables(done.report))
    click.echo(f"sweep {out if out is not None else done.sweep_dir}: report in {done.files['markdown'].parent}")
    failed = done.failed
    if failed:
        click.echo(f"error: {len(failed)} run(s) failed: {'; '.join(failed)}; rerun the same command to retry them",
                   err=True)
        sys.exit(1)


@sweep.command("report")
@click.argument("sweep_dir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["rich", "markdown", "csv", "json"]), default="rich",
              show_default=True, help="What to print (csv: the ablation log).")
@click.option("--spread-threshold", type=click.FloatRange(min=1.0), default=2.0, show_default=True,
              help="Flag a grid point whose KNN@5 max/min over seeds exceeds this.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Write report.md, ablation.csv, seeds.csv, report.json, report.html here (default DIR/report).")
@reports_errors
def sweep_report(sweep_dir, fmt, spread_threshold, out_dir):
    """The ablation log and the cross-seed matrix of a sweep directory."""
    from wmkit.audit.core import to_jsonable
    from wmkit.sweep.report import ablation_csv, build_report, markdown, rich_tables, write_report

    report = build_report(sweep_dir, spread_threshold)
    write_report(report, sweep_dir, out_dir)
    if fmt == "markdown":
        click.echo(markdown(report), nl=False)
    elif fmt == "csv":
        click.echo(ablation_csv(report["ablation_log"]), nl=False)
    elif fmt == "json":
        click.echo(json.dumps(to_jsonable(report), indent=2))
    else:
        _print_wide(rich_tables(report))


def _print_wide(tables) -> None:
    console = _console()
    if not console.is_terminal:
        console.width = max(console.width, 240)  # a log file: do not fold the ablation log's many columns
    for table in tables:
        console.print(table)


# ---------------------------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------------------------


@cli.group()
def bench():
    """Benchmarks that print ratios measured in one run on this machine."""


@bench.command("speed")
@click.option("--recipe", "recipe_name", default="loops3_auxpred_vicreg", show_default=True)
@click.option("--config", "configs", multiple=True, metavar="BATCHxTOKENS",
              help="Configurations to time (default: 32x128 and 128x512).")
@click.option("--steps", default=3, show_default=True, help="Timed steps per configuration (best is kept).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Recipe override, e.g. --set model.encoder.checkpoint_loops=true.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
@reports_errors
def bench_speed(recipe_name, configs, steps, overrides, json_path):
    """Training sequences/s, FLOP/s as a fraction of a measured fp32 matmul ceiling, peak memory."""
    from rich.table import Table

    from wmkit.bench.speed import DEFAULT_CONFIGS, run

    parsed = DEFAULT_CONFIGS
    if configs:
        try:
            parsed = tuple(tuple(int(x) for x in c.lower().split("x")) for c in configs)
        except ValueError:
            raise click.BadParameter("expected BATCHxTOKENS, e.g. 32x128", param_hint="--config") from None
    results = run(recipe_name, parsed, steps, list(overrides))
    extra = f", {' '.join(overrides)}" if overrides else ""
    table = Table(title=f"training speed: {recipe_name}{extra} (fp32, CPU threads {results[0]['threads']})")
    for col in ("batch x tokens", "sequences/s", "step s", "GFLOP/step", "GFLOP/s", "matmul ceiling GFLOP/s",
                "fraction of ceiling", "peak RSS GB"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(f"{r['batch']} x {r['tokens']}", f"{r['sequences_per_s']:.1f}", f"{r['step_seconds']:.2f}",
                      f"{r['flops_per_step'] / 1e9:.1f}", f"{r['flops_per_s'] / 1e9:.1f}",
                      f"{r['ceiling_flops_per_s'] / 1e9:.1f}", f"{r['flops_fraction_of_ceiling']:.0%}",
                      f"{r['peak_rss_gb']:.2f}")
    _console().print(table)
    if json_path:
        json_path.write_text(json.dumps(results, indent=2))


from wmkit.bench.retrieval import add_retrieval_command  # noqa: E402  (imports no torch)

add_retrieval_command(bench)

from wmkit.edit_commands import add_edit_search_commands  # noqa: E402  (imports no torch)

add_edit_search_commands(cli)


def main() -> None:
    cli(prog_name="wmkit")


if __name__ == "__main__":  # pragma: no cover
    main()
