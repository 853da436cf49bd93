"""`textgen generate`: several temperatures, seeds from a file or stdin, jsonl,
stopping, beam search and the interactive prompt, through the command line."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from textgen.cli import cli


def run(*args, stdin: str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


def test_several_temperatures_give_labelled_samples(trained):
    result = run("generate", "-m", trained[0], "-s", "one", "-n", 4, "-t", "0,1.5,0")
    assert result.exit_code == 0, result.output
    blocks = result.stdout.split("--- temperature ")[1:]
    assert [b.split(" ---")[0] for b in blocks] == ["0", "1.5", "0"]
    greedy = "One two three, four"
    assert blocks[0].split("---\n")[1].strip() == greedy
    assert blocks[2].split("---\n")[1].strip() == greedy


def test_seed_file_and_stdin_seeds(trained, tmp_path: Path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("one\n\nsix seven\n", encoding="utf-8")
    result = run("generate", "-m", trained[0], "--seed-file", seeds, "-n", 3, "-t", 0)
    assert result.exit_code == 0, result.output
    assert "--- seed 1 ---\nOne two three,\n" in result.stdout
    assert "--- seed 2 ---\nSix seven eight nine!\n" in result.stdout
    piped = run("generate", "-m", trained[0], "-s", "-", "-n", 3, "-t", 0, stdin="one")
    assert piped.exit_code == 0 and piped.stdout == "One two three,\n"
    both = run("generate", "-m", trained[0], "-s", "x", "--seed-file", seeds)
    assert both.exit_code == 2 and "not both" in both.stderr


def test_jsonl_records_reproduce_the_run(trained):
    args = ["generate", "-m", trained[0], "-s", "one", "-n", 5, "-t", "1.0,2.0"]
    result = run(*args, "--format", "jsonl", "--top-k", 3)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["temperature"] for r in records] == [1.0, 2.0]
    first = records[0]
    assert first["seed"] == "one" and first["top_k"] == 3 and first["words"] == 5
    assert first["words_per_second"] > 0 and first["model"] == str(trained[0])
    assert first["longest_copied_run"] in (0, 5)  # runs of 5 words or more count
    again = run(*args, "--format", "jsonl", "--top-k", 3, "--random-seed",
                first["random_seed"])  # fmt: skip
    assert [json.loads(line)["text"] for line in again.stdout.splitlines()] == [
        r["text"] for r in records
    ]


def test_stop_until_and_beam_on_the_command_line(trained):
    stop = run("generate", "-m", trained[0], "-s", "one", "-n", 30, "-t", 0,
               "--stop", "four")  # fmt: skip
    assert stop.exit_code == 0 and stop.stdout == "One two three,\n"
    until = run("generate", "-m", trained[0], "-s", "six", "-n", 30, "-t", 0.5,
                "--top-k", 1, "--until", "sentence")  # fmt: skip
    assert until.stdout == "Six seven eight nine!\n"
    beam = run("generate", "-m", trained[0], "-s", "one", "-n", 6, "--beam", 3,
               "--num-samples", 2)  # fmt: skip
    assert beam.exit_code == 0, beam.output
    assert beam.stdout.startswith("--- sample 1 ---\nOne two three, four five.")
    assert beam.stdout.count("--- sample") == 2
    bad = run("generate", "-m", trained[0], "--beam", 2, "-t", "0.5,1")
    assert bad.exit_code == 2 and "one temperature" in bad.stderr
    bad = run("generate", "-m", trained[0], "--no-repeat-ngram", 1)
    assert bad.exit_code == 2 and "2 or more" in bad.stderr


def test_interactive_prompt_reads_seeds_and_commands(trained):
    session = "one\n:t 0\n:n 3\nsix\n:k nope\n:zz 1\n"
    result = run("generate", "-m", trained[0], "-i", "-t", 0, "-n", 4, stdin=session)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["One two three, four", "Six seven eight nine"]
    assert "temperature = 0.0" in result.stderr and "length = 3" in result.stderr
    assert (
        ":k: invalid literal" in result.stderr
        and "unknown command :zz" in result.stderr
    )


def test_bad_and_endless_seed_input_is_bounded(trained, tmp_path: Path):
    binary = CliRunner().invoke(
        cli, ["generate", "-m", str(trained[0]), "-s", "-"], input=b"text\x00\x01\x02"
    )
    assert binary.exit_code == 1 and "binary" in binary.stderr
    assert len(binary.stderr.strip().splitlines()) == 1
    latin1 = CliRunner().invoke(
        cli, ["generate", "-m", str(trained[0]), "-s", "-"], input=b"caf\xe9"
    )
    assert latin1.exit_code == 1 and "not UTF-8" in latin1.stderr
    # A long piped seed is read as a stream; only its end is used.
    long = "zebra " * 400_000 + "one"
    piped = run("generate", "-m", trained[0], "-s", "-", "-n", 2, "-t", 0, stdin=long)
    assert piped.exit_code == 0, piped.output
    assert "the seed has 2,400,003 characters" in piped.stderr
    assert len(piped.stdout) < 10_100  # the seed's last 10,000 characters and more
    many = tmp_path / "many.txt"
    many.write_text("one\n" * 1001)
    refused = run("generate", "-m", trained[0], "--seed-file", many)
    assert refused.exit_code == 1 and "more than 1,000 lines" in refused.stderr
    missing = run("generate", "-m", trained[0], "--seed-file", tmp_path / "none.txt")
    assert missing.exit_code == 1 and "--seed-file not found" in missing.stderr


def test_a_huge_length_is_not_allocated_up_front(trained):
    import tracemalloc

    tracemalloc.start()
    try:
        result = run(
            "generate",
            "-m",
            trained[0],
            "-s",
            "one",
            "-n",
            10**9,
            "--until",
            "sentence",
            "-t",
            0,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0 and result.stdout == "One two three, four five.\n"
    assert peak < 50 * 2**20  # -n 10**9 up front would be 4 GB


def test_a_no_repeat_rule_that_leaves_no_word_is_lifted_and_said(trained):
    # 200 words over a dozen: some word must run out of unused successors.
    args = ["-s", "one", "-n", 200, "--no-repeat-ngram", 2, "--random-seed", 1]
    result = run("generate", "-m", trained[0], *args)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.split()) > 100
    assert result.stderr.count("--no-repeat-ngram 2 ruled out every word") == 1


def test_many_samples_come_in_bounded_batches(trained, monkeypatch):
    """--num-samples is streamed a batch at a time: no call generates more
    than BATCH_ROWS rows, every sample is printed, and the first batch is the
    run a smaller count would give with the same --random-seed."""
    from textgen.inference import generate as module
    from textgen.inference.generate import Generator

    monkeypatch.setattr(module, "BATCH_ROWS", 16)
    rows: list[int] = []
    real = Generator.sample

    def sample(self, seeds, *args, **kwargs):
        rows.append(len(seeds))
        return real(self, seeds, *args, **kwargs)

    monkeypatch.setattr(Generator, "sample", sample)
    args = ["generate", "-m", trained[0], "-s", "one", "-n", 3, "-t", "1.5,2"]
    many = run(*args, "--num-samples", 20, "--random-seed", 4, "--format", "jsonl")
    assert many.exit_code == 0, many.output
    records = [json.loads(line) for line in many.stdout.splitlines()]
    assert [r["sample"] for r in records] == list(range(1, 41))
    assert [r["temperature"] for r in records] == [1.5] * 20 + [2.0] * 20
    assert rows == [16, 16, 8]
    few = run(*args[:-2], "-t", "1.5", "--num-samples", 16, "--random-seed", 4,
              "--format", "jsonl")  # fmt: skip
    assert [json.loads(line)["text"] for line in few.stdout.splitlines()] == [
        r["text"] for r in records[:16]
    ]
    assert len({r["random_seed"] for r in records}) == 3  # one per batch


def test_the_library_gives_the_samples_the_command_line_gives(trained):
    """`Generator.batches` is `generate --num-samples N --random-seed S`:
    the same samples, batch seeds derived the same way past the first."""
    from textgen import Generator, load_model
    from textgen.inference.contract import GenerationRequest, SamplingSettings
    from textgen.inference.generate import BATCH_ROWS

    count = BATCH_ROWS + 4  # two batches
    args = ["-s", "one two", "-n", 4, "-t", 3, "--random-seed", 1]
    args += ["--num-samples", count]
    cli_run = run("generate", "-m", trained[0], *args, "--format", "jsonl")
    assert cli_run.exit_code == 0, cli_run.output
    from_cli = [json.loads(line)["text"] for line in cli_run.stdout.splitlines()]
    generator = Generator(load_model(trained[0]))
    batches = generator.batches(
        ["one two"],
        [SamplingSettings(temperature=3.0)],
        count,
        GenerationRequest(length=4, random_seed=1),
    )
    from_library = [sample.text for batch in batches for sample in batch.samples]
    assert from_library == from_cli and len(from_cli) == count
    assert len(set(from_cli)) > 1  # really sampled, not one text repeated


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly(trained):
    """`textgen ... | head`: the reader goes away; no message, and the exit
    status a shell gives a program its closed pipe ended (141)."""
    import subprocess
    import sys

    for args in (
        ["info", str(trained[0])],
        ["generate", "-m", str(trained[0]), "--num-samples", "3000", "-n", "3"],
        ["--help"],
    ):
        process = subprocess.Popen(
            [sys.executable, "-m", "textgen", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        process.stdout.read(1)
        process.stdout.close()  # as `head -c 1` does
        stderr = process.stderr.read().decode()
        assert process.wait(60) in (0, 141), stderr  # 0: it had written it all
        assert stderr == "" or stderr.startswith("using "), stderr
        if args[0] == "generate":
            assert process.returncode == 141


def test_long_seed_lines_report_their_true_length_and_notes_come_once(
    trained, tmp_path: Path
):
    seeds = tmp_path / "seeds.txt"
    long = "zebra " * 10_000  # 60,000 characters
    seeds.write_text(f"{long}one\nquagga two\nokapi three\n", encoding="utf-8")
    result = run("generate", "-m", trained[0], "--seed-file", seeds, "-n", 2)
    assert result.exit_code == 0, result.output
    notes = result.stderr.strip().splitlines()
    assert notes == [
        "note: 1 of 3 seeds have more than 10,000 characters; only the last "
        "10,000 characters of a seed are read and printed",
        "warning: seed words not in the model's vocabulary, read as <unk>: "
        "zebra quagga okapi",
    ]
    one = run("generate", "-m", trained[0], "-s", long + "one", "-n", 2)
    assert "the seed has 60,003 characters" in one.stderr


def test_max_tries_needs_novel(trained, name_model):
    files = run("generate", "-m", trained[0], "--max-tries", 5)
    assert files.exit_code == 2
    assert "'--max-tries': is for novel, which needs a model" in files.stderr
    assert len(files.stderr.strip().splitlines()) == 1
    off = run("generate", "-m", name_model[0], "--no-novel", "--max-tries", 5)
    assert off.exit_code == 2 and "leave out --no-novel" in off.stderr
    on = run("generate", "-m", name_model[0], "--max-tries", 5, "-n", 5)
    assert on.exit_code == 0, on.output
