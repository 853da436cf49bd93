"""What clients nobody on the project wrote need of `textgen serve`: the
tokenizer routes (vLLM's shapes), token-id prompts, echo that returns the
prompt as sent, limits in tokens, the chat API, and runs of the real
`openai` client and lm-evaluation-harness against a real server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("starlette")

from conftest import Server
from starlette.testclient import TestClient

from textgen.inference.generate import Generator
from textgen.model.file import read_model
from textgen.serving.app import create_app
from textgen.serving.prompts import START
from textgen.text.tokens import PARAGRAPH

KEY = "sekret"
# Mixed case, runs of spaces, tabs, line breaks, a paragraph break and
# letters beyond ASCII: what a caller's text looks like.
WORD_PROMPTS = [
    "One  TWO\tthree,\n four",
    "  six Seven\n\n\neight   nine!  ",
    "one two Zarquon ÉTÉ three",
    "",
]
CHAR_PROMPTS = ["Ba\tBé  ", "bako\n\n  KO  \nlu", "  ", "é"]


@pytest.fixture(scope="module")
def client(trained, name_model):
    models = {"pattern": read_model(trained[0]), "names": read_model(name_model[0])}
    app = create_app(models, api_key=KEY, max_prompt_tokens=64)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as running:
        yield running


def _complete(client, **body):
    response = client.post("/v1/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _streamed(client, path: str, **body) -> list[dict]:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def _check_logprobs(logprobs: dict, text: str, level: str) -> None:
    """Tokens join to the text, offsets index it, and every alternative is
    one token's text: the chosen one among them as its own text."""
    tokens, offsets = logprobs["tokens"], logprobs["text_offset"]
    if not tokens:  # a prompt of whitespace alone, scored: nothing to score
        assert not text.strip()
        return
    assert "".join(tokens) == text
    for token, offset in zip(tokens, offsets, strict=True):
        assert text[offset : offset + len(token)] == token
    for token, value, top in zip(
        tokens, logprobs["token_logprobs"], logprobs["top_logprobs"], strict=True
    ):
        if value is None:
            assert top is None
            continue
        assert top[token] == value
        for key in top:
            if key != token:
                if level == "char":
                    assert len(key) == 1, (key, token)
                elif key.strip():  # the token's leading whitespace, then a word
                    space = token[: len(token) - len(token.lstrip())]
                    assert key.startswith(space) and key[len(space) :].strip()
                else:  # a paragraph end: its line breaks
                    assert key == "\n\n"


@pytest.mark.parametrize("max_tokens", [0, 3])
@pytest.mark.parametrize(
    ("model", "level", "prompts"),
    [("pattern", "word", WORD_PROMPTS), ("names", "char", CHAR_PROMPTS)],
)
def test_echo_returns_the_prompt_as_sent(client, model, level, prompts, max_tokens):
    for prompt in prompts:
        body = dict(model=model, prompt=prompt, max_tokens=max_tokens, seed=3)
        plain = _complete(client, **body)["choices"][0]["text"] if max_tokens else ""
        answer = _complete(client, **body, echo=True, logprobs=2)
        (choice,) = answer["choices"]
        assert choice["text"] == prompt + plain
        _check_logprobs(choice["logprobs"], choice["text"], level)
        # The prompt's tokens are its slices, as many as usage counts.
        prompt_tokens = answer["usage"]["prompt_tokens"]
        echoed = choice["logprobs"]["tokens"][:prompt_tokens]
        if prompt_tokens:
            assert "".join(echoed) == prompt
        # Streamed: the same text and tokens, each event's joined to its text.
        events = _streamed(client, "/v1/completions", **body, echo=True, logprobs=2)
        texts = [e["choices"][0]["text"] for e in events if e["choices"]]
        tokens = []
        for event in events:
            for piece in event["choices"]:
                if piece["logprobs"] and piece["logprobs"]["tokens"]:
                    assert "".join(piece["logprobs"]["tokens"]) == piece["text"]
                    tokens += piece["logprobs"]["tokens"]
        assert "".join(texts) == choice["text"]
        assert tokens == choice["logprobs"]["tokens"]
        # Without logprobs too, streamed or not.
        echoed_plain = _complete(client, **body, echo=True)["choices"][0]["text"]
        assert echoed_plain == choice["text"]
        events = _streamed(client, "/v1/completions", **body, echo=True)
        assert (
            "".join(e["choices"][0]["text"] for e in events if e["choices"])
            == (choice["text"])
        )


def test_ids_round_trip_through_the_tokenizer_routes(client, trained):
    vocabulary = read_model(trained[0]).vocabulary
    info = client.get("/tokenizer_info", params={"model": "pattern"}).json()
    assert info["bos_token"] == info["eos_token"] == START
    assert info["vocab_size"] == len(vocabulary) and info["max_model_len"] == 64
    text = "One two Zarquon three. Blorp Zarquon"
    ids = client.post("/tokenize", json={"model": "pattern", "prompt": text}).json()
    ids = ids["tokens"]
    assert len(ids) == 7
    # An unknown word has an id of its own past the vocabulary (and the start
    # token's), the same each time it comes.
    assert ids[2] == ids[6] > len(vocabulary) and ids[5] > len(vocabulary)
    assert ids[2] != ids[5]
    back = client.post("/detokenize", json={"model": "pattern", "tokens": ids})
    assert back.json()["prompt"].lower() == text.lower()
    again = client.post("/tokenize", json={"model": "pattern", "prompt": text})
    assert again.json()["tokens"] == ids
    # The start token: its name reads as its id and back (a start token
    # lost on the way back would leave a text's first token unscored).
    (start,) = client.post(
        "/tokenize", json={"model": "pattern", "prompt": START}
    ).json()["tokens"]
    assert start == len(vocabulary)
    assert client.post(
        "/detokenize", json={"model": "pattern", "tokens": [start]}
    ).json() == {"prompt": START}
    special = client.post(
        "/tokenize",
        json={"model": "pattern", "prompt": "one", "add_special_tokens": True},
    ).json()["tokens"]
    assert special[0] == start and len(special) == 2


def test_token_id_prompts_are_read_like_their_text(client, trained):
    text = "one two Zarquon three, four"
    ids = client.post("/tokenize", json={"model": "pattern", "prompt": text})
    ids = ids.json()["tokens"]
    body = dict(model="pattern", max_tokens=0, echo=True, logprobs=1)
    by_text = _complete(client, **body, prompt=text)["choices"][0]["logprobs"]
    by_ids = _complete(client, **body, prompt=ids)["choices"][0]["logprobs"]
    assert by_ids["token_logprobs"] == by_text["token_logprobs"]
    assert "".join(by_ids["tokens"]).lower() == text.lower()
    # Continued alike, and a list of lists is several prompts.
    body = dict(model="pattern", max_tokens=6, seed=11)
    from_text = _complete(client, **body, prompt=text)["choices"][0]["text"]
    both = _complete(client, **body, prompt=[ids, ids[:2]])
    assert both["choices"][0]["text"] == from_text
    assert both["usage"]["prompt_tokens"] == len(ids) + 2
    # Prefixed with the start token: that token is echoed with no number,
    # and the first word is scored from the start, as `evaluate` scores it.
    start = len(read_model(trained[0]).vocabulary)
    started = _complete(
        client, model="pattern", prompt=[start, *ids], max_tokens=0, echo=True,
        logprobs=1,
    )["choices"][0]["logprobs"]  # fmt: skip
    assert started["tokens"][0] == START and started["token_logprobs"][0] is None
    assert started["token_logprobs"][2:] == by_text["token_logprobs"][1:]
    first = started["token_logprobs"][1]
    assert first is not None and first < 0


def test_an_item_models_ids_end_its_items(client, name_model):
    words = read_model(name_model[0]).vocabulary.word_to_id
    ids = [words["b"], words["a"], words["<end>"], words["k"], words["o"]]
    scored = _complete(
        client, model="names", prompt=ids, max_tokens=0, echo=True, logprobs=0
    )["choices"][0]
    assert scored["text"] == "ba\nko"
    by_text = _complete(
        client, model="names", prompt="ba\nko", max_tokens=0, echo=True, logprobs=0
    )["choices"][0]
    assert (
        scored["logprobs"]["token_logprobs"] == (by_text["logprobs"]["token_logprobs"])
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/tokenize", {"model": "pattern", "prompt": 5}, 400, "prompt must be"),
        ("/tokenize", {"prompt": "a"}, 400, "model is required"),
        ("/tokenize", [1], 400, "must be a JSON object"),
        ("/tokenize", {"model": "x", "prompt": "a"}, 404, "not loaded here"),
        (
            "/tokenize",
            {"model": "pattern", "prompt": "a", "add_special_tokens": 1},
            400,
            "add_special_tokens must be",
        ),
        ("/detokenize", {"model": "pattern", "tokens": "1 2"}, 400, "tokens must be"),
        ("/detokenize", {"model": "pattern", "tokens": [-1]}, 400, "token id -1"),
        ("/detokenize", {"model": "pattern", "tokens": [2, 10**9]}, 400, "token id"),
        ("/detokenize", {"model": "pattern", "tokens": [2.0]}, 400, "token id 2.0"),
        (
            "/v1/completions",
            {"model": "pattern", "prompt": "a " * 65},
            413,
            "65 tokens; the most is 64",
        ),
        (
            "/v1/completions",
            {"model": "pattern", "prompt": "a, " * 40},
            413,
            "80 tokens; the most is 64",
        ),
        (
            "/v1/completions",
            {"model": "pattern", "prompt": [2] * 65},
            413,
            "65 tokens; the most is 64",
        ),
    ],
)
def test_bad_tokenizer_requests_get_one_line(client, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"] and "\n" not in error["message"]


def test_the_tokenizer_routes_need_the_key(client):
    for method, path in (
        ("GET", "/tokenizer_info"),
        ("POST", "/tokenize"),
        ("POST", "/detokenize"),
        ("POST", "/v1/chat/completions"),
    ):
        response = client.request(
            method, path, json={}, headers={"Authorization": "Bearer wrong"}
        )
        assert response.status_code == 401, path


def test_a_prompt_of_the_most_tokens_is_read(client):
    answer = _complete(client, model="pattern", prompt="one " * 64, max_tokens=1)
    assert answer["usage"]["prompt_tokens"] == 64


# --- chat -------------------------------------------------------------------


def _chat(client, **body):
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_continues_the_messages_as_paragraphs(client, trained):
    messages = [
        {"role": "system", "content": "one two three"},
        {"role": "user", "content": [{"type": "text", "text": "four five"}]},
    ]
    answer = _chat(client, model="pattern", messages=messages, max_tokens=8, seed=5)
    assert answer["object"] == "chat.completion"
    assert answer["id"].startswith("chatcmpl-")
    (choice,) = answer["choices"]
    assert choice["message"]["role"] == "assistant"
    # The template: each message a paragraph, the reply a new one after them.
    generator = Generator(read_model(trained[0]))
    tokenize = generator.tokenizer.tokenize
    seed = (*tokenize("one two three"), PARAGRAPH, *tokenize("four five"), PARAGRAPH)
    from textgen.inference.contract import GenerationRequest, SamplingSettings

    (sample,) = generator.sample(
        [seed], [SamplingSettings()], GenerationRequest(length=8, random_seed=5)
    )
    expected = sample.text[len(generator.join(list(seed))) :].lstrip()
    assert choice["message"]["content"] == expected
    assert answer["usage"]["prompt_tokens"] == len(seed)
    assert answer["usage"]["completion_tokens"] == 8
    # Streamed: the role first, then the same text, then the finish reason.
    events = _streamed(
        client, "/v1/chat/completions", model="pattern", messages=messages,
        max_tokens=8, seed=5, stream_options={"include_usage": True},
    )  # fmt: skip
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["delta"].get("content", "") for e in events for c in e["choices"]]
    assert "".join(deltas) == expected
    assert events[-2]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 8


def test_chat_logprobs_in_the_chat_shape(client):
    body = dict(
        model="pattern",
        messages=[{"role": "user", "content": "one two"}],
        max_completion_tokens=5,
        seed=2,
        logprobs=True,
        top_logprobs=2,
        n=2,
    )
    answer = _chat(client, **body)
    assert len(answer["choices"]) == 2
    for choice in answer["choices"]:
        content = choice["logprobs"]["content"]
        assert "".join(c["token"] for c in content) == choice["message"]["content"]
        for entry in content:
            assert bytes(entry["bytes"]) == entry["token"].encode()
            assert len(entry["top_logprobs"]) <= 2
            values = [t["logprob"] for t in entry["top_logprobs"]]
            assert values == sorted(values, reverse=True)
            assert math.isfinite(entry["logprob"]) and entry["logprob"] <= 0
    streamed = _streamed(client, "/v1/chat/completions", **body)
    for index in (0, 1):
        pieces = [c for e in streamed for c in e["choices"] if c["index"] == index]
        tokens = [
            t["token"]
            for c in pieces
            if c["logprobs"]
            for t in c["logprobs"]["content"]
        ]
        text = "".join(c["delta"].get("content", "") for c in pieces)
        assert "".join(tokens) == text == answer["choices"][index]["message"]["content"]


def test_an_item_models_chat_continues_the_last_user_message(client):
    messages = [
        {"role": "user", "content": "ko"},
        {"role": "assistant", "content": "kolu"},
        {"role": "user", "content": "ba"},
    ]
    chat = _chat(client, model="names", messages=messages, max_tokens=12, seed=4)
    plain = _complete(client, model="names", prompt="ba", max_tokens=12, seed=4)
    assert chat["choices"][0]["message"]["content"] == (
        plain["choices"][0]["text"].lstrip()
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": "hi"}, "messages must be a non-empty list"),
        ({"messages": [{"content": "a"}]}, "messages[0].role must be"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "only text parts",
        ),
        ({"messages": [{"role": "user", "content": 3}]}, "content must be a string"),
        (
            {"messages": [{"role": "user", "content": "a"}], "tools": [{}]},
            "tools is not supported",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}], "top_logprobs": 2},
            "top_logprobs needs logprobs",
        ),
        (
            {
                "messages": [{"role": "user", "content": "a"}],
                "logprobs": True,
                "top_logprobs": 21,
            },
            "top_logprobs must be",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}], "prompt": "a"},
            "prompt is a completions field",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}], "max_tokens": 0},
            "max_tokens must be 1 or more",
        ),
        (
            {
                "messages": [{"role": "user", "content": "a"}],
                "response_format": {"type": "json_object"},
            },
            "response_format",
        ),
    ],
)
def test_bad_chat_requests_get_one_line(client, body, message):
    response = client.post("/v1/chat/completions", json={"model": "pattern", **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert message in error["message"] and "\n" not in error["message"]


# --- the real clients, against a real server --------------------------------


@pytest.fixture(scope="module")
def server(trained, name_model):
    running = Server("-m", str(trained[0]), "-m", str(name_model[0]))
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.mark.slow
def test_the_openai_client_chats_and_completes(server):
    import openai

    client = server.client()
    chat = client.chat.completions.create(
        model="pattern",
        messages=[{"role": "user", "content": "one two three"}],
        max_tokens=6,
        seed=1,
        logprobs=True,
        top_logprobs=1,
        stop=["nine"],
    )
    (choice,) = chat.choices
    assert choice.message.role == "assistant" and choice.message.content
    assert "nine" not in choice.message.content
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert chat.usage.completion_tokens >= 1
    stream = client.chat.completions.create(
        model="pattern",
        messages=[{"role": "user", "content": "one two three"}],
        max_tokens=6,
        seed=1,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    again = client.chat.completions.create(
        model="pattern",
        messages=[{"role": "user", "content": "one two three"}],
        max_tokens=6,
        seed=1,
    )
    assert text == again.choices[0].message.content
    # Token ids, echoed as sent.
    import httpx

    ids = httpx.post(
        server.url + "/tokenize", json={"model": "pattern", "prompt": "One  two"}
    ).json()["tokens"]
    echoed = client.completions.create(
        model="pattern", prompt=ids, max_tokens=2, echo=True, seed=1
    )
    assert echoed.choices[0].text.startswith("One two")
    with pytest.raises(openai.BadRequestError, match="only text parts"):
        client.chat.completions.create(
            model="pattern",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "x"}}],
                }
            ],
        )
    with pytest.raises(openai.APIStatusError, match="the most is 8,192"):
        client.completions.create(model="pattern", prompt="one " * 8193, max_tokens=1)


def _lm_eval_tasks(folder: Path, documents: list[str]) -> None:
    """A multiple-choice task and a rolling-perplexity task over files the
    test writes (lm-eval reads them with `datasets`' json loader)."""
    choices = [
        {"context": "one two three, four", "choices": ["five.", "eight!"], "answer": 0},
        {"context": "six seven", "choices": ["two", "eight nine!"], "answer": 1},
        {"context": "five. six", "choices": ["seven eight", "one"], "answer": 0},
    ]
    (folder / "mc.jsonl").write_text("\n".join(json.dumps(c) for c in choices))
    (folder / "docs.jsonl").write_text(
        "\n".join(json.dumps({"text": d}) for d in documents)
    )
    common = "dataset_path: json\ntest_split: test\n"
    (folder / "mc.yaml").write_text(
        "task: textgen_mc\n" + common
        + f"dataset_kwargs:\n  data_files:\n    test: {folder / 'mc.jsonl'}\n"
        "output_type: multiple_choice\ndoc_to_text: '{{context}}'\n"
        "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{answer}}'\n"
        "metric_list:\n  - metric: acc\n"
    )  # fmt: skip
    (folder / "ppl.yaml").write_text(
        "task: textgen_ppl\n" + common
        + f"dataset_kwargs:\n  data_files:\n    test: {folder / 'docs.jsonl'}\n"
        "output_type: loglikelihood_rolling\ndoc_to_text: ''\n"
        "doc_to_target: '{{text}}'\n"
        "metric_list:\n  - metric: word_perplexity\n"
    )  # fmt: skip


@pytest.fixture(scope="module")
def one_model(trained):
    """A server of one model: lm-eval's tokenizer requests name none."""
    running = Server("-m", str(trained[0]))
    yield running
    assert running.stop() == 0, "".join(running.log)


@pytest.mark.slow
@pytest.mark.parametrize("tokenized", [True, False])
def test_lm_eval_scores_a_model_as_evaluate_does(
    one_model, trained, tmp_path, monkeypatch, tokenized
):
    """lm-evaluation-harness's `local-completions` with the remote tokenizer:
    multiple choice runs, and each document's rolling log-likelihood is the
    sum `textgen evaluate --per-token` gives for that document alone."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    documents = [
        "One two three, four five. Six seven eight nine!",
        "Four five.  Six seven eight Zarquon! One two three.",
        "Seven eight nine!\n\nOne two three, four five.",
    ]
    _lm_eval_tasks(tmp_path, documents)
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=(
            f"base_url={one_model.url}/v1/completions,model=pattern,"
            f"tokenizer_backend=remote,max_length=512,tokenized_requests={tokenized}"
        ),
        tasks=["textgen_mc", "textgen_ppl"],
        task_manager=TaskManager(include_path=str(tmp_path)),
        log_samples=True,
    )
    assert results["results"]["textgen_mc"]["acc,none"] >= 2 / 3
    rolling = {
        s["doc"]["text"]: float(s["filtered_resps"][0])
        for s in results["samples"]["textgen_ppl"]
    }
    from textgen.inference.evaluate import evaluate

    model = read_model(trained[0])
    for i, document in enumerate(documents):
        path = tmp_path / f"doc{i}.txt"
        path.write_text(document, encoding="utf-8")
        losses = evaluate(model, [path], per_token=True).token_losses
        summed = -sum(float(x) for x in losses if not math.isnan(x))
        assert rolling[document] == pytest.approx(summed, abs=1e-4)


def test_unknown_word_ids_are_bounded():
    """Past its bounds the table hands out `<unk>`'s id: no client can grow
    the server's memory without end by sending new words."""
    from textgen.serving.prompts import MAX_UNKNOWN_WORD, TokenIds
    from textgen.text.vocab import UNK_ID, Vocabulary

    ids = TokenIds(Vocabulary(["<pad>", "<unk>", "a"]), most=2)
    first, second, third = ids.ids(["x", "y", "z"])
    assert (first, second) == (4, 5) and third == UNK_ID
    assert ids.ids(["x", "a"]) == [4, 2]  # the same word, the same id
    assert ids.tokens([4, 5, 2]) == (False, ["x", "y", "a"])
    roomy = TokenIds(Vocabulary(["<pad>", "<unk>"]))
    assert roomy.ids(["w" * (MAX_UNKNOWN_WORD + 1)]) == [UNK_ID]
