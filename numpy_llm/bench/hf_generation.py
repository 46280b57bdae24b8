"""Generation side by side with Hugging Face ``transformers`` (``--compare-torch`` on the CPU).

The same weights in both: our model's parameters are written by the project's own export
(export.py: export_hf) into a temporary folder, which ``GPT2LMHeadModel.from_pretrained``
loads.  Both generate greedily (temperature 0 / ``do_sample=False``), with their KV caches,
the same number of new tokens from the same one-token prompt:

    ours     list(generate(model, prompt, n, temperature=0))            numpy_llm/generate.py
    theirs   hf_model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False)
             (with an all-ones attention mask: the padding id it needs is not the prompt's padding)

The two are timed alternately, A B A B, ``rounds`` times each, every call after the bench's
idle (timing.py), and compared by their medians and by the median of the rounds' ratios
(each round's two runs see about the same machine).  n is at most block_size - 1, so neither
runs past its positions.  How many of the new tokens are the same is recorded too (float32
arithmetic in two libraries may break a near-tie differently; from then on the texts differ).
"""
import statistics
import tempfile

import numpy as np

from ..export import export_hf
from ..generate import generate
from .timing import timed

PROMPT_TOKEN = 10                 # one token, as report.py: generation_speed ("\n" for bytes)


def load_transformers():
    """``transformers``, or None when it is not installed (the comparison is then skipped)."""
    try:
        import transformers
    except ImportError:
        return None
    return transformers


def load_hf_twin(transformers, model):
    """``GPT2LMHeadModel`` with ``model``'s weights, through an export_hf folder, in eval mode."""
    with tempfile.TemporaryDirectory() as folder:
        export_hf(model.host_params(), model.config, folder, overwrite=True)
        return transformers.GPT2LMHeadModel.from_pretrained(folder).eval()


def compare_generation(torch, transformers, model, n_tokens, settle, rounds=3, log=print):
    """Tokens per second of our greedy generation and transformers', alternated ``rounds``
    times; returns the medians, their ratio and how many of the new tokens agree."""
    n = min(n_tokens, model.config.block_size - 1)
    hf_model = load_hf_twin(transformers, model)
    prompt = np.array([PROMPT_TOKEN])
    hf_prompt = torch.tensor(prompt[None, :])
    tokens = {}

    def ours():
        tokens["numpy_llm"] = list(generate(model, prompt, n, temperature=0))

    def theirs():
        with torch.no_grad():
            out = hf_model.generate(hf_prompt, attention_mask=torch.ones_like(hf_prompt), max_new_tokens=n,
                                    min_new_tokens=n, do_sample=False, pad_token_id=PROMPT_TOKEN)
        tokens["transformers"] = out[0, len(prompt):].tolist()

    seconds = {"numpy_llm": [], "transformers": []}
    for i in range(rounds):
        log(f"generation round {i + 1} of {rounds}: {n} greedy tokens, ours then transformers' ...")
        for label, fn in (("numpy_llm", ours), ("transformers", theirs)):
            seconds[label].append(timed(fn, lambda: None, settle))
    speed = {label: n / statistics.median(times) for label, times in seconds.items()}
    round_ratios = [a / b for a, b in zip(seconds["numpy_llm"], seconds["transformers"])]   # ours / theirs
    agree = next((i for i, (a, b) in enumerate(zip(tokens["numpy_llm"], tokens["transformers"])) if a != b), n)
    return {"new_tokens": n, "rounds": rounds, "tokens_per_s": speed,
            "seconds": seconds, "ours_over_transformers_time": speed["transformers"] / speed["numpy_llm"],
            "median_round_ratio": statistics.median(round_ratios),
            "same_leading_tokens": agree, "transformers": transformers.__version__}
