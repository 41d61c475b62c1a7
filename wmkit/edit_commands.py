"""``wmkit index`` and ``wmkit search``: edit search from the command line (see docs/search.md).

Registered on the CLI group by :func:`add_edit_search_commands`; imports no torch until a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from wmkit.errors import reports_errors


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _print_results(result: dict) -> None:
    print(f"{result['query']}: {result['indexed']} indexed edits of {result['source']} ({result['domain']})")
    for query in result["queries"]:
        print(f"\nquery {query['file']}")
        for line in query["excerpt"].splitlines():
            print(f"    {_cut(line, 100)}")
        if not query["results"]:
            print("  no other indexed edit")
        for hit in query["results"]:
            print(f"{hit['rank']:>3}  {hit['similarity']:.3f}  {hit['commit'][:10] or '-':<10}  {hit['date'][:10]:<10}  "
                  f"{hit['file']}  {_cut(hit['subject'], 60)}")
            for line in hit["excerpt"].splitlines():
                print(f"             {_cut(line, 100)}")


def add_edit_search_commands(cli: click.Group) -> None:
    """Add ``index`` and ``search`` to ``cli``."""

    @cli.command("index")
    @click.argument("source")
    @click.option("--model", "model", required=True, metavar="RUN_OR_CHECKPOINT",
                  help="The world model whose edit embedding is indexed: a run or checkpoint directory.")
    @click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="The index directory.")
    @click.option("--update", is_flag=True, help="Add the commits of SOURCE that the index lacks.")
    @click.option("--force", is_flag=True, help="Replace an existing index.")
    @click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
    @reports_errors
    def index_command(source, model, out, update, force, progress):
        """Embed every transition of SOURCE (git:PATH, or any data source) for `wmkit search`."""
        from wmkit.edit_index import build_index
        from wmkit.progress import task_bar

        with task_bar(progress) as bar:
            task = bar.add_task("embedding edits", total=None)
            meta = build_index(source, model, out, force=force, update=update,
                               progress=lambda n: bar.advance(task, n))
        dropped = sum(meta["dropped"].values())
        print(f"indexed {meta['added']} new edits ({meta['count']} in all, {meta['commits']} commits) of {meta['source']} "
              f"into {out}; {dropped} rows dropped by the {meta['domain']} domain", file=sys.stderr)

    @cli.command("search")
    @click.argument("index_dir", metavar="INDEX", type=click.Path(path_type=Path))
    @click.option("--commit", default=None, metavar="SHA", help="Query: a commit of the indexed repository.")
    @click.option("--diff", "diff", type=click.Path(path_type=Path), default=None, metavar="FILE.patch",
                  help="Query: a unified diff against the indexed repository's working tree.")
    @click.option("--before", type=click.Path(path_type=Path), default=None, help="Query: the file before the edit.")
    @click.option("--after", type=click.Path(path_type=Path), default=None, help="Query: the file after the edit.")
    @click.option("-k", "k", default=10, show_default=True, help="Results per query file.")
    @click.option("--model", default=None, metavar="RUN_OR_CHECKPOINT",
                  help="The query's model (default: the one the index was built with); must be the same.")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
    @reports_errors
    def search_command(index_dir, commit, diff, before, after, k, model, as_json):
        """The past edits most similar to a commit, a patch, or a pair of files."""
        from wmkit.edit_index import search

        result = search(index_dir, commit=commit, diff=diff, before=before, after=after, k=k, model=model)
        if as_json:
            print(json.dumps(result, indent=2))
        else:
            _print_results(result)
