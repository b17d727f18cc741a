"""The catalog and model commands: ingest, search, item, eval, train, recommend, demo."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from prism.cli.output import console, fail, out, print_search
from prism.errors import PrismError
from prism.ingest import IngestSummary
from prism.service import PrismService


def ingest(
    path: Annotated[Path, typer.Argument(help="A catalog JSONL file, a folder with catalog.jsonl, or a MovieLens-MM folder.")],
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", min=1, help="Ingest at most N catalog rows.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ray: Annotated[bool, typer.Option("--ray", help="Run the pipeline as Ray Data batches on actors, writing to the Chroma server of PRISM_CHROMA_HOST; starts a local Ray unless --ray-address is given. Needs the ray extra.")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --ray (implied): the Ray cluster to join, e.g. auto or ray://host:10001.")] = None,
    actors: Annotated[Optional[int], typer.Option("--actors", min=1, help="With --ray: how many ingest actors (default: one per CPU of the Ray cluster).")] = None,
) -> None:
    """Caption, transcribe and embed a catalog into the store. Re-running skips unchanged items."""
    service = PrismService()
    progress = Progress(TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("new {task.fields[new]} upd {task.fields[upd]} skip {task.fields[skip]} "
                                   "fail {task.fields[fail]}"), TimeElapsedColumn(), console=console)

    def on_batch(summary: IngestSummary, rows: int) -> None:
        progress.update(task, advance=rows, new=summary.ingested, upd=summary.updated, skip=summary.skipped,
                        fail=len(summary.failed))
        if not console.is_terminal:  # a log line per committed batch when output is not a terminal
            console.print(f"committed: seen={summary.seen} ingested={summary.ingested} updated={summary.updated} "
                          f"skipped={summary.skipped} failed={len(summary.failed)}", highlight=False)

    try:
        with progress:
            task = progress.add_task("ingest", total=limit, new=0, upd=0, skip=0, fail=0)
            summary = (service.ingest_on_ray(path, ray_address, limit, actors, on_batch) if ray or ray_address
                       else service.ingest(path, limit=limit, on_batch=on_batch))
    except (PrismError, FileNotFoundError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(summary.model_dump_json())
        return
    table = Table(title=f"Ingested {escape(str(path))}")
    for column in ("ingested", "updated", "skipped", "failed", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(summary.ingested), str(summary.updated), str(summary.skipped), str(len(summary.failed)),
                  f"{summary.seconds:.1f}")
    out.print(table)
    for failure in summary.failed:
        out.print(f"[red]failed[/] {escape(failure.source)}" + (f" ({escape(failure.item_id)})" if failure.item_id
                                                                 else "") + f": {escape(failure.reason)}", highlight=False)


def search(
    text: Annotated[Optional[str], typer.Argument(help="What to look for, in English or Chinese.")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=200, help="How many items to return.")] = 5,
    image: Annotated[Optional[Path], typer.Option("--image", help="Search with an image.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Search with a voice query (transcribed).")] = None,
    where: Annotated[Optional[str], typer.Option("--where", help='A Chroma metadata filter as JSON, e.g. \'{"genres": {"$contains": "Drama"}}\'.')] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Find the nearest items to a text, image or voice query, with the evidence that matched."""
    try:
        filters = json.loads(where) if where else None
    except json.JSONDecodeError as exc:
        fail(f"--where is not valid JSON: {exc}")
    try:
        result = PrismService().search(text=text, image=image, audio=audio, k=k, where=filters)
    except PrismError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        print_search(result)


def item(item_id: Annotated[str, typer.Argument(help="The item's id.")]) -> None:
    """Show an ingested item: its text, metadata, captions and transcripts with provenance."""
    record = PrismService().get_item(item_id)
    if record is None:
        fail(f"no item with id '{item_id}' in the store")
    out.print_json(json.dumps(record, ensure_ascii=False, default=str))


def evaluate(
    suite: Annotated[str, typer.Option("--suite", "-s", help="small (CI-sized), full, fusion (every fusion strategy × modality set against the baselines), modalities (which modalities the served model fuses), agent (the agent against its tools on held-out users' requests, on a copy of the store) or agent-small (its CI-sized version).")] = "small",
    ratings: Annotated[Optional[Path], typer.Option("--ratings", help="ratings.tsv (default: settings.movielens_dir).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default: PRISM_HOME/evals/SUITE).")] = None,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="Comma-separated seeds replacing the suite's, e.g. 0 or 0,1.")] = None,
    per_kind: Annotated[Optional[int], typer.Option("--per-kind", min=1, help="Agent suites: requests of each kind (default: the suite's).")] = None,
    injections: Annotated[Optional[int], typer.Option("--injections", min=0, help="Agent suites: injected cases (default: the suite's).")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="Agent suites: run the agent once per variant over the same cases in this run, NAME:SETTING=VALUE[,SETTING=VALUE], e.g. --variant old:agent_fast_answer=false --variant fast:agent_fast_answer=true.")] = None,
    mmrec: Annotated[Optional[Path], typer.Option("--export-mmrec", help="Only export the leave-last-one, temporal and cold-item splits with item features in MMRec's format to this folder.")] = None,
) -> None:
    """Run an offline evaluation suite over the ingested catalog: JSON, Markdown table, plots."""
    # deferred: the evaluation suites load torch and every baseline
    from prism.evals.report import markdown
    from prism.evals.suite import evaluate_suite, export_mmrec

    if mmrec is not None:
        try:
            for protocol in ("leave_last_one", "temporal", "cold_items"):
                written = export_mmrec(PrismService(), protocol, mmrec, ratings)
                out.print_json(json.dumps({"protocol": protocol, **written}))
        except PrismError as exc:
            fail(str(exc))
        return
    if suite.startswith("agent"):
        agent_suite(suite, ratings, out_dir, per_kind, injections, variant)
        return
    try:
        chosen_seeds = tuple(int(seed) for seed in seeds.split(",") if seed.strip()) if seeds else None
    except ValueError:
        fail(f"--seeds must be comma-separated integers, got '{seeds}'")
    try:
        results = evaluate_suite(PrismService(), suite, ratings, out_dir, log=lambda line: console.print(line, highlight=False, markup=False),
                                          seeds=chosen_seeds)
    except PrismError as exc:
        fail(str(exc))
    out.print(markdown(results), highlight=False, soft_wrap=True)




def parse_variants(specs: list[str] | None) -> dict[str, dict[str, str]] | None:
    """``--variant`` options (NAME:SETTING=VALUE[,SETTING=VALUE]) as name → settings overrides."""
    if not specs:
        return None
    variants: dict[str, dict[str, str]] = {}
    for spec in specs:
        name, _, rest = spec.partition(":")
        pairs = [p.partition("=") for p in rest.split(",") if p.strip()]
        if not name.strip() or name in variants or any(not key.strip() or not eq for key, eq, _ in pairs):
            fail(f"--variant '{spec}' is not NAME:SETTING=VALUE[,SETTING=VALUE] with a new NAME")
        variants[name.strip()] = {key.strip(): value.strip() for key, _, value in pairs}
    return variants


def agent_suite(suite: str, ratings: Path | None, out_dir: Path | None, per_kind: int | None = None,
                injections: int | None = None, variant: list[str] | None = None) -> None:
    """``prism eval --suite agent``: the agent suite on a copy of the current store."""
    # deferred: the agent suite loads the chat model, torch and the encoders
    from prism.agent.backends import chat_model
    from prism.agent.orchestrator import Agent
    from prism.agent.sessions import SessionStore
    from prism.evals.agent_suite import AGENT_SUITES, agent_markdown, run_agent_suite

    if suite not in AGENT_SUITES:
        fail(f"unknown evaluation suite '{suite}'; choose one of small, full, fusion, modalities, "
             + ", ".join(AGENT_SUITES))
    service = PrismService()
    settings = service.settings
    chosen = replace(AGENT_SUITES[suite], **{k: v for k, v in (("per_kind", per_kind), ("injections", injections))
                                              if v is not None})
    try:
        results = run_agent_suite(
            service, chosen, Path(ratings or settings.movielens_dir / "ratings.tsv"),
            Path(out_dir or settings.home / "evals" / suite),
            lambda svc, sessions: Agent(svc, chat_model(svc.settings), SessionStore(sessions)).run_turn,
            log=lambda line: console.print(line, highlight=False, markup=False), variants=parse_variants(variant))
    except PrismError as exc:
        fail(str(exc))
    out.print(agent_markdown(results), highlight=False, soft_wrap=True)


def train(
    ratings: Annotated[Optional[Path], typer.Option("--ratings", help="Interactions as user<TAB>item<TAB>rating<TAB>timestamp (default: settings.movielens_dir/ratings.tsv).")] = None,
    min_rating: Annotated[Optional[float], typer.Option("--min-rating", help="Keep only ratings at or above this value (default: every rating is an interaction).")] = None,
    fusion: Annotated[Literal["concat", "weighted", "attention", "gated"], typer.Option("--fusion", help="How an item's modality vectors are fused.")] = "attention",
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Epoch budget; early stopping on validation NDCG@20 may end sooner (default: settings.fusion_epochs).")] = None,
    device: Annotated[Optional[Literal["auto", "cpu", "cuda"]], typer.Option("--device", help="auto = CUDA when available (bf16 autocast), else CPU (default: settings.device).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    name: Annotated[Optional[str], typer.Option("--name", help="Checkpoint name (default: FUSION-TIMESTAMP).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train the local fusion model on the interactions over the ingested items.

    Each user's latest interaction is held out for early stopping; the best epoch's state is
    kept. The checkpoint goes to PRISM_HOME/models/fusion/NAME.pt and becomes the current
    one; every item's fused vector is written to the checkpoint's own vector space, and
    items ingested later get theirs at ingest time."""
    try:
        summary = PrismService().train(ratings, min_rating, fusion, epochs, device, seed, name,
                                       log=lambda line: console.print(line, highlight=False, markup=False))
    except (PrismError, FileNotFoundError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(summary.model_dump_json())
        return
    val = "n/a (no user has 3 interactions)" if summary.best_val_ndcg20 is None else f"{summary.best_val_ndcg20:.4f}"
    out.print(f"[bold]trained {escape(summary.name)}[/]", highlight=False)
    for key, value in (("fusion", f"{summary.fusion} ({'+'.join(summary.modalities)})"),
                       ("epochs", f"{summary.epochs} of {summary.max_epochs} (best {summary.best_epoch})"),
                       ("best val NDCG@20", val),
                       ("ranker val NDCG@20", "n/a" if summary.hybrid_val_ndcg20 is None
                        else f"{summary.hybrid_val_ndcg20:.4f} (collaborative + content)"),
                       ("collaborative", ", ".join(f"{k} {v:g}" for k, v in summary.collaborative.items())),
                       ("seconds/epoch", f"{summary.seconds_per_epoch:.2f}"),
                       ("device", summary.device),
                       ("data", f"{summary.interactions} interactions ({summary.validation_interactions} held out), "
                                f"{summary.users} users, {summary.items} items"),
                       ("fused vectors", f"{summary.fused_vectors} in space {summary.space}"),
                       ("checkpoint", summary.path)):
        out.print(f"  {key}: {escape(value)}", highlight=False, soft_wrap=True)


def recommend(
    user: Annotated[str, typer.Option("--user", help="The user's id in the ratings file.")],
    query: Annotated[Optional[str], typer.Option("--query", help="Steer with a text query (English or Chinese).")] = None,
    image: Annotated[Optional[Path], typer.Option("--image", help="Steer with an image.")] = None,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Steer with a voice query (transcribed).")] = None,
    k: Annotated[int, typer.Option("-k", min=1, max=200, help="How many items to return.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Rank the catalog for a user with the ranker in service (collaborative + content),
    optionally steered by a query.

    Items the user already interacted with are left out. Each item comes with its score, the
    weights of its modalities, the history items behind its content score, the history items
    whose fans also liked it (its collaborative score) and, with a query, the evidence that
    matched. With a query: score = (1 - w) * ranker score + w * query similarity, both min-max
    normalised over the candidates (w = settings.recommend_query_weight, default 0.5)."""
    try:
        result = PrismService().recommend(user, text=query, image=image, audio=audio, k=k)
    except (PrismError, FileNotFoundError) as exc:
        fail(str(exc))
    if as_json:
        out.print_json(result.model_dump_json())
        return
    for label, value in (("heard", result.query_transcript), ("image", result.query_caption)):
        if value is not None:
            out.print(f"[bold]{label}:[/] {escape(value)}", highlight=False)
    table = Table(title=f"For user {escape(result.user_id)} ({result.history} history items, {result.excluded} seen, "
                        f"model {result.checkpoint})", show_lines=True)
    for column, justify in (("#", "right"), ("item", "left"), ("score", "right"), ("modalities", "left"),
                            ("from your history", "left"), ("people who liked these liked it", "left"), ("query evidence", "left")):
        table.add_column(column, justify=justify)
    for rank, item in enumerate(result.items, start=1):
        modalities = " ".join(f"{m} {w:.2f}" for m, w in item.modalities.items())
        because = "\n".join(f"{escape(h.title)} [dim]({h.contribution:+.2f})[/]" for h in item.because)
        together = "\n".join(f"{escape(h.title)} [dim]({h.contribution:+.2f})[/]" for h in item.also_liked)
        evidence = "\n".join(f"[dim]{e.channel}→{e.field} ({e.similarity:.2f})[/] {escape(e.text[:100])}"
                             for e in item.evidence)
        table.add_row(str(rank), f"{escape(item.title)}\n[dim]{escape(item.item_id)}[/]", f"{item.score:.4f}",
                      modalities, because, together, evidence)
    out.print(table)


def demo() -> None:
    """Ingest the bundled demo catalog, run a text, a voice and an image search, then ask the agent."""
    # deferred: the demo ends with an agent turn (LangChain, the embedded LLM)
    from prism.demo import run as run_demo

    try:
        run_demo(out)
    except PrismError as exc:
        fail(str(exc))
