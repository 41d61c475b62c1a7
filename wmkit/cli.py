"""The ``wmkit`` command line. Imports torch, datasets and transformers only inside commands."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from wmkit import __version__
from wmkit.bench.baselines import RANDOM_ARCHS  # the choices of `bench retrieval`; these import no torch
from wmkit.bench.retrieval import ACTION_CHOICES, DEFAULT_LATENCY_QUERIES, EMBEDDINGS, FULL_LENGTH_REPS
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
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True,
              help="Train in fp32, or under bf16 autocast (the ceiling is then bf16's).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
@reports_errors
def bench_speed(recipe_name, configs, steps, overrides, precision, json_path):
    """Training sequences/s, FLOP/s as a fraction of a measured matmul ceiling, peak memory."""
    from rich.table import Table

    from wmkit.bench.speed import DEFAULT_CONFIGS, run

    parsed = DEFAULT_CONFIGS
    if configs:
        try:
            parsed = tuple(tuple(int(x) for x in c.lower().split("x")) for c in configs)
        except ValueError:
            raise click.BadParameter("expected BATCHxTOKENS, e.g. 32x128", param_hint="--config") from None
    results = run(recipe_name, parsed, steps, list(overrides), precision=precision)
    extra = f", {' '.join(overrides)}" if overrides else ""
    table = Table(title=f"training speed: {recipe_name}{extra} ({precision}, CPU threads {results[0]['threads']})")
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


@bench.command("all")
@click.option("--skip", multiple=True, type=click.Choice(["train", "bf16", "prepare", "audit", "latency"]),
              help="Leave a section out (repeatable).")
@click.option("--bf16/--no-bf16", "bf16", default=None,
              help="Time bf16 training even where the bf16 ceiling is below fp32's (default: only where faster).")
@click.option("--steps", default=2, show_default=True, help="Timed training steps per configuration (best is kept).")
@click.option("--prepare-data", type=click.Path(path_type=Path), default=None,
              help="Folder of commits (train.jsonl.zst, val.jsonl.zst) whose preparation is timed; without it "
                   "the prepare section is skipped.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
@reports_errors
def bench_all(skip, bf16, steps, prepare_data, json_path):
    """Every speed figure in one run (ceilings, training, prep, audit, latency), each beside its goal."""
    import dataclasses

    from rich.table import Table

    from wmkit.bench.suite import run_suite

    console = _console()
    figures = run_suite(skip=tuple(skip), bf16=bf16, steps=steps, prepare_data=prepare_data,
                        on_figure=lambda f: console.print(f"{f.section}: {f.name}: {f.value} [{f.verdict}]",
                                                          markup=False, highlight=False))
    table = Table(title="wmkit bench all (one run, this machine)")
    for col in ("section", "figure", "value", "goal", "verdict", "note"):
        table.add_column(col)
    for f in figures:
        table.add_row(f.section, f.name, f.value, f.goal, f.verdict, f.note)
    if not console.is_terminal:
        console.width = max(console.width, 200)
    console.print(table)
    if json_path:
        json_path.write_text(json.dumps([dataclasses.asdict(f) | {"verdict": f.verdict} for f in figures], indent=2))


@bench.command("prepare")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--max-len", default=512, show_default=True)
@click.option("--window", type=click.Choice(["head", "edit"]), default="head", show_default=True)
@click.option("--workers", type=int, default=None, help="Tokenizing processes (default: all CPUs).")
@click.option("--limit", default=0, show_default=True, help="Stop after this many kept rows (0 = all).")
@reports_errors
def bench_prepare(data, max_len, window, workers, limit):
    """Data preparation of the commits in DATA (train.jsonl.zst, val.jsonl.zst), cold and warm, beside the goals."""
    from wmkit.bench.prepare import COLD_GOAL_S, WARM_GOAL_S, time_prepare

    r = time_prepare(data, max_len=max_len, window=window, workers=workers, limit=limit,
                     progress=sys.stderr.isatty())
    ok = lambda passed: "pass" if passed else "FAIL"  # noqa: E731
    click.echo(f"cpus {r['cpus']}  workers {r['workers']}  max_len {max_len}  window {window}")
    click.echo(f"cold: {r['cold_s']:.1f} s ({r['rows_read'] / r['cold_s']:.0f} rows read/s)  goal <= {COLD_GOAL_S:.0f} s: "
               f"{ok(r['cold_s'] <= COLD_GOAL_S)}")
    click.echo(f"cold CPU time (this process + workers): {r['cold_cpu_s']:.1f} s; load average now {r['load_average']:.1f}")
    click.echo(f"warm: {r['warm_s']:.2f} s  goal <= {WARM_GOAL_S:.0f} s: {ok(r['warm_s'] <= WARM_GOAL_S)}")
    click.echo(f"rows read {r['rows_read']}, kept {r['kept']} (train {r['train']}, val {r['val']})")
    click.echo("dropped: " + (", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "none"))


@bench.command("audit")
@click.argument("checkpoint", required=False)
@click.option("--n", "n", default=5000, show_default=True, help="Validation pairs (random model only).")
@click.option("--len", "length", default=512, show_default=True, help="Tokens per side (random model only).")
@click.option("--geometry", is_flag=True, help="Include the geometry probes.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
@reports_errors
def bench_audit(checkpoint, n, length, geometry, json_path):
    """How long a full audit takes and where the time goes (a random paper model, or CHECKPOINT)."""
    from wmkit.bench.audit import AUDIT_GOAL_S, PHASES, time_audit

    r = time_audit(checkpoint, n=n, length=length, geometry=geometry, progress=sys.stderr.isatty())
    t = r["timing"]
    click.echo(r["what"])
    click.echo(f"torch threads {r['threads']}; gallery N={r['gallery_size']}; pairs encoded {t['encoded_pairs']}")
    verdict = "pass" if t["total_s"] <= AUDIT_GOAL_S else "FAIL"
    click.echo(f"total audit time: {t['total_s']:.1f} s  (goal at N=5000, 512 tokens: <= {AUDIT_GOAL_S:.0f} s: {verdict})")
    for key, label in PHASES:
        click.echo(f"  {label:<34} {t[key]:7.2f} s  {100 * t[key] / t['total_s']:5.1f}%")
    if json_path:
        json_path.write_text(json.dumps(r, indent=2))


@bench.command("latency")
@click.option("--reps", default=20, show_default=True, help="Timed rounds (one input per model each).")
@click.option("--len", "length", default=512, show_default=True, help="Tokens per side.")
@reports_errors
def bench_latency(reps, length):
    """Batch-1 edit-embedding latency against the RoBERTa-base and MiniLM shapes, beside the FLOP limits."""
    from wmkit.bench.latency import LIMIT_SHARE_GOAL, time_latency

    r = time_latency(reps=reps, length=length)
    tok = f"; tokenization {r['tokenize_ms']:.1f} ms (both sides, separately)" if r["tokenize_ms"] is not None else ""
    click.echo(f"wmkit: {r['wmkit_ms']:.1f} ms per edit ({length} tokens per side, 1 thread, batch 1){tok}")
    for m in r["models"]:
        click.echo(f"{m['model']}: {m['ms']:.0f} ms; speed-up {m['speedup']:.1f}x (goal >= {m['goal']:.0f}x: "
                   f"{'pass' if m['speedup'] >= m['goal'] else 'FAIL'}); FLOP limit {m['flop_limit']:.1f}x, "
                   f"{m['share_of_limit']:.0%} of it (goal >= {LIMIT_SHARE_GOAL:.0%}: "
                   f"{'pass' if m['share_of_limit'] >= LIMIT_SHARE_GOAL else 'FAIL'})")


@bench.command("retrieval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--queries", default=1000, show_default=True, help="Held-out edits used as queries.")
@click.option("--gallery", default=5000, show_default=True,
              help="Held-out edits to rank (shrunk, with a note, when the validation split is smaller).")
@click.option("--baseline", "baselines", multiple=True, metavar="NAME_OR_PATH",
              help="Also run this model: minilm (bundled), unixcoder, codebert, codet5p, a local model folder, "
                   "or a hub id. Repeatable. Lexical and random baselines always run.")
@click.option("--actions", type=click.Choice(ACTION_CHOICES), default="15d", show_default=True,
              help="Action vector for the cos@ criteria: 15d, 7d (first 7 dims of 15-D), or the domain's native one.")
@click.option("--embedding", type=click.Choice(tuple(EMBEDDINGS)), default="target_online", show_default=True,
              help="wmkit edit embedding: target(after)−online(before) (paper) or online(after)−online(before) "
                   "(reference scripts).")
@click.option("--latency-queries", default=DEFAULT_LATENCY_QUERIES, show_default=True,
              help="Queries timed per model (batch 1, one thread; median).")
@click.option("--full-length-reps", default=FULL_LENGTH_REPS, show_default=True,
              help="Full-length inputs timed per model, round-robin across models (median; the speed ratios).")
@click.option("--latency-only", is_flag=True, help="Only time the models at full length (no data, no retrieval).")
@click.option("--random-arch", "random_arch", multiple=True, type=click.Choice(tuple(RANDOM_ARCHS)),
              help="Also time a randomly initialised encoder of this shape (no download). Repeatable.")
@click.option("--data", default=None, help="Benchmark on another source's validation split.")
@click.option("--split", type=click.Choice(["val", "holdout"]), default="val", show_default=True,
              help="Draw queries and gallery from the validation split or the held-out repositories.")
@click.option("--seed", default=42, show_default=True, help="Sampling seed.")
@click.option("--trust-remote-code", is_flag=True, help="Allow --baseline models that ship their own code.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=None, help="Also write JSON here.")
@reports_errors
def bench_retrieval(checkpoint, queries, gallery, baselines, actions, embedding, latency_queries, full_length_reps,
                    latency_only, random_arch, data, split, seed, trust_remote_code, json_path):
    """Edit retrieval (MRR@10, R@1, R@5) and batch-1 CPU latency against foundation models."""
    from wmkit.bench.report import render_retrieval
    from wmkit.bench.retrieval import run_retrieval_bench, write_result

    result = run_retrieval_bench(checkpoint, queries=queries, gallery=gallery, baselines=baselines,
                                 actions=actions, embedding=embedding, latency_queries=latency_queries,
                                 latency_only=latency_only, random_arch=random_arch, seed=seed,
                                 progress=True, data=data, trust_remote_code=trust_remote_code,
                                 full_length_reps=full_length_reps, split=split)
    render_retrieval(result)
    if json_path:
        write_result(result, json_path)
        click.echo(f"wrote {json_path}")


from wmkit.edit_commands import add_edit_search_commands  # noqa: E402  (imports no torch)

add_edit_search_commands(cli)


def main() -> None:
    cli(prog_name="wmkit")


if __name__ == "__main__":  # pragma: no cover
    main()
