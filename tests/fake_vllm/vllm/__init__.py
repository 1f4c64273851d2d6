"""A fake `vllm` package for processes the tests start themselves (Ray workers), which
`fake_servers.install_vllm`'s monkeypatching cannot reach: tests/distributed/conftest.py puts
tests/fake_vllm on the Ray workers' PYTHONPATH.

`LLM` is `fake_servers.FakeLLM` (deterministic samples from the prompt's last tokens) over a
`FakeVLLMModel` that starts with the checkpoint's weights, reached where vLLM's in-process
engine exposes its model (what `VLLMEngine.load_weights` uses). Every sample's text ends with
" w=<digest>", a SHA-256 of the weights the model holds when it samples, so a test sees exactly
which weights drew each sample.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # tests/

from fake_servers import FakeLLM, FakeVLLMModel, model_chain
from fake_servers import FakeSamplingParams as SamplingParams  # noqa: F401


def weights_digest(state) -> str:
    """SHA-256 (16 hex digits) of a state dict's names and float32 values."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().to("cpu").float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class LLM(FakeLLM):
    def __init__(self, **kwargs):
        from transformers import AutoModelForCausalLM

        state = AutoModelForCausalLM.from_pretrained(kwargs["model"], revision=kwargs.get("revision")).state_dict()
        self.model = FakeVLLMModel({name: t.shape for name, t in state.items()})
        self.model.load_weights(state.items())
        super().__init__(kwargs, inner=model_chain(self.model))

    def generate(self, requests, params, use_tqdm=True):
        outs = super().generate(requests, params, use_tqdm)
        tag = f" w={weights_digest(self.model.store)}"
        for out in outs:
            for c in out.outputs:
                c.text += tag
        return outs
