"""`poco embed`: the embedding dock's analysis from the shell (UMAP, clusters, region similarity)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from poco_core.base.errors import PocoError
from poco_core.cli.common import load_inputs
from poco_core.cli.safety import (
    add_force_arg,
    check_inputs,
    claim,
    positive_int,
    release,
)


def _clusters(text: str) -> int | None:
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of clusters or 'auto', got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed",
        help="cluster a model's unit embeddings and compare brain regions",
        description="UMAP, clusters and region similarity of a POCO checkpoint's unit embeddings. "
        "DATA (recordings, folders or manifests of the checkpoint's sessions) supply the regions.",
    )
    p.add_argument("checkpoint", type=Path, help="a POCO checkpoint (.pt)")
    p.add_argument("data", nargs="*", type=Path, help="recordings giving each session's ROI regions")
    p.add_argument("--out", type=Path, help="results file: .csv (plus <stem>_region_similarity.csv) or .h5")
    p.add_argument("--clusters", type=_clusters, default=None, metavar="K|auto",
                   help="number of k-means clusters (default auto: best silhouette over 2-10)")
    p.add_argument("--method", choices=("kmeans", "hdbscan"), default="kmeans")
    p.add_argument("--min-cluster-size", type=positive_int, default=None, help="HDBSCAN's smallest cluster (default max(5, units/100))")
    p.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--as-stored", action="store_true",
                   help="analyse the rows as stored, their initial random draw included (by default it is taken away, "
                        "leaving what training learned)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_force_arg(p)
    p.set_defaults(func=run)


def region_notes(model, recordings: list) -> list[str]:
    """Why region similarity will be skipped (checked before the analysis runs); [] when it will not be.
    Recordings that match no model session are an error: they are surely the wrong files."""
    known = {s.session for s in model.sessions}
    matched = [r for r in recordings if r.session in known]
    if recordings and not matched:
        raise PocoError(f"no recording is of a model session (recordings: {', '.join(r.session for r in recordings)}; "
                        f"model sessions: {', '.join(sorted(known))})")
    if not any(r.regions is not None for r in matched):
        why = "no recordings given" if not recordings else "the recordings have no region labels"
        return [f"region similarity skipped: {why}; the embedding and cluster table is written without it"]
    return []


def run(args: argparse.Namespace) -> int:
    from poco_core.analysis.embedding import analyze_model, load_model, save_results

    def progress(event: dict) -> None:
        if not args.json:
            print(f"[{event['step']}/{event['total']}] {event['stage']}", file=sys.stderr)

    check_inputs([args.checkpoint, *args.data])
    locks = [claim(path, kinds, [args.checkpoint, *args.data], args.force) for path, kinds in _outputs(args.out)]
    try:
        model, recordings = load_model(args.checkpoint), load_inputs(args.data)
        notes = region_notes(model, recordings)
        for note in notes if not args.json else ():
            print(f"note: {note}", file=sys.stderr)
        result = analyze_model(
            model,
            recordings,
            learned=not args.as_stored,
            method=args.method,
            n_clusters=args.clusters,
            metric=args.metric,
            seed=args.seed,
            min_cluster_size=args.min_cluster_size,
            progress=progress,
        )
        if result.region is None and not notes:
            notes.append("region similarity skipped: the recordings' ROI ids do not match the model's units")
            if not args.json:
                print(f"note: {notes[-1]}", file=sys.stderr)
        for note in result.notes if not args.json else ():
            print(f"note: {note}", file=sys.stderr)
        summary = {**result.summary(), "notes": notes + result.notes,
                   "files": [str(p) for p in save_results(result, args.out)] if args.out else []}
    finally:
        release(*locks)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_describe(summary))
    return 0


def _outputs(out: Path | None) -> list[tuple[Path, str]]:
    """The files --out will write, with the kind each must be if it exists already."""
    if out is None:
        return []
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return [(out, "text"), (out.with_name(f"{out.stem}_region_similarity.csv"), "text")]
    if suffix in (".h5", ".hdf5"):
        return [(out, "hdf5")]
    raise PocoError(f"{out}: results go to a .csv, .h5 or .hdf5 file")


def _describe(s: dict) -> str:
    lines = [f"{s['n_units']} units from {len(s['sessions'])} session(s): "
             f"{s['n_clusters']} clusters ({s['method']}, {s['metric']}) of the {s['source']}'s rows "
             f"({'less their initial draw' if s['rows'] == 'learned' else 'as stored'})"]
    rec = s["recovery"]
    if rec:
        lines.append(f"ARI clusters vs regions {rec['ari']:.3f} (shuffled {rec['ari_shuffled']:.3f})")
        if "accuracy" in rec:
            lines.append(
                f"region classifier accuracy {rec['accuracy']:.3f} (shuffled {rec['accuracy_shuffled']:.3f}, "
                f"chance {rec['chance']:.3f}, {rec['folds']}-fold)"
            )
        if "trace_stats_accuracy" in rec:
            lines.append(f"ceiling: the same classifier on each trace's own statistics {rec['trace_stats_accuracy']:.3f}")
        within = rec.get("within_session")
        if within:
            line = (f"within each session ({within['sessions']}, {within['n_units']} units): accuracy "
                    f"{within['accuracy']:.3f} (shuffled {within['accuracy_shuffled']:.3f}, chance {within['chance']:.3f})")
            ceilings = [f"{name} {within[key]:.3f}" for key, name in
                        (("trace_stats_accuracy", "trace statistics"), ("coactivity_accuracy", "co-activity")) if key in within]
            lines.append(line + (f"; ceilings: {', '.join(ceilings)}" if ceilings else ""))
    lines += [f"wrote {f}" for f in s["files"]]
    return "\n".join(lines)
