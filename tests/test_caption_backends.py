"""The optional captioners against real collaborators: a tiny random BLIP saved to disk, and a
loopback HTTP server speaking the OpenAI chat.completions API."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from PIL import Image

from prism.demo import DEMO_CATALOG
from prism.errors import ModelMissingError
from prism.prompts import load_prompt
from prism.tools.captioning.base import Caption, CaptionError
from prism.tools.captioning.blip import BlipCaptioner
from prism.tools.captioning.openai_vision import OpenAIVisionCaptioner

POSTER = DEMO_CATALOG / "images" / "quiet-orbit.jpg"
WORDS = "a an the of in on with and is cat dog man woman poster movie film red blue green sky city night title text"
API_KEY = "sk-test-DO-NOT-LEAK-1234"


@pytest.fixture
def poster() -> Image.Image:
    with Image.open(POSTER) as handle:
        return handle.convert("RGB")


# --- BLIP ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory) -> Path:
    """A randomly initialised BLIP (32-d, one layer) with its processor, as save_pretrained writes it."""
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-blip")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS.split(), "[DEC]"]) + "\n")
    tokenizer = BertTokenizer(vocab=str(vocab), bos_token="[DEC]")
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    ids = dict(bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id,
               eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id)
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, **ids),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
        image_text_hidden_size=16,
    )
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config).eval()
    # Random weights could stop at once with an empty caption; forbid [SEP] so text always comes out.
    with torch.no_grad():
        model.text_decoder.cls.predictions.bias[tokenizer.sep_token_id] = -1e4
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_blip_captions_an_image_with_provenance(tiny_blip, poster):
    import transformers
    from transformers import BlipForConditionalGeneration, BlipProcessor

    caption = BlipCaptioner(tiny_blip, max_new_tokens=8).caption(poster)

    assert isinstance(caption, Caption)
    assert isinstance(caption.text, str) and caption.text.strip()
    prov = caption.provenance
    assert prov.backend == "blip"
    assert prov.model == tiny_blip.name
    assert transformers.__version__ in prov.version
    assert prov.weights_sha256 == hashlib.sha256((tiny_blip / "model.safetensors").read_bytes()).hexdigest()
    assert 0.0 <= prov.confidences["mean_token_prob"] <= 1.0

    # The same greedy decode done by hand: the caption and its confidence must match it.
    model = BlipForConditionalGeneration.from_pretrained(tiny_blip, local_files_only=True).eval()
    processor = BlipProcessor.from_pretrained(tiny_blip, local_files_only=True)
    with torch.inference_mode():
        out = model.generate(**processor(images=poster, return_tensors="pt"), max_new_tokens=8, do_sample=False,
                             output_scores=True, return_dict_in_generate=True)
    new_tokens = out.sequences[0, -len(out.scores):]
    probs = [torch.softmax(step[0], dim=-1)[token].item() for step, token in zip(out.scores, new_tokens)]
    assert len(probs) == 8
    assert caption.text == processor.decode(out.sequences[0], skip_special_tokens=True).strip()
    assert prov.confidences["mean_token_prob"] == pytest.approx(sum(probs) / len(probs), rel=1e-5)


def test_blip_missing_folder_or_weights_is_model_missing(tmp_path, tiny_blip):
    with pytest.raises(ModelMissingError, match="does not exist"):
        BlipCaptioner(tmp_path / "no-such-blip")
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    (config_only / "config.json").write_bytes((tiny_blip / "config.json").read_bytes())
    with pytest.raises(ModelMissingError, match="no weights file"):
        BlipCaptioner(config_only)


# --- OpenAI-compatible vision endpoint ------------------------------------------------------


class FakeVisionServer:
    """A loopback HTTP server for POST /v1/chat/completions.

    ``mode``: "ok" replies with ``reply`` as the completion, "empty" with an empty message,
    "error" with HTTP 500 whose body echoes the Authorization header. Bodies are recorded.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.reply = "  A poster of a lone satellite over a dark blue planet, titled \"QUIET ORBIT\".\n"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                if server.mode == "error":
                    return self._send(500, {"error": {"message": f"boom for {self.headers['Authorization']}"}})
                content = "" if server.mode == "empty" else server.reply
                self._send(200, {
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake-vision-1",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                })

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def vision_server():
    server = FakeVisionServer()
    yield server
    server.close()


def test_openai_vision_sends_prompt_and_jpeg_and_reads_reply(vision_server, poster):
    captioner = OpenAIVisionCaptioner(base_url=vision_server.base_url, model="gpt-4o-mini", api_key=API_KEY)
    caption = captioner.caption(poster)

    import openai

    assert caption.text == vision_server.reply.strip()
    assert caption.provenance.backend == "openai"
    assert caption.provenance.model == "fake-vision-1"
    assert caption.provenance.version == f"openai {openai.__version__}"
    assert caption.provenance.confidences == {}

    assert len(vision_server.requests) == 1
    request = vision_server.requests[0]
    assert request["model"] == "gpt-4o-mini"
    assert vision_server.headers[0]["authorization"] == f"Bearer {API_KEY}"
    parts = [part for message in request["messages"] for part in message["content"]]
    texts = [part["text"] for part in parts if part["type"] == "text"]
    urls = [part["image_url"]["url"] for part in parts if part["type"] == "image_url"]
    assert load_prompt("caption_image").strip() in texts
    assert len(urls) == 1 and urls[0].startswith("data:image/jpeg;base64,")
    with Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))) as sent:
        sent.load()
        assert sent.format == "JPEG"
        assert sent.size == poster.size


def test_openai_vision_http_error_is_caption_error_without_key(vision_server, poster):
    vision_server.mode = "error"
    captioner = OpenAIVisionCaptioner(base_url=vision_server.base_url, model="m", api_key=API_KEY)
    with pytest.raises(CaptionError) as info:
        captioner.caption(poster)
    message = str(info.value)
    assert vision_server.base_url in message and "HTTP 500" in message and "boom" in message
    assert API_KEY not in "".join(traceback.format_exception(info.value))  # the server echoed it
    assert len(vision_server.requests) == 2  # one retry, then give up


def test_openai_vision_empty_reply_is_caption_error(vision_server, poster):
    vision_server.mode = "empty"
    captioner = OpenAIVisionCaptioner(base_url=vision_server.base_url, model="m", api_key=None)
    with pytest.raises(CaptionError, match="no caption text"):
        captioner.caption(poster)


def test_openai_vision_unreachable_is_caption_error_naming_url(poster):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"  # nothing listens here any more
    captioner = OpenAIVisionCaptioner(base_url=base_url, model="m", api_key=API_KEY, timeout=5.0)
    with pytest.raises(CaptionError) as info:
        captioner.caption(poster)
    assert base_url in str(info.value)
    assert "unreachable" in str(info.value)
    assert API_KEY not in str(info.value)
