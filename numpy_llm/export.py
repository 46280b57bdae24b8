"""Convert between a numpy_llm checkpoint and a Hugging Face ``transformers`` GPT-2 folder.

The model is GPT-2 exactly, so the conversion only renames; no array is transposed, because
``transformers``' GPT-2 stores its linear layers as ``Conv1D`` with weights (n_in, n_out), the
orientation of the registry here:

    wte, wpe                  transformer.wte.weight, transformer.wpe.weight
    h.{l}.ln_1.gamma / beta   transformer.h.{l}.ln_1.weight / bias       (ln_2, ln_f alike)
    h.{l}.attn.w_qkv / b_qkv  transformer.h.{l}.attn.c_attn.weight / bias   columns [q | k | v]
    h.{l}.attn.w_proj / b_proj  transformer.h.{l}.attn.c_proj.weight / bias
    h.{l}.mlp.w_fc / b_fc     transformer.h.{l}.mlp.c_fc.weight / bias
    h.{l}.mlp.w_proj / b_proj transformer.h.{l}.mlp.c_proj.weight / bias

The LM head is tied to ``wte``, so ``lm_head.weight`` is not stored (``save_pretrained`` leaves
it out too).  A folder holds ``model.safetensors`` (written and read by the ``safetensors``
library, in the checkpoint's dtype), ``config.json`` and the tokenizer's files (tokenizer_files.py:
GPT-2's vocab.json + merges.txt and tokenizer.json; a byte model's map byte b to id b), so
``AutoTokenizer`` and ``pipeline`` read the folder as it is.  ``safetensors`` is an optional extra
(``pip install -e ".[export]"``), imported only when a folder is written or read, so the rest of
the package runs without it.
"""
import json
import os
import shutil
import uuid

import numpy as np

from .bpe import BYTES, ENDOFTEXT
from .errors import UsageError
from .files import check_replaceable, read_json, umask
from .memory_budget import check_fits, param_count
from .model import ModelConfig, param_shapes
from .tokenizer_files import TOKENIZER_FILES, load_tokenizer, save_tokenizer

WEIGHTS_FILE, CONFIG_FILE = "model.safetensors", "config.json"
LOCAL_NAMES = {"gamma": "weight", "beta": "bias", "w_qkv": "c_attn.weight", "b_qkv": "c_attn.bias",
               "w_proj": "c_proj.weight", "b_proj": "c_proj.bias", "w_fc": "c_fc.weight", "b_fc": "c_fc.bias"}
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")     # transformers' names for the tanh GELU used here
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")   # causal-mask buffers older versions saved
SIZES = ("n_positions", "n_embd", "n_layer", "n_head")
GPT2_DEFAULTS = {"model_type": None, "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12,
                 "n_head": 12, "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
                 "resid_pdrop": 0.1, "tie_word_embeddings": True, "scale_attn_weights": True,
                 "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}


def _safetensors():
    """The ``safetensors`` package, or UsageError saying how to install it."""
    try:
        import safetensors.numpy
    except ImportError:
        raise UsageError('export needs the safetensors package: pip install -e ".[export]"') from None
    return safetensors


def hf_name(name):
    """A registry name -> its GPT2LMHeadModel state-dict key (see the table above)."""
    if name in ("wte", "wpe"):
        return f"transformer.{name}.weight"
    head, local = name.rsplit(".", 1)
    return f"transformer.{head}.{LOCAL_NAMES[local]}"


def hf_config(config, dtype_name, tokenizer=BYTES):
    """config.json for GPT2LMHeadModel: the ModelConfig plus GPT-2's fixed choices made here."""
    end = tokenizer.special.get(ENDOFTEXT)              # GPT-2 ends (and starts) a text with <|endoftext|>
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_embd": config.n_embd,
        "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,          # None: 4 * n_embd
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.dropout,
        "initializer_range": 0.02, "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False, "add_cross_attention": False, "tie_word_embeddings": True,
        "bos_token_id": tokenizer.start_id, "eos_token_id": end, "pad_token_id": None,
        "use_cache": True, "torch_dtype": dtype_name,
    }


def export_hf(params, config, out_dir, overwrite=False, tokenizer=BYTES):
    """Write params (registry name -> host array) and the tokenizer as a GPT2LMHeadModel folder ``out_dir``.

    The files are written in a temporary folder beside ``out_dir`` and then renamed into
    place.  An existing non-empty ``out_dir`` is refused (UsageError) unless ``overwrite``;
    then only the files written here are replaced."""
    safetensors = _safetensors()
    _check_target_dir(out_dir, overwrite)
    dtypes = {np.asarray(p).dtype for p in params.values()}
    if len(dtypes) != 1:
        raise UsageError(f"parameters mix dtypes {sorted(map(str, dtypes))}; expected one")
    target = os.path.abspath(out_dir)
    parent, base = os.path.split(target)          # the temporary folder goes beside the target,
    tmp = os.path.join(parent, f".{base}.tmp-{uuid.uuid4().hex[:12]}")   # so the renames stay on one disk
    os.makedirs(parent, exist_ok=True)
    os.mkdir(tmp)
    try:
        safetensors.numpy.save_file({hf_name(name): np.ascontiguousarray(p) for name, p in params.items()},
                                    os.path.join(tmp, WEIGHTS_FILE), metadata={"format": "pt"})
        with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
            json.dump(hf_config(config, dtypes.pop().name, tokenizer), f, indent=2)
            f.write("\n")
        save_tokenizer(tokenizer, tmp, config.block_size)
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
            os.chmod(os.path.join(tmp, name), 0o666 & ~umask())       # as any new file (not a temporary's 0600)
        if os.path.isdir(out_dir):
            for name in os.listdir(tmp):                # every file is replaceable before the first is replaced
                check_replaceable(os.path.join(out_dir, name))
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        else:
            os.rename(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_target_dir(out_dir, overwrite):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise UsageError(f"{out_dir} exists and is not empty; pass --overwrite to replace its "
                         f"{WEIGHTS_FILE}, {CONFIG_FILE} and tokenizer files ({', '.join(TOKENIZER_FILES)})")


def import_hf(model_dir):
    """Read a GPT2LMHeadModel folder: (params registry name -> NumPy array, ModelConfig, Tokenizer);
    UsageError for one that is not a GPT-2 this model runs exactly (a vocabulary other than its
    tokenizer's, another activation or LayerNorm epsilon, untied embeddings, ...)."""
    safetensors = _safetensors()
    if os.path.isfile(model_dir):
        raise UsageError(f"{model_dir} is a file; give the Hugging Face model folder that holds it")
    hf = _read_json(os.path.join(model_dir, CONFIG_FILE))
    tokenizer = hf_tokenizer(model_dir, hf.get("vocab_size", GPT2_DEFAULTS["vocab_size"]))
    config = config_from_hf(hf, model_dir, tokenizer.vocab_size)
    check_fits(param_count(config) * 4, f"the weights in {model_dir}")     # float32 or more each
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.isfile(path):
        pickled = os.path.isfile(os.path.join(model_dir, "pytorch_model.bin"))
        raise UsageError(f"{model_dir} has no {WEIGHTS_FILE}" + (
            f" but a pytorch_model.bin, a pickle, which is not read here; convert it once with python -c "
            f"\"from transformers import GPT2LMHeadModel as M; M.from_pretrained('{model_dir}').save_pretrained("
            f"'{model_dir}')\"" if pickled else " (a sharded folder is not read here; save it as one shard)"))
    wanted = {hf_name(name).removeprefix("transformer."): (name, shape) for name, shape in param_shapes(config).items()}
    params, head = _read_tensors(safetensors, path, wanted, model_dir)
    if head is not None and not np.array_equal(head, params["wte"]):
        raise UsageError(f"{path}: lm_head.weight differs from wte; only a tied LM head is supported")
    return _one_float_dtype(params), config, tokenizer


def _read_tensors(safetensors, path, wanted, model_dir):
    """(params by registry name, lm_head.weight or None) from the safetensors file at ``path``;
    ``wanted``: its key (without "transformer.") -> (registry name, shape).  Names and shapes are
    checked from the file's header before a tensor is read; UsageError for anything else."""
    try:
        with safetensors.safe_open(path, framework="numpy") as f:
            keys = {key.removeprefix("transformer."): key for key in f.keys() if not key.endswith(IGNORED_SUFFIXES)}
            unknown = sorted(set(keys) - set(wanted) - {"lm_head.weight"})
            missing = sorted(set(wanted) - set(keys))
            if unknown or missing:
                raise UsageError(f"{path} holds tensors GPT-2 does not have, e.g. {unknown[0]}" if unknown
                                 else f"{path} lacks tensor {missing[0]}")
            for key, (_, shape) in wanted.items():
                stored = tuple(f.get_slice(keys[key]).get_shape())
                if stored != shape:
                    raise UsageError(f"{path}: {key} has shape {stored}, "
                                     f"expected {shape}")
            tensors = {key: f.get_tensor(full) for key, full in keys.items()}
    except (OSError, TypeError, AttributeError, safetensors.SafetensorError) as exc:   # bfloat16, float8: unknown to NumPy
        hint = (f"; save it in float32 once with python -c \"import torch, transformers as t; t.GPT2LMHeadModel."
                f"from_pretrained('{model_dir}', torch_dtype=torch.float32).save_pretrained('{model_dir}')\""
                if "bfloat16" in str(exc) or "float8" in str(exc) else "")
        raise UsageError(f"{path} is not a safetensors file NumPy can read ({exc}){hint}") from None
    params = {}
    for key, (name, _) in wanted.items():
        tensor = tensors[key]
        if tensor.dtype.kind != "f":                  # the checkpoint reader's rule: floats only
            raise UsageError(f"{path}: {key} holds {tensor.dtype} values, not floats")
        if not np.all(np.isfinite(tensor)):
            raise UsageError(f"{path}: {key} holds non-finite values")
        params[name] = tensor
    return params, tensors.get("lm_head.weight")


def hf_tokenizer(model_dir, vocab_size):
    """The folder's tokenizer (its tokenizer.json, or vocab.json + merges.txt); a folder without
    one is a byte model's only if its vocabulary is the 256 bytes."""
    if any(os.path.exists(os.path.join(model_dir, name)) for name in ("tokenizer.json", "vocab.json")):
        return load_tokenizer(model_dir)
    if vocab_size == 256:
        return BYTES
    raise UsageError(f"{model_dir} has no tokenizer (tokenizer.json, or vocab.json and merges.txt) for its "
                     f"{vocab_size}-token vocabulary; copy the model's tokenizer files into it")


def _one_float_dtype(params):
    """All float64 stays float64; any other floats, or a mix, become float32 (what export writes back)."""
    if all(p.dtype == np.float64 for p in params.values()):
        return params
    return {name: p.astype(np.float32, copy=False) for name, p in params.items()}


def _read_json(path):
    if not os.path.lexists(path):
        raise UsageError(f"{path} not found (is it a Hugging Face model folder?)")
    value = read_json(path, "model file")
    if not isinstance(value, dict):
        raise UsageError(f"{path} is not a JSON object")
    return value


def config_from_hf(hf, where, tokens=256):
    """A GPT2Config dict (missing keys take transformers' defaults) -> ModelConfig, or UsageError.
    ``tokens``: the tokenizer's vocabulary size, which the model's must equal."""
    c = {**GPT2_DEFAULTS, **hf}
    checks = [
        (c["model_type"] == "gpt2", f"model_type is {c['model_type']!r}, not 'gpt2'"),
        (c["vocab_size"] == tokens, f"vocab_size is {c['vocab_size']!r}, but its tokenizer has {tokens} tokens"),
        (c["activation_function"] in GELU_TANH,
         f"activation_function is {c['activation_function']!r}, not one of {', '.join(GELU_TANH)}"),
        (c["layer_norm_epsilon"] == 1e-5, f"layer_norm_epsilon is {c['layer_norm_epsilon']}, not 1e-05"),
        (c["tie_word_embeddings"] is True, "the LM head is not tied to the token embedding"),
        (all(type(c[k]) is int for k in SIZES), f"{', '.join(SIZES)} must be integers"),
        (c["n_inner"] in (None, 4 * c["n_embd"]), f"n_inner is {c['n_inner']}, not 4 * n_embd"),
        (c["scale_attn_weights"] is True, "attention scores are not scaled by 1/sqrt(head size)"),
        (c["scale_attn_by_inverse_layer_idx"] is False, "attention is scaled by the inverse layer index"),
        (c["add_cross_attention"] is False, "the model has cross-attention"),
    ]
    for ok, problem in checks:
        if not ok:
            raise UsageError(f"{where} is not a GPT-2 numpy_llm can run: {problem}")
    try:
        return ModelConfig(block_size=c["n_positions"], n_layer=c["n_layer"], n_head=c["n_head"],
                           n_embd=c["n_embd"], dropout=c["resid_pdrop"], vocab_size=tokens)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where} has an unusable GPT-2 config ({exc})") from None
