"""A damaged local model folder is a user error naming the folder and the fix, not a traceback."""

from __future__ import annotations

import shutil

from helpers import invoke, write_tiny_task


def test_corrupt_weights_name_the_folder(tmp_path, tiny_st_model):
    model = tmp_path / "broken-model"
    shutil.copytree(tiny_st_model, model)
    weights = list(model.rglob("model.safetensors"))
    assert weights
    for path in weights:
        path.write_bytes(b"not safetensors" * 8)
    tasks = write_tiny_task(tmp_path)
    out = tmp_path / "results"
    res = invoke("run", "--model", str(model), "--tasks", "tiny", "--tasks-dir", str(tasks), "--output", str(out),
                 "--cache-dir", str(tmp_path / "cache"))
    assert res.exit_code == 2, res.output
    assert f"the model folder {model.resolve()} cannot be loaded" in res.output
    assert "Save or download the model again" in res.output
    assert not out.exists() or not list(out.rglob("*.json"))
