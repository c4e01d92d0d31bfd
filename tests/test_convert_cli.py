"""`hf-captioners convert ...` and `hf-captioners push --dry-run`: files in, loadable folders out, one-line summaries."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, CLIPVisionModelWithProjection, GPT2Config, GPT2LMHeadModel

from hf_captioners.commands import main
from hf_captioners.toyworld.tiny_altogether import tiny_tokenizer, tiny_vision_config


def test_convert_clipcap_then_push_dry_run(tmp_path, capsys):
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(tmp_path / "tok")
    clip = CLIPVisionModelWithProjection(tiny_vision_config(32, projection_dim=24))
    clip.save_pretrained(tmp_path / "clip")
    gpt = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id)  # fmt: skip
    (tmp_path / "gpt.json").write_text(json.dumps({"model_type": "gpt2", **gpt.to_diff_dict()}))
    torch.manual_seed(0)
    state = {f"gpt.{k}": v for k, v in GPT2LMHeadModel(gpt).state_dict().items()}
    state.update({"clip_project.model.0.weight": torch.randn(48, 24), "clip_project.model.0.bias": torch.randn(48),
                  "clip_project.model.2.weight": torch.randn(96, 48), "clip_project.model.2.bias": torch.randn(96)})  # fmt: skip
    torch.save(state, tmp_path / "clipcap.pt")

    assert main(["convert", "clipcap", str(tmp_path / "clipcap.pt"), str(tmp_path / "out"), "--clip", str(tmp_path / "clip"),
                 "--tokenizer", str(tmp_path / "tok"), "--text-config", str(tmp_path / "gpt.json"),
                 "--normalize-prefix", "--frozen-lm"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("converted ") and "mlp mapper, prefix 3" in line and line.endswith(str(tmp_path / "out"))
    model = AutoModel.from_pretrained(tmp_path / "out")
    assert model.config.prompt_length == 0 and model.config.mapper_type == "mlp"
    assert model.config.normalize_image_embeds and model.config.freeze_text_model
    # the original's decoding: greedy to the first "." (predict.py generate2)
    stop = tokenizer.encode(".", add_special_tokens=False)[0]
    assert (model.generation_config.num_beams, model.generation_config.eos_token_id) == (1, stop)
    torch.testing.assert_close(model.mapper.model[2].weight, state["clip_project.model.2.weight"])

    assert main(["push", str(tmp_path / "out"), "me/clipcap-tiny", "--dry-run", str(tmp_path / "dry"),
                 "--license", "mit", "--base-model", "openai/clip-vit-base-patch32", "--base-model", "gpt2"]) == 0  # fmt: skip
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("push (dry run): ") and "nothing uploaded" in line
    readme = (tmp_path / "dry" / "README.md").read_text()
    assert "license: mit" in readme and "- gpt2" in readme and "plain ClipCap" in readme


def test_convert_open_clip_and_refusal(tmp_path, capsys):
    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 16, "quick_gelu": False,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}  # fmt: skip
    model = open_clip.model.CLIP(cfg["embed_dim"], cfg["vision_cfg"], cfg["text_cfg"]).eval()
    torch.save(model.state_dict(), tmp_path / "oc.pt")
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert main(["convert", "open-clip", str(tmp_path / "oc.pt"), str(tmp_path / "hf"), "--model", str(tmp_path / "cfg.json")]) == 0
    assert "CLIP gelu" in capsys.readouterr().out
    from transformers import AutoTokenizer, CLIPModel

    hf = CLIPModel.from_pretrained(tmp_path / "hf")
    tok = AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = tok(["a photo of a cat"], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    assert ids["input_ids"].tolist() == open_clip.tokenize(["a photo of a cat"]).tolist()
    with torch.no_grad():
        got = hf.get_text_features(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])
        got = got.pooler_output if hasattr(got, "pooler_output") else got
        torch.testing.assert_close(got, model.encode_text(ids["input_ids"]), atol=1e-5, rtol=0)

    # an argparse Namespace next to the weights is allow-listed inert data; any other class is refused
    from hf_captioners.convert.checkpoints import CheckpointError, load_state_dict

    torch.save({"state_dict": model.state_dict(), "args": __import__("argparse").Namespace(lr=1.0)}, tmp_path / "args.pt")
    assert set(load_state_dict(tmp_path / "args.pt")) == set(model.state_dict())
    torch.save({"state_dict": model.state_dict(), "hook": TrainingHook()}, tmp_path / "hook.pt")
    with pytest.raises(CheckpointError, match="refused to load.*TrainingHook"):
        load_state_dict(tmp_path / "hook.pt")
    capsys.readouterr()
    assert main(["convert", "open-clip", str(tmp_path / "hook.pt"), str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err
    assert "convert: error: " in err and "refused to load" in err and "TrainingHook" in err and "Traceback" not in err
    assert not (tmp_path / "never").exists()


class TrainingHook:
    """A class of the training code, pickled beside the weights: unpickling it would import and run that code."""
