"""Peak memory and time to read and tokenize a big corpus into word ids:
textgen's streaming reader against the classic recipe (read the whole file,
tokenize it into one list of words, map the list to a list of ids), each in a
fresh process. The corpus is Moby-Dick repeated to the size asked for.
Prints one JSON object.

The same as JSON Lines (`--ways jsonl`: one record per paragraph, its text
under "text", the file gzip-compressed too): textgen's record reader
(`text/records.py`, streamed through gzip) against the recipe for such a
file (every record loaded into a list, then the classic recipe on their
text joined).

    python benchmarks/corpus_memory.py [--megabytes 100] [--corpus PATH]
        [--ways text jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED, peak_rss_mb


def child(way: str, path: Path) -> None:
    start = time.perf_counter()
    if way in ("textgen-jsonl", "textgen-jsonl-gz"):
        from textgen.text.ids import corpus_ids
        from textgen.text.records import SourceFormat
        from textgen.text.tokens import TokenizerSettings

        text = corpus_ids([path], TokenizerSettings(), source=SourceFormat("jsonl"))
        print(
            json.dumps(
                {
                    "seconds": round(time.perf_counter() - start, 1),
                    "peak_rss_mb": round(peak_rss_mb()),
                    "tokens": len(text.ids),
                    "distinct_words": len(text.words),
                }
            )
        )
        return
    if way == "recipe-jsonl":
        from classic_recipe import recipe_words

        with path.open(encoding="utf-8") as lines:
            texts = [json.loads(line)["text"] for line in lines if line.strip()]
        words = recipe_words("\n\n".join(texts))
        word_to_id: dict[str, int] = {}
        ids = [word_to_id.setdefault(w, len(word_to_id) + 1) for w in words]
        print(
            json.dumps(
                {
                    "seconds": round(time.perf_counter() - start, 1),
                    "peak_rss_mb": round(peak_rss_mb()),
                    "tokens": len(ids),
                    "distinct_words": len(word_to_id),
                }
            )
        )
        return
    if way == "textgen":
        from textgen.text.ids import corpus_ids
        from textgen.text.tokens import TokenizerSettings
        from textgen.text.vocab import Vocabulary

        text = corpus_ids([path], TokenizerSettings())
        vocabulary = Vocabulary.from_counts(text.counts(), 20000, 2)
        ids = text.encode(vocabulary)
        tokens, distinct = len(ids), len(text.words)
        reading = {
            "seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(peak_rss_mb()),
        }
        # Then what `train` counts next: the n-gram memory (a word trigram,
        # the default size cap), with the peak memory that adds.
        from textgen.model.config import TrainConfig
        from textgen.model.ngram import NgramModel

        config = TrainConfig()
        counted = time.perf_counter()
        ngram = NgramModel.count(
            [ids],
            len(vocabulary),
            config.memory_order,
            int(config.ngram_max_mb * 2**20),
        )
        reading["ngram"] = {
            "seconds": round(time.perf_counter() - counted, 1),
            "peak_rss_mb_with_counting": round(peak_rss_mb()),
            "entries": ngram.entries,
            "megabytes": round(ngram.nbytes / 2**20, 1),
            "pruned": ngram.pruned,
        }
        print(json.dumps({**reading, "tokens": tokens, "distinct_words": distinct}))
        return
    else:
        from classic_recipe import recipe_words

        words = recipe_words(path.read_text(encoding="utf-8"))
        word_to_id: dict[str, int] = {}
        ids = [word_to_id.setdefault(w, len(word_to_id) + 1) for w in words]
        tokens, distinct = len(ids), len(word_to_id)
    print(
        json.dumps(
            {
                "seconds": round(time.perf_counter() - start, 1),
                "peak_rss_mb": round(peak_rss_mb()),
                "tokens": tokens,
                "distinct_words": distinct,
            }
        )
    )


def jsonl_copies(big: Path, folder: Path) -> tuple[Path, Path]:
    """The text as JSON Lines, one record per paragraph, and gzipped."""
    import gzip

    records, packed = folder / "big.jsonl", folder / "big.jsonl.gz"
    with (
        big.open(encoding="utf-8") as text,
        records.open("w", encoding="utf-8") as out,
        gzip.open(packed, "wt", encoding="utf-8") as zipped,
    ):
        paragraph: list[str] = []
        for line in [*text, "\n"]:
            if line.strip():
                paragraph.append(line)
                continue
            if paragraph:
                record = json.dumps({"text": "".join(paragraph)}) + "\n"
                out.write(record)
                zipped.write(record)
                paragraph = []
    return records, packed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "moby_dick.txt")
    parser.add_argument("--megabytes", type=float, default=100)
    parser.add_argument(
        "--ways", nargs="+", default=["text"], choices=["text", "jsonl"]
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (pass --corpus)")
    book = args.corpus.read_bytes()
    copies = max(1, round(args.megabytes * 2**20 / len(book)))
    results: dict[str, object] = {"corpus": args.corpus.name, "copies": copies}
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.txt"
        with big.open("wb") as out:
            for _ in range(copies):
                out.write(book + b"\n\n")
        results["megabytes"] = round(big.stat().st_size / 2**20, 1)
        runs = []
        if "text" in args.ways:
            runs += [("textgen", big), ("classic_recipe", big)]
        if "jsonl" in args.ways:
            records, packed = jsonl_copies(big, Path(folder))
            results["jsonl_megabytes"] = round(records.stat().st_size / 2**20, 1)
            results["jsonl_gz_megabytes"] = round(packed.stat().st_size / 2**20, 1)
            runs += [
                ("textgen-jsonl", records),
                ("textgen-jsonl-gz", packed),
                ("recipe-jsonl", records),
            ]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        for way, path in runs:
            out = subprocess.run(
                [sys.executable, __file__, "--child", way, str(path)],
                capture_output=True,
                text=True,
                env=env,
            )
            if out.returncode:
                results[way] = {"failed": out.stderr.strip().splitlines()[-1:]}
            else:
                results[way] = json.loads(out.stdout.strip().splitlines()[-1])
    for name, peer in (("jsonl", "recipe-jsonl"),):
        ours, theirs = results.get(f"textgen-{name}", {}), results.get(peer, {})
        if "peak_rss_mb" in ours and "peak_rss_mb" in theirs:
            results[f"{name}_memory_ratio_recipe_over_textgen"] = round(
                theirs["peak_rss_mb"] / ours["peak_rss_mb"], 1
            )
    ours, theirs = results.get("textgen", {}), results.get("classic_recipe", {})
    if "peak_rss_mb" in ours and "peak_rss_mb" in theirs:
        results["memory_ratio_recipe_over_textgen"] = round(
            theirs["peak_rss_mb"] / ours["peak_rss_mb"], 1
        )
        results["time_ratio_recipe_over_textgen"] = round(
            theirs["seconds"] / ours["seconds"], 2
        )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
